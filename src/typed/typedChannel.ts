/**
 * The typed channel: a Protocol over a Channel. send(name, data) packs the data with the type's
 * codec and sends it with the type id in the framing's type field; recv() maps the frame's type
 * id back to a name and unpacks. It wraps a Channel and never reads the socket itself.
 */
import type { CloseOptions, Frame, RecvOptions } from '../core/options.js';
import { messages } from '../core/iterator.js';
import { ChannelClosedError, MessageDecodeError, UnknownMessageTypeError, withoutStack } from '../errors.js';
import type { Framing } from '../framing/types.js';
import { nativeBytes, nextTurn } from '../platform.js';
import type { MessageDefinition, MessageMap, Protocol, TypedMessage } from './protocol.js';
import { WarningLimiter, reportError, warn } from '../report.js';

/** A received frame as a transport hands it over: a Channel's `data` is a Buffer, the browser Channel's a Uint8Array. */
export interface TransportFrame {
  readonly type: number;
  readonly data: Uint8Array;
}

/**
 * What a typed channel needs from below: a Channel has all of it, and so has the browser build's
 * Channel. A session (packetmq's) puts its own implementation between, to run its handshake and
 * hide its control frames.
 */
export interface FrameTransport<F extends TransportFrame = Frame> {
  send(data: Uint8Array, options: { type: number; signal?: AbortSignal | undefined }): Promise<void>;
  recvFrame(options?: RecvOptions): Promise<F>;
  close(options?: CloseOptions): Promise<void>;
  destroy(error?: Error): void;
  /** Resolves when the connection has closed: undefined after a clean close, the error otherwise. */
  readonly closed: Promise<Error | undefined>;
  /** What the constructor checks the protocol's type ids against. */
  readonly framing?: Pick<Framing, 'name' | 'hasType' | 'maxType'>;
}

/**
 * Maps a received type id to its definition: the Protocol's own ids unless a session adapted them.
 * (Sending always passes the Protocol's id; a session's transport translates it.)
 */
export interface IdMapping {
  fromWire(id: number): MessageDefinition | undefined;
}

/** Per-call options of TypedChannel.send(). */
export interface TypedSendOptions {
  /** Aborting before the frame is handed to the transport rejects with the signal's reason and sends nothing. */
  signal?: AbortSignal;
}

/** Counters of what a typed channel received, so nothing is dropped without a trace. */
export interface TypedChannelStats {
  /** Messages delivered to recv(), the iterator or a handler. */
  received: number;
  /** Frames whose type id the protocol does not define (each also raised as UnknownMessageTypeError). */
  unknownType: number;
  /** Frames whose body the codec could not unpack (each also raised as MessageDecodeError). */
  decodeErrors: number;
  /** Messages the on() dispatcher had no handler for. */
  unhandled: number;
}

/** Options of a typed channel. */
export interface TypedChannelOptions {
  /** @internal a session's id adaptation. */
  ids?: IdMapping;
}

const noop = (): void => {};

/** A message packed with its type's codec: the body (in Node a Buffer) and the Protocol's type id. */
export interface PackedMessage {
  readonly type: number;
  readonly body: Uint8Array;
}

/**
 * Pack `data` as message `name` of `protocol`. Throws UnknownMessageTypeError for a name the
 * protocol does not define, and what the codec throws.
 */
export function packMessage<M extends MessageMap>(protocol: Protocol<M>, name: string, data: unknown): PackedMessage {
  const def = protocol.get(name);
  if (def === undefined) throw new UnknownMessageTypeError(-1, { message: `unknown message type '${String(name)}'` });
  return { type: def.id, body: nativeBytes(def.codec.pack(data)) };
}

/** `p`, marked handled: it still rejects for whoever awaits it, but never as an unhandled rejection. */
export function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(noop);
  return p;
}

type Handler<M extends MessageMap, N extends keyof M & string> = (
  data: M[N],
  message: { name: N; id: number; data: M[N] },
) => unknown;

/**
 * Typed messages over a Channel.
 *
 * Errors while receiving: a frame with an unknown type id makes that recv() reject with
 * UnknownMessageTypeError (code ERR_UNKNOWN_TYPE, with `id` and the raw `body`), and a body the
 * codec cannot unpack with MessageDecodeError (ERR_DECODE). Either way that one frame is
 * consumed, the channel stays open, and the next recv() returns the next message.
 * `for await` ends by throwing such an error (the channel stays open; iterate again to go on);
 * the on() dispatcher hands it to onError() handlers and goes on.
 * @example
 * const chat = new TypedChannel(proto, channel);
 * await chat.send('num', 200);
 * const m = await chat.recv();
 * if (m.name === 'num') m.data.toFixed();
 */
export class TypedChannel<M extends MessageMap> implements AsyncIterable<TypedMessage<M>> {
  readonly protocol: Protocol<M>;
  /** What the messages travel over (the Channel, or a session's transport). */
  readonly transport: FrameTransport<TransportFrame>;
  readonly stats: TypedChannelStats = { received: 0, unknownType: 0, decodeErrors: 0, unhandled: 0 };

  readonly #ids: IdMapping;
  readonly #handlers = new Map<string, Set<Handler<M, never>>>();
  readonly #errorHandlers = new Set<(error: Error) => unknown>();
  /** Rate limit of the process warnings for this connection's unknown types and undecodable bodies. */
  readonly #warnings = new WarningLimiter();
  #dispatching: Promise<Error | undefined> | undefined;

  constructor(protocol: Protocol<M>, transport: FrameTransport<TransportFrame>, options: TypedChannelOptions = {}) {
    this.protocol = protocol;
    this.transport = transport;
    this.#ids = options.ids ?? { fromWire: (id) => protocol.get(id) };
    const framing = transport.framing;
    if (framing !== undefined) {
      if (!framing.hasType) {
        throw new TypeError(`Expected a framing with a type field for typed messages, got ${framing.name}`);
      }
      for (const def of protocol) {
        if (def.id > framing.maxType) {
          throw new RangeError(
            `Type id ${def.id} of '${def.name}' does not fit framing ${framing.name} (type ids 0 to ${framing.maxType})`,
          );
        }
      }
    }
  }

  /**
   * Pack `data` with the type's codec and send it. Rejects with TypeError/RangeError from the codec
   * before anything is written, UnknownMessageTypeError for a name the protocol does not define,
   * and as the transport's send() does (ChannelClosedError, MessageTooLargeError, ...). Like
   * Channel.send(), the promise is marked handled: an un-awaited send that fails cannot crash the
   * process with an unhandled rejection (it still rejects for whoever awaits it).
   */
  send<N extends keyof M & string>(name: N, data: M[N], options?: TypedSendOptions): Promise<void> {
    return handled(this.#send(name, data, options));
  }

  #send(name: string, data: unknown, options: TypedSendOptions | undefined): Promise<void> {
    let packed: PackedMessage;
    try {
      packed = packMessage(this.protocol, name, data);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.transport.send(packed.body, { type: packed.type, signal: options?.signal });
  }

  /** @internal Send a message packed once for many channels (Server.broadcast). */
  sendPacked(packed: PackedMessage): Promise<void> {
    return handled(this.transport.send(packed.body, { type: packed.type }));
  }

  /**
   * The next message, `{ name, id, data }`; `id` is the type id on the wire. Rejects with
   * UnknownMessageTypeError or MessageDecodeError for a frame it cannot map or unpack (that frame
   * is consumed, the channel stays open), with ChannelClosedError once the peer has closed.
   */
  async recv(options?: RecvOptions): Promise<TypedMessage<M>> {
    let frame: TransportFrame;
    try {
      frame = await this.transport.recvFrame(options);
    } catch (error) {
      this.#warnings.flush(); // reading ends (or pauses): warn of what was counted and not shown
      throw error;
    }
    return this.#decode(frame);
  }

  #decode(frame: TransportFrame): TypedMessage<M> {
    // A Buffer from a Channel; in the browser build a Uint8Array, which is what a Buffer is there.
    const body = frame.data as Buffer;
    const def = this.#ids.fromWire(frame.type);
    if (def === undefined) {
      this.stats.unknownType++;
      throw this.#warnings.tag(withoutStack(() => new UnknownMessageTypeError(frame.type, { body })));
    }
    let data: unknown;
    try {
      data = def.codec.unpack(body);
    } catch (error) {
      this.stats.decodeErrors++;
      throw this.#warnings.tag(
        withoutStack(() => new MessageDecodeError(frame.type, def.name, body, { cause: error })),
      );
    }
    this.stats.received++;
    return { name: def.name, id: frame.type, data } as TypedMessage<M>;
  }

  /**
   * Messages until the peer closes. Throws an UnknownMessageTypeError/MessageDecodeError (ending
   * the loop, not the channel) or the error that ended the channel. Breaking out does not close it.
   */
  messages(): AsyncIterableIterator<TypedMessage<M>, undefined> {
    return messages(this); // a ChannelClosedError (a packetmq softquit too: see its `reason`) ends the loop
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<TypedMessage<M>, undefined> {
    return this.messages();
  }

  /**
   * Call `handler` for every message of type `name`. The first on() starts a dispatcher that takes
   * every message (do not also call recv()); handlers run one at a time in wire order, and a
   * returned promise is awaited before the next message. Returns a function that removes the handler.
   */
  on<N extends keyof M & string>(name: N, handler: Handler<M, N>): () => void {
    if (typeof handler !== 'function')
      throw new TypeError(`Expected the handler to be a function, got ${typeof handler}`);
    this.protocol.definition(name); // throws for a name the protocol does not define
    let set = this.#handlers.get(name);
    if (set === undefined) this.#handlers.set(name, (set = new Set()));
    set.add(handler as Handler<M, never>);
    this.#startDispatch();
    return () => {
      set.delete(handler as Handler<M, never>);
    };
  }

  /**
   * Called by the dispatcher for an unknown type, an undecodable body or a handler that threw; the
   * dispatcher goes on. Without any, such errors are emitted as process warnings instead; those a
   * peer causes (unknown types, undecodable bodies) are rate-limited: the first of the connection,
   * then a count at most every 5 s and when its reading ends.
   */
  onError(handler: (error: Error) => unknown): () => void {
    this.#errorHandlers.add(handler);
    return () => {
      this.#errorHandlers.delete(handler);
    };
  }

  /**
   * Resolves when the on() dispatcher stops: with undefined once the channel closed cleanly, with
   * the error that ended the channel otherwise. Never rejects. Undefined before the first on().
   */
  get dispatching(): Promise<Error | undefined> | undefined {
    return this.#dispatching;
  }

  #startDispatch(): void {
    if (this.#dispatching !== undefined) return;
    // Start on a later tick, so on() calls made together are all in place for the first message.
    this.#dispatching = new Promise<void>((resolve) => nextTurn(resolve)).then(() => this.#dispatch());
  }

  async #dispatch(): Promise<Error | undefined> {
    for (;;) {
      let message: TypedMessage<M>;
      try {
        message = await this.recv();
      } catch (error) {
        if (error instanceof UnknownMessageTypeError || error instanceof MessageDecodeError) {
          await this.#report(error);
          continue;
        }
        if (error instanceof ChannelClosedError) return undefined;
        return error instanceof Error ? error : new Error(String(error));
      }
      const handlers = this.#handlers.get(message.name);
      if (handlers === undefined || handlers.size === 0) {
        this.stats.unhandled++;
        continue;
      }
      for (const handler of [...handlers]) {
        try {
          await (handler as Handler<M, typeof message.name>)(message.data as never, message as never);
        } catch (error) {
          await this.#report(error instanceof Error ? error : new Error(String(error)));
        }
      }
    }
  }

  async #report(error: Error): Promise<void> {
    if (this.#errorHandlers.size === 0) {
      reportError(undefined, error); // unknown types and bad bodies: rate-limited per connection
      return;
    }
    for (const h of [...this.#errorHandlers]) {
      try {
        await h(error);
      } catch (inner) {
        warn(inner);
      }
    }
  }

  /** Close the underlying connection gracefully (see Channel.close()). */
  close(options?: CloseOptions): Promise<void> {
    return this.transport.close(options);
  }

  /** Close at once without flushing. */
  destroy(error?: Error): void {
    this.transport.destroy(error);
  }

  /** Resolves when the connection has closed: undefined after a clean close, the error otherwise. */
  get closed(): Promise<Error | undefined> {
    return this.transport.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
