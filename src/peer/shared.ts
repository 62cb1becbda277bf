/**
 * What Server and Client share: options of the message layer, the defaults of shutdown, the
 * in-process registry, and the loop that reads one connection's messages in order.
 */
import type { Duplex } from 'node:stream';
import type { Channel } from '../core/channel.js';
import { checkChannelOptions, type ChannelOptions, type RecvOptions } from '../core/options.js';
import { MessageDecodeError, UnknownMessageTypeError } from '../errors.js';
import { PacketmqSession, packetmqChannelOptions, type PacketmqSessionOptions } from '../typed/packetmq.js';
import type { MessageMap, Protocol, TypedMessage } from '../typed/protocol.js';
import { TypedChannel } from '../typed/typedChannel.js';
import type { RequestsOption } from './requests.js';

/** Default time Server.close() and Client.close() wait before destroying what is left. */
export const DEFAULT_SHUTDOWN_TIMEOUT = 10_000;
/** Default softquit reason a packetmq server sends its clients on close(). */
export const DEFAULT_SHUTDOWN_REASON = 'reason.shutdown';
/** The packetmq softquit reason a server at its connection limit sends. */
export const CONNECTION_LIMIT_REASON = 'reason.connectionlimit';

/** What a message is on the receiving side: a Buffer, or `{ name, id, data }` with a Protocol. */
export type Incoming<M extends MessageMap> = [M] extends [never] ? Buffer : TypedMessage<M>;
/** The arguments of send() and broadcast(): `(data)`, or `(name, data)` with a Protocol. */
export type Outgoing<M extends MessageMap> = [M] extends [never]
  ? [data: Uint8Array | string]
  : { [N in keyof M & string]: [name: N, data: M[N]] }[keyof M & string];

/** packetmq session settings for a Server or Client; `true` for the defaults. */
export type PacketmqOption = boolean | (Partial<PacketmqSessionOptions> & { adaptive?: boolean });

/** Options shared by Server and Client: the message layer and liveness. */
export interface PeerOptions<M extends MessageMap> extends ChannelOptions {
  /**
   * Typed messages: handlers get `{ name, id, data }` and send() takes `(name, data)`. The
   * framing needs a type field (ltprotocol(), packetmqFraming, lengthPrefixed({ typeSize })).
   */
  protocol?: Protocol<M>;
  /**
   * Run a packetmq session on each connection (handshake, softquit with a reason). Needs
   * `protocol`; the framing and size limit default to packetmq's. The server side is
   * non-adaptive and the client side adaptive unless `{ adaptive }` says otherwise.
   */
  packetmq?: PacketmqOption;
  /**
   * Close a connection on which no byte was received for this many milliseconds (it fails with
   * TimeoutError): finds half-open connections. It is the Channel's `idleTimeout`: it counts bytes
   * received, not messages handled, so a slow onMessage never closes a busy peer (while its
   * messages wait, reading pauses and nothing is counted). Pair it with a heartbeat message when
   * the protocol can be quiet for longer. Off by default.
   */
  idleTimeout?: number;
  /**
   * TCP keepalive: `true`, or the idle milliseconds before the first probe.
   * @default false
   */
  keepAlive?: boolean | number;
  /**
   * Request/reply on every connection (docs/request-reply.md): `true` or RequestChannel settings
   * (`timeout`, `heartbeat`, `maxPending`, `highWaterMark`). Implied by `onRequest`. Both ends must
   * use it (every message carries the envelope); not with `protocol`.
   */
  requests?: RequestsOption;
}

/** In-process servers by name: Server.listen({ memory }) registers, Client.connect({ memory }) looks up. */
export const memoryServers = new Map<string, (options: ChannelOptions) => Duplex>();

/**
 * Close one peer connection gracefully within `timeout` ms (0: no limit): packetmq's softquit with
 * `reason` (unless either side already quit), otherwise Channel.close(). Past the timeout the
 * channel is destroyed and this rejects with TimeoutError.
 */
export function closeGracefully<M extends MessageMap>(
  channel: Channel,
  typed: TypedChannel<M> | undefined,
  reason: string,
  timeout: number,
): Promise<void> {
  if (typed instanceof PacketmqSession && typed.state !== 'softquitted') return typed.softquit(reason, { timeout });
  return channel.close({ timeout });
}

/** The Channel options a peer uses: packetmq's framing and limit when `packetmq` is set. */
export function peerChannelOptions<M extends MessageMap>(options: PeerOptions<M>): ChannelOptions {
  const o: ChannelOptions = {};
  if (options.packetmq) {
    if (options.protocol === undefined) throw new TypeError('Expected a `protocol` with `packetmq`');
    const max = typeof options.packetmq === 'object' ? options.packetmq.maxMessageSize : undefined;
    Object.assign(o, packetmqChannelOptions(max));
  }
  for (const key of [
    'framing',
    'maxMessageSize',
    'highWaterMark',
    'sendHighWaterMark',
    'handshakeTimeout',
    'headerTimeout',
    'bodyTimeout',
    'idleTimeout',
    'maxQueuedBytes',
    'auth',
  ] as const) {
    if (options[key] !== undefined) (o as Record<string, unknown>)[key] = options[key];
  }
  checkChannelOptions(o); // at construction: a bad option throws here, never later from a connection
  return o;
}

/** The message layer over a channel: none, a TypedChannel, or a PacketmqSession (whose handshake has started). */
export function messageLayer<M extends MessageMap>(
  channel: Channel,
  options: PeerOptions<M>,
  isServer: boolean,
): TypedChannel<M> | undefined {
  if (options.protocol === undefined) return undefined;
  if (options.packetmq) {
    const p = typeof options.packetmq === 'object' ? options.packetmq : {};
    return new PacketmqSession(options.protocol, channel, { ...p, adaptive: p.adaptive ?? !isServer });
  }
  return new TypedChannel(options.protocol, channel);
}

/** A signal that aborts on the next timer tick (a timer that keeps the process alive until then, unlike AbortSignal.timeout's). */
function nextTimerTick(): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 0);
  return controller.signal;
}

/**
 * Read one connection until it ends or `stop` aborts, calling `handle` for each message in order.
 * After `stop`, what is already buffered is still handled (the drain), then it returns.
 */
export async function readMessages<M extends MessageMap>(
  channel: { recv(options?: RecvOptions): Promise<Buffer> },
  typed: TypedChannel<M> | undefined,
  stop: AbortSignal,
  handle: (message: Incoming<M>) => unknown,
  report: (error: Error) => unknown,
): Promise<void> {
  // `stopped` mirrors stop.aborted (a getter that validates its receiver: too dear to read twice
  // per message); `live` is every recv's options until then.
  let stopped = stop.aborted;
  const onStop = (): void => void (stopped = true);
  stop.addEventListener('abort', onStop, { once: true });
  const live = { signal: stop };
  try {
    for (;;) {
      // Once stopped, take only what is already here: a message buffered resolves the recv before a
      // signal that aborts on the next timer tick; the first recv that finds nothing ends the loop.
      const options = stopped ? { signal: nextTimerTick() } : live;
      let message: Incoming<M>;
      try {
        message = (typed ? await typed.recv(options) : await channel.recv(options)) as Incoming<M>;
      } catch (error) {
        if ((error instanceof UnknownMessageTypeError || error instanceof MessageDecodeError) && !stopped) {
          await report(error);
          continue;
        }
        if (stopped && error === stop.reason) continue; // stopped while waiting: drain what is buffered
        return; // closed, failed, or drained: `closed` has the story
      }
      try {
        await handle(message);
      } catch (error) {
        await report(error instanceof Error ? error : new Error(String(error)));
      }
    }
  } finally {
    stop.removeEventListener('abort', onStop);
  }
}
