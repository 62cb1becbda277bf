/**
 * msgchannel: framed messages over TCP, TLS, Unix sockets and memory, with ordered async
 * send()/recv(). This file is the package entry: Channel, Listener and every public export.
 */
import { constants as bufferConstants } from 'node:buffer';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import PQueue from 'p-queue';
import { Deque } from './src/deque.js';
import { authHandshake, authKey, type AuthOptions } from './src/auth.js';
import { ChannelClosedError, MessageTooLargeError, SendQueueFullError, TimeoutError, UnexpectedEofError } from './src/errors.js';
import { msg } from './src/framing/msg.js';
import type { AckIO, Framing, HandshakeIO } from './src/framing/types.js';
import { memoryPair } from './src/memory.js';

export * from './src/errors.js';
export { msg } from './src/framing/msg.js';
export { int32, lengthPrefixed, ltprotocol, openflow, openflowType } from './src/framing/lengthPrefixed.js';
export type { LengthPrefixedFraming, LengthPrefixedOptions, StructCode } from './src/framing/lengthPrefixed.js';
export { pythonConnection } from './src/framing/pythonConnection.js';
export { tinyproto } from './src/framing/tinyproto.js';
export type { PythonConnectionOptions } from './src/framing/pythonConnection.js';
export type { AuthOptions, ChallengeKind } from './src/auth.js';
export type { AckIO, Decoder, DecoderLimits, FrameSink, Framing, HandshakeIO } from './src/framing/types.js';
export * from './src/typed/index.js';
export {
  CONNECTION_LIMIT_REASON,
  Connection,
  DEFAULT_SHUTDOWN_REASON,
  DEFAULT_SHUTDOWN_TIMEOUT,
  Server,
  type Incoming,
  type Outgoing,
  type PacketmqOption,
  type PeerOptions,
  type ServerCloseOptions,
  type ServerListenOptions,
  type ServerOptions,
} from './src/server.js';
export { Client, RECONNECT_DEFAULTS, type ClientCloseOptions, type ClientOptions, type ClientTarget } from './src/client.js';

/** Default `maxMessageSize`: 64 MiB. */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
/** Default receive high-water mark: reading pauses above 1 MiB of received-but-unread messages. */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
/** Default send high-water mark: send() waits for drain above 1 MiB queued in the socket. */
export const DEFAULT_SEND_HIGH_WATER_MARK = 1024 * 1024;
/** Default time a framing's handshake may take. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;
/** Default time close() waits for the flush and the peer's end before it destroys the connection. */
export const DEFAULT_CLOSE_TIMEOUT = 10_000;
/** Default `headerTimeout`: a frame's header must be in within 30 s of its first byte. */
export const DEFAULT_HEADER_TIMEOUT = 30_000;
/** Default `maxQueuedBytes`: sends that would queue more than 16 MiB per connection are refused. */
export const DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Default `maxConnections` of a Listener (and a Server): 10,000 connections at once. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

/** Bodies up to this size are copied into a shared write slab, so many small frames leave in one write. */
const COPY_LIMIT = 16 * 1024;
const SLAB_SIZE = 64 * 1024;
/** Bookkeeping bytes counted per queued inbound message on top of its body, so empty messages count too. */
const MESSAGE_OVERHEAD = 64;

const RESOLVED: Promise<void> = Promise.resolve();
const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });
const nextResult = (value: Buffer): IteratorResult<Buffer, undefined> => ({ value, done: false });
const noop = (): void => {};

// Lifecycle states, in order.
const HANDSHAKE = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** Options every channel takes, whichever way it was made. */
export interface ChannelOptions {
  /**
   * Largest message accepted or sent, in bytes. Checked from the header before anything is
   * allocated when receiving, and before anything is written when sending.
   * @default 64 MiB
   */
  maxMessageSize?: number;
  /**
   * Receive high-water mark in bytes: reading from the transport pauses while more than this is
   * received but not yet taken by recv(), and resumes once recv() has drained half of it. A single
   * larger message still arrives whole.
   * @default 1 MiB
   */
  highWaterMark?: number;
  /**
   * Send high-water mark in bytes: while more than this waits in the transport's write buffer,
   * further send() calls wait for it to drain before they write, so awaiting send() bounds memory.
   * @default 1 MiB
   */
  sendHighWaterMark?: number;
  /**
   * The wire format.
   * @default msg (the gist's `\r\nMSG <len>\r\n<body>`)
   */
  framing?: Framing;
  /**
   * Milliseconds the handshake may take: the framing's (tinyproto, pythonConnection with
   * `authkey`) and `auth`'s, together.
   * @default 10000
   */
  handshakeTimeout?: number;
  /**
   * Milliseconds within which a frame's header must arrive once its first byte has: a peer that
   * starts a frame and stalls (or trickles it, slowloris) fails the channel with TimeoutError.
   * Checked by one timer per channel that samples the decoder, so a stall is noticed between
   * `headerTimeout` and 1.25 x `headerTimeout`; while the channel itself has paused reading
   * (backpressure) nothing is counted. Precisely: while a frame is incomplete, at least the
   * framing's longest header's worth of bytes must arrive every `headerTimeout`. A tinyproto
   * send waiting for the peer's answer byte counts too. `0` turns it off.
   * @default 30000
   */
  headerTimeout?: number;
  /**
   * Close the channel (TimeoutError) when no byte has been received for this many milliseconds
   * (checked like `headerTimeout`, so within 1.25 x). Finds peers that went away without a FIN or
   * RST, and idle connections held open on purpose. Not counted while the channel itself paused
   * reading. `0` turns it off.
   * @default 0 (off)
   */
  idleTimeout?: number;
  /**
   * Per-connection cap on outbound bytes queued and not yet written (the transport's write buffer,
   * batched small frames and sends waiting their turn). A send() that would queue more rejects
   * with SendQueueFullError (`ERR_SEND_QUEUE_FULL`) instead of growing memory; the channel stays
   * open. A single message larger than the cap is still accepted when nothing else is queued.
   * Awaiting send() never hits it (it waits for `sendHighWaterMark`).
   * @default 16 MiB
   */
  maxQueuedBytes?: number;
  /**
   * Shared-secret mutual authentication before the first message, for any framing: both sides
   * prove they hold `key` with an HMAC-SHA256 challenge/response in each direction (the scheme of
   * multiprocessing's `authkey`, sharing its code). A wrong key fails the handshake with
   * AuthenticationError (`ERR_AUTH`) on both sides. It runs after the framing's own handshake,
   * within `handshakeTimeout`. It authenticates; it does not encrypt: use TLS for that.
   * @example
   * Channel.listen('127.0.0.1', 5000, { auth: { key: process.env.SECRET! } });
   * await Channel.connect('127.0.0.1', 5000, { auth: { key: process.env.SECRET! } });
   */
  auth?: AuthOptions;
}

/** Options of Channel.connect(). */
export interface ConnectOptions extends ChannelOptions {
  host?: string;
  port?: number;
  /** A Unix socket path (or Windows named pipe) instead of host and port. */
  path?: string;
  /** Milliseconds to wait for the connection (and the TLS and framing handshakes). No limit when omitted. */
  timeout?: number;
  /** Aborts connecting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Connect with TLS; these are node:tls connect options (`true` for the defaults). */
  tls?: tls.ConnectionOptions | true;
  /**
   * Disable Nagle's algorithm, so small messages leave at once.
   * @default true
   */
  noDelay?: boolean;
  /**
   * TCP keepalive: `true`, or the idle milliseconds before the first probe. The kernel then finds
   * a peer that vanished without a FIN or RST (the channel fails with ETIMEDOUT).
   * @default false
   */
  keepAlive?: boolean | number;
}

/** Options of Channel.listen(). */
export interface ListenOptions extends ChannelOptions {
  host?: string;
  port?: number;
  /** A Unix socket path to listen on instead of host and port. */
  path?: string;
  /**
   * The gist's reuse flag: a restarted server can bind its port at once (SO_REUSEADDR, which
   * Node always sets on Unix, plus SO_REUSEPORT on Node versions that support `reusePort`).
   * @default true
   */
  reuse?: boolean;
  /**
   * Print `listening on HOST:PORT` once bound and `--> IP:PORT` for each client, as the gist does.
   * @default false
   */
  echo?: boolean;
  /** The listen backlog. @default 511 (Node's) */
  backlog?: number;
  /** Serve TLS; these are node:tls server options (key, cert, ca, requestCert, ...). */
  tls?: tls.TlsOptions;
  /** @default true */
  noDelay?: boolean;
  /** Closes the listener when aborted. */
  signal?: AbortSignal;
  /**
   * TCP keepalive on accepted sockets: `true`, or the idle milliseconds before the first probe.
   * @default false
   */
  keepAlive?: boolean | number;
  /**
   * Called for each incoming connection before its channel is made (and before any byte is
   * written); return false to refuse it. A refused connection gets the framing's `refusal` bytes
   * (tinyproto: `FE`, connection limit) and is closed; for framings without one, a TCP connection
   * is reset (RST) and any other is closed. Servers use it for a connection limit.
   */
  admit?: () => boolean;
  /**
   * Most connections of this listener open at once: in their handshake, accepted but not yet
   * taken, or handed out and not yet closed. An extra one is refused like `admit` refuses (before
   * any byte: tinyproto's `FE`, otherwise a TCP reset). `Infinity` for no limit.
   * @default 10000
   */
  maxConnections?: number;
}

/** Per-call options of recv(). */
export interface RecvOptions {
  /** Aborting rejects this recv with the signal's reason; it takes no message. */
  signal?: AbortSignal;
  /** Milliseconds to wait; then it rejects with TimeoutError and takes no message. */
  timeout?: number;
}

/** Per-call options of send(). */
export interface SendOptions {
  /** Aborting before the frame is handed to the transport rejects with the signal's reason and sends nothing. */
  signal?: AbortSignal;
  /** The frame's type field, for framings that have one. @default 0 */
  type?: number;
}

/** Options of close(). */
export interface CloseOptions {
  /**
   * Milliseconds to wait for pending sends to flush and the peer to end; then the connection is
   * destroyed and close() rejects with TimeoutError.
   * @default 10000
   */
  timeout?: number;
}

/** A received frame with its type field (0 for framings without one). */
export interface Frame {
  type: number;
  data: Buffer;
}

interface Waiter {
  resolve(value: Buffer | Frame): void;
  reject(error: unknown): void;
  frame: boolean;
  cancel: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface PendingSend {
  body: Buffer;
  type: number;
  resolve(): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
}

function checkSize(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Expected \`${name}\` to be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function checkTimeout(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`Expected \`${name}\` to be a finite number >= 0, got ${String(value)}`);
  }
  return value;
}

type CheckedOptions = Required<Omit<ChannelOptions, 'auth'>> & { auth: Buffer | undefined };

/** Validate channel options, filling in the defaults; throws RangeError/TypeError on bad values. */
function checkChannelOptions(options: ChannelOptions): CheckedOptions {
  const framing = options.framing ?? msg;
  if (typeof framing !== 'object' || typeof framing.createDecoder !== 'function' || typeof framing.writeHeader !== 'function') {
    throw new TypeError(`Expected \`framing\` to be a Framing, got ${String(framing)}`);
  }
  return {
    framing,
    maxMessageSize: checkSize('maxMessageSize', options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE, 0, bufferConstants.MAX_LENGTH),
    highWaterMark: checkSize('highWaterMark', options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK, 1, Number.MAX_SAFE_INTEGER),
    sendHighWaterMark: checkSize('sendHighWaterMark', options.sendHighWaterMark ?? DEFAULT_SEND_HIGH_WATER_MARK, 1, Number.MAX_SAFE_INTEGER),
    handshakeTimeout: checkTimeout('handshakeTimeout', options.handshakeTimeout) ?? DEFAULT_HANDSHAKE_TIMEOUT,
    headerTimeout: checkTimeout('headerTimeout', options.headerTimeout) ?? DEFAULT_HEADER_TIMEOUT,
    idleTimeout: checkTimeout('idleTimeout', options.idleTimeout) ?? 0,
    maxQueuedBytes: checkSize('maxQueuedBytes', options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES, 0, Number.MAX_SAFE_INTEGER),
    auth: options.auth === undefined ? undefined : authKey(options.auth),
  };
}

/** A signal that aborts when `signal` does or after `timeout` ms; `dispose` releases the timer and listener. */
function deadline(
  signal: AbortSignal | undefined,
  timeout: number | undefined,
  what: string,
): { signal: AbortSignal | undefined; dispose: () => void } {
  if (timeout === undefined) return { signal, dispose: noop };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutError(`${what} timed out after ${timeout} ms`)), timeout);
  const onAbort = (): void => controller.abort(signal!.reason);
  if (signal) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * One connection carrying framed messages. send() and recv() may be called concurrently: sends
 * go out in call order without interleaving, recvs resolve in call order with messages in wire
 * order. Make one with Channel.connect(), Channel.listen() or Channel.pair().
 */
export class Channel implements AsyncIterable<Buffer> {
  /** The remote IP address (undefined over a Unix socket or in memory). */
  readonly ip: string | undefined;
  /** The remote port (undefined over a Unix socket or in memory). */
  readonly port: number | undefined;
  /** The wire format of this channel. */
  readonly framing: Framing;
  /** Largest message accepted or sent, in bytes. */
  readonly maxMessageSize: number;
  /** Resolves once the framing's handshake is done (at once for framings without one); rejects if it fails. */
  readonly ready: Promise<void>;
  /**
   * Resolves when the transport has closed: with undefined after a clean close by either side,
   * with the error that ended the channel otherwise. Never rejects.
   */
  readonly closed: Promise<Error | undefined>;

  readonly #stream: Duplex;
  readonly #decoder;
  readonly #sendLimit: number;
  readonly #recvHWM: number;
  readonly #sendHWM: number;
  #state: number;
  /** Why receiving ended; recv() reports it once the inbox is drained. */
  #error: Error | undefined;
  /** Set once a transport error or protocol error ended the channel. */
  #failed = false;
  #closing: Promise<void> | undefined;
  #resolveClosed!: (error: Error | undefined) => void;

  // Receive side.
  readonly #inbox = new Deque<Buffer>();
  /** Type fields of the inbox, for framings that have them. */
  readonly #inboxTypes: Deque<number> | null;
  #inboxBytes = 0;
  #paused = false;
  /** The one recv() waiting for the next frame, when the inbox is empty. */
  #waiter: Waiter | null = null;
  /** Queued recv() tasks waiting for the current waiter to settle. */
  #waiterIdle: (() => void)[] = [];
  /** The receive mutex: only recv() calls that must wait behind another go through it. */
  readonly #recvQueue = new PQueue({ concurrency: 1 });
  /** recv() calls not yet settled that took the slow path (the waiter, or queued): 0 = uncontended. */
  #recvBusy = 0;
  /** Raw bytes read during the handshake. */
  #raw: RawReader | null = null;

  // Send side.
  /** The send mutex: only sends that must wait (backpressure, handshake) go through it. */
  readonly #sendQueue = new PQueue({ concurrency: 1 });
  readonly #backlog = new Deque<PendingSend>();
  /** Body bytes in #backlog, for maxQueuedBytes. */
  #backlogBytes = 0;
  readonly #maxQueued: number;
  #backlogScheduled = false;
  #drainWaiter: (() => void) | null = null;
  /** Small frames are batched here and written once per tick (or when full). */
  #slab: Buffer | null = null;
  #slabStart = 0;
  #slabEnd = 0;
  #flushScheduled = false;

  /**
   * Wrap any connected byte stream (a net.Socket, a tls.TLSSocket, a Duplex). Channel.connect,
   * Channel.listen and Channel.pair do this for you.
   */
  constructor(stream: Duplex, options: ChannelOptions & { isServer?: boolean } = {}) {
    const o = checkChannelOptions(options);
    this.framing = o.framing;
    this.maxMessageSize = o.maxMessageSize;
    this.#recvHWM = o.highWaterMark;
    this.#sendHWM = Math.max(o.sendHighWaterMark, stream.writableHighWaterMark);
    const handshakeTimeout = o.handshakeTimeout;
    this.#maxQueued = o.maxQueuedBytes;
    this.#headerTimeout = o.headerTimeout;
    this.#idleTimeout = o.idleTimeout;
    this.#sendLimit = Math.min(this.maxMessageSize, this.framing.maxEncodableSize);
    this.#decoder = this.framing.createDecoder({ maxMessageSize: this.maxMessageSize }, this.framing.acknowledged ? this.#ackIO : undefined);
    this.#inboxTypes = this.framing.hasType ? new Deque<number>() : null;
    this.#stream = stream;
    const socket = stream as Partial<net.Socket>;
    this.ip = typeof socket.remoteAddress === 'string' ? socket.remoteAddress : undefined;
    this.port = typeof socket.remotePort === 'number' ? socket.remotePort : undefined;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));

    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    stream.on('close', this.#onClose);
    stream.on('drain', this.#onDrain);

    const own = this.framing.handshake?.bind(this.framing);
    const key = o.auth;
    if (own !== undefined || key !== undefined) {
      this.#state = HANDSHAKE;
      this.#raw = new RawReader(stream, this.#recvHWM);
      const run =
        key === undefined
          ? own!
          : async (io: HandshakeIO): Promise<void> => {
              if (own !== undefined) await own(io); // the framing's own first (tinyproto's init byte carries its refusal)
              await authHandshake(key, io.isServer, io);
            };
      this.ready = this.#handshake(run, options.isServer ?? false, handshakeTimeout);
      this.ready.catch(noop);
    } else {
      this.#state = OPEN;
      this.ready = RESOLVED;
      this.#armWatchdog();
    }
    if (stream.destroyed) queueMicrotask(() => this.#onClose());
  }

  /** TLS only: the peer's certificate (on a mutual-TLS server, the client's), undefined when there is none. */
  get peerCertificate(): tls.PeerCertificate | undefined {
    const stream = this.#stream;
    if (!(stream instanceof tls.TLSSocket)) return undefined;
    const cert = stream.getPeerCertificate();
    return cert != null && Object.keys(cert).length > 0 ? cert : undefined;
  }

  // ---------------------------------------------------------------- liveness (headerTimeout, idleTimeout)

  readonly #headerTimeout: number;
  readonly #idleTimeout: number;
  /** One unref'd interval per channel that samples the decoder; nothing runs per message or per chunk. */
  #watchdog: NodeJS.Timeout | undefined;
  /** decoder.offset at the last sample, and when it last moved. */
  #seenOffset = 0;
  #lastByteAt = 0;
  /** When a sample first saw the current incomplete frame (0: at a boundary), and the offset then. */
  #frameSince = 0;
  #frameOffset = 0;

  #armWatchdog(): void {
    const header = this.#headerTimeout;
    const idle = this.#idleTimeout;
    if ((header === 0 && idle === 0) || this.#watchdog !== undefined || this.#state !== OPEN) return;
    const period = Math.max(5, Math.min(header || Infinity, idle || Infinity) / 4);
    this.#seenOffset = this.#decoder.offset;
    this.#lastByteAt = Date.now();
    this.#watchdog = setInterval(this.#watch, period);
    this.#watchdog.unref();
  }

  readonly #watch = (): void => {
    if (this.#state !== OPEN) {
      clearInterval(this.#watchdog);
      return;
    }
    const now = Date.now();
    const decoder = this.#decoder;
    const offset = decoder.offset;
    if (this.#paused) {
      // We stopped reading (backpressure): whatever the peer sent waits in the kernel, not its fault.
      this.#seenOffset = offset;
      this.#lastByteAt = now;
      this.#frameSince = 0;
      return;
    }
    if (offset !== this.#seenOffset) {
      this.#seenOffset = offset;
      this.#lastByteAt = now;
    } else if (this.#idleTimeout > 0 && now - this.#lastByteAt >= this.#idleTimeout) {
      this.#fail(new TimeoutError(`nothing received for ${now - this.#lastByteAt} ms (idleTimeout ${this.#idleTimeout} ms)`));
      return;
    }
    if (this.#headerTimeout === 0) return;
    if (decoder.atBoundary) {
      this.#frameSince = 0;
    } else if (this.#frameSince === 0 || offset - this.#frameOffset >= this.framing.maxHeaderLength) {
      // A new frame, or the last one's header is surely complete: start counting from here.
      this.#frameSince = now;
      this.#frameOffset = offset;
    } else if (now - this.#frameSince >= this.#headerTimeout) {
      this.#fail(
        new TimeoutError(`frame header incomplete ${now - this.#frameSince} ms after it started (headerTimeout ${this.#headerTimeout} ms)`),
      );
    }
  };

  // ---------------------------------------------------------------- connect / listen / pair

  /** Connect to a listening peer. */
  static connect(host: string, port: number, options?: ConnectOptions): Promise<Channel>;
  /** Connect to `{ host, port }` or to a Unix socket `{ path }`. */
  static connect(options: ConnectOptions): Promise<Channel>;
  static connect(hostOrOptions: string | ConnectOptions, port?: number, options?: ConnectOptions): Promise<Channel> {
    const opts: ConnectOptions =
      typeof hostOrOptions === 'string' ? { ...options, host: hostOrOptions, port: port! } : { ...hostOrOptions };
    return connectChannel(opts);
  }

  /**
   * Listen for clients; returns at once. The Listener is an async iterable of client channels,
   * so `for await (const ch of Channel.listen(...))` serves them.
   */
  static listen(host: string, port: number, options?: ListenOptions): Listener;
  static listen(options: ListenOptions): Listener;
  static listen(hostOrOptions: string | ListenOptions, port?: number, options?: ListenOptions): Listener {
    const opts: ListenOptions =
      typeof hostOrOptions === 'string' ? { ...options, host: hostOrOptions, port: port! } : { ...hostOrOptions };
    return new Listener(opts);
  }

  /** Two channels joined in memory, with the same semantics as over TCP (framing, limits, backpressure). */
  static pair(options: ChannelOptions = {}): [Channel, Channel] {
    const [a, b] = memoryPair();
    return [new Channel(a, { ...options, isServer: false }), new Channel(b, { ...options, isServer: true })];
  }

  // ---------------------------------------------------------------- sending

  /**
   * Send one message (strings are sent as UTF-8). Resolves once the frame is handed to the
   * transport; while the transport holds more than the send high-water mark it first waits for
   * it to drain. Concurrent sends go out in call order and never interleave.
   *
   * Bodies above 16 KiB are written without copying: do not modify such a buffer after passing it.
   * A send that fails because the channel ended rejects its promise, and the same failure is
   * reported through `closed` and recv(); an un-awaited send's rejection is not reported as unhandled.
   */
  send(data: Uint8Array | string, options?: SendOptions): Promise<void> {
    if (this.#state > OPEN) return this.#rejectSend(this.#closedError());
    let body: Buffer;
    if (typeof data === 'string') body = Buffer.from(data, 'utf8');
    else if (Buffer.isBuffer(data)) body = data;
    else if (data instanceof Uint8Array) body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    else return Promise.reject(new TypeError(`Expected a Uint8Array or a string, got ${typeof data}`));
    if (body.length > this.#sendLimit) {
      return Promise.reject(new MessageTooLargeError(body.length, this.#sendLimit, 'send'));
    }
    let type = 0;
    if (options !== undefined) {
      if (options.type !== undefined) {
        type = options.type;
        const max = this.framing.maxType;
        if (!Number.isInteger(type) || type < 0 || type > max) {
          return Promise.reject(
            new RangeError(`Expected \`type\` to be an integer from 0 to ${max} for framing ${this.framing.name}, got ${String(type)}`),
          );
        }
      }
      if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    }
    if (
      this.#state === OPEN &&
      this.framing.acknowledged !== true &&
      this.#backlog.length === 0 &&
      !this.#backlogScheduled &&
      this.#stream.writableLength + (this.#slabEnd - this.#slabStart) < this.#sendHWM
    ) {
      // Uncontended: no queue, no allocation beyond the frame itself.
      this.#writeFrame(body, type);
      return RESOLVED;
    }
    return this.#enqueueSend(body, type, options?.signal);
  }

  #rejectSend(error: Error): Promise<void> {
    const p = Promise.reject(error);
    p.catch(noop);
    return p;
  }

  #closedError(): Error {
    const error = this.#error;
    if (error instanceof ChannelClosedError) return error;
    return new ChannelClosedError('channel is closed', error ? { cause: error } : undefined);
  }

  #enqueueSend(body: Buffer, type: number, signal: AbortSignal | undefined): Promise<void> {
    const queued = this.#stream.writableLength + (this.#slabEnd - this.#slabStart) + this.#backlogBytes;
    if (queued > 0 && queued + body.length > this.#maxQueued) {
      // Marked handled like the other refusals of an un-awaited send: a peer that never reads must
      // not be able to crash the process through an unhandled rejection.
      return this.#rejectSend(new SendQueueFullError(body.length, queued, this.#maxQueued));
    }
    this.#backlogBytes += body.length;
    const p = new Promise<void>((resolve, reject) => {
      const entry: PendingSend = { body, type, resolve, reject, signal, onAbort: undefined, done: false };
      if (signal) {
        entry.onAbort = () => {
          if (entry.done) return;
          entry.done = true;
          reject(signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#backlog.push(entry);
    });
    p.catch(noop);
    if (!this.#backlogScheduled) {
      this.#backlogScheduled = true;
      void this.#sendQueue.add(this.#flushBacklog).catch(noop);
    }
    return p;
  }

  /** The contended send path: one mutex task writes the whole backlog, waiting for drain as needed. */
  readonly #flushBacklog = async (): Promise<void> => {
    try {
      if (this.#state === HANDSHAKE) await this.ready;
      const stream = this.#stream;
      while (this.#backlog.length > 0) {
        if (this.#state === CLOSED || this.#failed || stream.writableEnded || stream.destroyed) {
          this.#rejectBacklog(this.#closedError());
          return;
        }
        if (stream.writableLength + (this.#slabEnd - this.#slabStart) >= this.#sendHWM) {
          this.#flushSlab();
          if (stream.writableNeedDrain && stream.writableLength >= this.#sendHWM) {
            await new Promise<void>((resolve) => (this.#drainWaiter = resolve));
            continue;
          }
        }
        const entry = this.#backlog.shift()!;
        this.#backlogBytes -= entry.body.length;
        if (entry.done) continue;
        entry.done = true;
        if (entry.onAbort) entry.signal!.removeEventListener('abort', entry.onAbort);
        if (this.framing.acknowledged) await this.#sendAcknowledged(entry);
        else {
          this.#writeFrame(entry.body, entry.type);
          entry.resolve();
        }
      }
    } catch (error) {
      this.#rejectBacklog(error);
    } finally {
      this.#backlogScheduled = false;
    }
  };

  /**
   * Acknowledged framings (tinyproto), under the send mutex: write the header, wait for the
   * peer's answer (the decoder reports it through #ackIO), then write the body or reject.
   */
  async #sendAcknowledged(entry: PendingSend): Promise<void> {
    const header = Buffer.allocUnsafe(this.framing.maxHeaderLength);
    const end = this.framing.writeHeader(header, 0, entry.body.length, entry.type);
    const answered = new Promise<Error | undefined>((resolve) => (this.#ackWaiter = resolve));
    this.#decoder.expectAck!(entry.body.length);
    this.#flushSlab();
    this.#stream.write(header.subarray(0, end));
    const error = await answered;
    if (error !== undefined) {
      entry.reject(error);
      return;
    }
    const stream = this.#stream;
    if (entry.body.length > 0 && !stream.destroyed && !stream.writableEnded) stream.write(entry.body);
    entry.resolve();
  }

  /** Settles the send waiting for the peer's answer to its header (acknowledged framings). */
  #ackWaiter: ((error: Error | undefined) => void) | null = null;

  readonly #ackIO: AckIO = {
    reply: (bytes) => {
      this.#flushSlab();
      if (!this.#stream.destroyed && !this.#stream.writableEnded) this.#stream.write(bytes);
    },
    acked: (error) => {
      const waiter = this.#ackWaiter;
      this.#ackWaiter = null;
      waiter?.(error);
    },
  };

  #rejectBacklog(error: unknown): void {
    if (this.#ackWaiter !== null) this.#ackIO.acked(error instanceof Error ? error : new Error(String(error)));
    for (let entry = this.#backlog.shift(); entry !== undefined; entry = this.#backlog.shift()) {
      this.#backlogBytes -= entry.body.length;
      if (entry.done) continue;
      entry.done = true;
      if (entry.onAbort) entry.signal!.removeEventListener('abort', entry.onAbort);
      entry.reject(error);
    }
  }

  #writeFrame(body: Buffer, type: number): void {
    const framing = this.framing;
    const len = body.length;
    if (len <= COPY_LIMIT) {
      let slab = this.#slab;
      if (slab === null || this.#slabEnd + framing.maxHeaderLength + len > slab.length) {
        this.#flushSlab();
        slab = this.#slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
        this.#slabStart = this.#slabEnd = 0;
      }
      const at = framing.writeHeader(slab, this.#slabEnd, len, type);
      if (len > 0) slab.set(body, at);
      this.#slabEnd = at + len;
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        process.nextTick(this.#flushTick);
      }
      return;
    }
    // Large body: header and body go out together under cork, the body is never copied.
    this.#flushSlab();
    const header = Buffer.allocUnsafe(framing.maxHeaderLength);
    const end = framing.writeHeader(header, 0, len, type);
    const stream = this.#stream;
    stream.cork();
    stream.write(header.subarray(0, end));
    stream.write(body);
    stream.uncork();
  }

  readonly #flushTick = (): void => {
    this.#flushScheduled = false;
    this.#flushSlab();
  };

  #flushSlab(): void {
    if (this.#slabEnd === this.#slabStart) return;
    const chunk = this.#slab!.subarray(this.#slabStart, this.#slabEnd);
    this.#slabStart = this.#slabEnd;
    if (!this.#stream.destroyed && !this.#stream.writableEnded) this.#stream.write(chunk);
  }

  readonly #onDrain = (): void => {
    const wake = this.#drainWaiter;
    if (wake) {
      this.#drainWaiter = null;
      wake();
    }
  };

  // ---------------------------------------------------------------- receiving

  /**
   * Receive the next message. Concurrent calls resolve in call order with messages in wire order.
   * A call that is aborted or times out takes no message: that message goes to the next caller.
   * Rejects with ChannelClosedError once the peer has closed and every message has been read, or
   * with the error that ended the channel.
   */
  recv(options?: RecvOptions): Promise<Buffer> {
    // Uncontended with a message buffered: no queue, one resolved promise.
    if (this.#recvBusy === 0 && this.#inbox.length > 0 && options === undefined) return Promise.resolve(this.#takeBody());
    return this.#recv(options, false) as Promise<Buffer>;
  }

  /**
   * Take the next message if one is already buffered and no recv() is waiting, without a promise;
   * undefined otherwise (then `await recv()`). The fastest way to drain a busy channel:
   * `const msg = ch.tryRecv() ?? (await ch.recv())`.
   */
  tryRecv(): Buffer | undefined {
    return this.#recvBusy === 0 && this.#inbox.length > 0 ? this.#takeBody() : undefined;
  }

  /** Like recv(), with the frame's type field: `{ type, data }`. */
  recvFrame(options?: RecvOptions): Promise<Frame> {
    return this.#recv(options, true) as Promise<Frame>;
  }

  #recv(options: RecvOptions | undefined, frame: boolean): Promise<Buffer | Frame> {
    if (this.#recvBusy === 0) {
      // Uncontended: an already-buffered message takes no queue.
      if (this.#inbox.length > 0) return Promise.resolve(this.#take(frame));
      if (this.#error !== undefined) return Promise.reject(this.#error);
      if (options === undefined) return this.#wait(undefined, frame);
    }
    return this.#recvSlow(options ?? {}, frame);
  }

  #recvSlow(options: RecvOptions, frame: boolean): Promise<Buffer | Frame> {
    let limit: { signal: AbortSignal | undefined; dispose: () => void };
    try {
      limit = deadline(options.signal, checkTimeout('timeout', options.timeout), 'recv');
    } catch (error) {
      return Promise.reject(error);
    }
    const cancel = limit.signal;
    if (cancel?.aborted) {
      limit.dispose();
      return Promise.reject(cancel.reason);
    }
    let p: Promise<Buffer | Frame>;
    if (this.#recvBusy === 0) {
      p = this.#inbox.length > 0 ? Promise.resolve(this.#take(frame)) : this.#error ? Promise.reject(this.#error) : this.#wait(cancel, frame);
    } else {
      this.#recvBusy++;
      p = this.#recvQueue.add(() => this.#queuedRecv(cancel, frame), { signal: cancel }) as Promise<Buffer | Frame>;
      p.then(this.#recvDone, this.#recvDone);
    }
    if (limit.dispose !== noop) p.then(limit.dispose, limit.dispose);
    return p;
  }

  readonly #recvDone = (): void => {
    this.#recvBusy--;
  };

  /** A recv that had to queue behind others: runs under the receive mutex. */
  async #queuedRecv(cancel: AbortSignal | undefined, frame: boolean): Promise<Buffer | Frame> {
    while (this.#waiter !== null) await new Promise<void>((resolve) => this.#waiterIdle.push(resolve));
    // p-queue has already rejected an aborted task; make sure it takes nothing.
    cancel?.throwIfAborted();
    if (this.#inbox.length > 0) return this.#take(frame);
    if (this.#error !== undefined) throw this.#error;
    return this.#wait(cancel, frame);
  }

  #wait(cancel: AbortSignal | undefined, frame: boolean): Promise<Buffer | Frame> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, frame, cancel, onAbort: undefined };
      if (cancel) {
        waiter.onAbort = () => {
          if (this.#waiter !== waiter) return;
          this.#waiter = null;
          this.#recvBusy--;
          reject(cancel.reason);
          this.#wakeQueued();
        };
        cancel.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiter = waiter;
      this.#recvBusy++;
    });
  }

  #wakeQueued(): void {
    if (this.#waiterIdle.length === 0) return;
    const wake = this.#waiterIdle;
    this.#waiterIdle = [];
    for (const fn of wake) fn();
  }

  /** Settle the waiting recv with a frame or an error. */
  #settleWaiter(waiter: Waiter, body: Buffer | undefined, type: number, error?: unknown): void {
    this.#waiter = null;
    this.#recvBusy--;
    if (waiter.onAbort) waiter.cancel!.removeEventListener('abort', waiter.onAbort);
    if (body === undefined) waiter.reject(error);
    else waiter.resolve(waiter.frame ? { type, data: body } : body);
    this.#wakeQueued();
  }

  #take(frame: boolean): Buffer | Frame {
    if (!frame) return this.#takeBody();
    const type = this.#inboxTypes === null ? 0 : this.#inboxTypes.peek()!;
    return { type, data: this.#takeBody() };
  }

  /** Take the next buffered message (the inbox is not empty). */
  #takeBody(): Buffer {
    const body = this.#inbox.shift()!;
    if (this.#inboxTypes !== null) this.#inboxTypes.shift();
    this.#inboxBytes -= body.length + MESSAGE_OVERHEAD;
    if (this.#paused && this.#inboxBytes <= this.#recvHWM >>> 1) {
      this.#paused = false;
      if (this.#state < CLOSING) this.#stream.resume();
    }
    return body;
  }

  readonly #onFrame = (body: Buffer, type: number): void => {
    if (this.#state >= CLOSING) return; // closed locally: the user asked for no more
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#settleWaiter(waiter, body, type);
      return;
    }
    this.#inbox.push(body);
    if (this.#inboxTypes !== null) this.#inboxTypes.push(type);
    this.#inboxBytes += body.length + MESSAGE_OVERHEAD;
    if (!this.#paused && this.#inboxBytes > this.#recvHWM) {
      this.#paused = true;
      this.#stream.pause();
    }
  };

  readonly #onData = (chunk: Buffer): void => {
    if (this.#raw !== null) {
      this.#raw.feed(chunk);
      return;
    }
    try {
      this.#decoder.push(chunk, this.#onFrame);
    } catch (error) {
      this.#fail(error as Error);
    }
  };

  /**
   * Messages until the peer closes at a frame boundary. Breaking out does not close the channel:
   * unread messages stay for later recv(). Any other error that ends the channel is thrown.
   */
  iterRecv(): AsyncIterableIterator<Buffer> {
    let finished = false;
    const end = (error: unknown): IteratorResult<Buffer, undefined> => {
      finished = true;
      if (error instanceof ChannelClosedError) return DONE;
      throw error;
    };
    const iterator: AsyncIterableIterator<Buffer> = {
      next: () => {
        if (finished) return Promise.resolve(DONE);
        // A buffered message, uncontended: one resolved promise, no generator machinery.
        if (this.#recvBusy === 0 && this.#inbox.length > 0) return Promise.resolve({ value: this.#takeBody(), done: false });
        return this.recv().then(nextResult, end);
      },
      return: () => {
        finished = true;
        return Promise.resolve(DONE);
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this.iterRecv();
  }

  /** Messages received but not yet taken by recv(). */
  get bufferedMessages(): number {
    return this.#inbox.length;
  }

  /** True until the channel starts closing (locally, by the peer, or on an error). */
  get isOpen(): boolean {
    return this.#state <= OPEN && this.#error === undefined;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Flush what was sent, end the connection and resolve once it is closed. Pending and later
   * recv() calls reject with ChannelClosedError. Idempotent.
   */
  close(options?: CloseOptions): Promise<void> {
    if (this.#closing) return this.#closing;
    const timeout = checkTimeout('timeout', options?.timeout) ?? DEFAULT_CLOSE_TIMEOUT;
    const wasOpen = this.#state <= OPEN;
    if (this.#state < CLOSING) this.#state = CLOSING;
    if (!(this.#error instanceof ChannelClosedError) || wasOpen) {
      this.#error = new ChannelClosedError('channel was closed', this.#error ? { cause: this.#error } : undefined);
    }
    // Discard unread messages and fail waiting recvs: the user asked for no more.
    this.#inbox.drain();
    this.#inboxTypes?.drain();
    this.#inboxBytes = 0;
    if (this.#waiter) this.#settleWaiter(this.#waiter, undefined, 0, this.#error);
    if (this.#paused) {
      this.#paused = false;
      this.#stream.resume(); // keep reading (and discarding) so the peer's end arrives
    }
    this.#closing = this.#closeGracefully(timeout);
    this.#closing.catch(noop);
    return this.#closing;
  }

  async #closeGracefully(timeout: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, timeout, 'timeout')));
    try {
      const flushed = (async () => {
        await this.#sendQueue.onIdle();
        this.#flushSlab();
        if (!this.#stream.writableEnded && !this.#stream.destroyed) this.#stream.end();
        await this.closed;
      })();
      if ((await Promise.race([flushed, timedOut])) === 'timeout') {
        const error = new TimeoutError(`close timed out after ${timeout} ms`);
        this.destroy(error);
        throw error;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Close at once without flushing. Pending operations reject with `error` (or ChannelClosedError). */
  destroy(error?: Error): void {
    if (this.#state === CLOSED && this.#stream.destroyed) return;
    if (error) this.#fail(error);
    else {
      if (this.#state < CLOSING) this.#state = CLOSING;
      if (this.#error === undefined) this.#error = new ChannelClosedError('channel was destroyed');
      this.#endReceive();
      this.#stream.destroy();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** End the channel with an error: waiting recvs and queued sends reject with it, the transport is destroyed. */
  #fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    if (this.#error === undefined || this.#error instanceof ChannelClosedError) this.#error = error;
    if (this.#state < CLOSING) this.#state = CLOSING;
    this.#endReceive();
    this.#rejectBacklog(this.#closedError());
    this.#onDrain();
    this.#stream.destroy();
  }

  /** Receiving has ended: the waiting recv (if the inbox is empty) rejects; queued ones follow. */
  #endReceive(): void {
    this.#raw?.fail(this.#error!);
    const waiter = this.#waiter;
    if (waiter !== null) this.#settleWaiter(waiter, undefined, 0, this.#error);
  }

  readonly #onEnd = (): void => {
    if (this.#raw !== null || !this.#decoder.atBoundary) {
      this.#fail(
        new UnexpectedEofError(
          this.#raw !== null ? 'connection closed during the handshake' : 'connection closed in the middle of a frame',
          { offset: this.#decoder.offset },
        ),
      );
      return;
    }
    if (this.#error === undefined) this.#error = new ChannelClosedError('peer closed the connection');
    if (this.#state < CLOSING) this.#state = CLOSING;
    this.#endReceive();
  };

  readonly #onError = (error: Error): void => {
    this.#fail(error);
  };

  readonly #onClose = (): void => {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    clearInterval(this.#watchdog);
    if (this.#error === undefined) this.#error = new ChannelClosedError('connection closed');
    this.#endReceive();
    this.#rejectBacklog(this.#closedError());
    this.#onDrain();
    this.#slab = null;
    this.#resolveClosed(this.#failed ? this.#error : undefined);
  };

  async #handshake(run: (io: HandshakeIO) => Promise<void>, isServer: boolean, timeout: number): Promise<void> {
    const raw = this.#raw!;
    const stream = this.#stream;
    const io: HandshakeIO = {
      isServer,
      read: (n) => raw.read(n),
      write: (bytes) => {
        if (!stream.destroyed) stream.write(bytes);
      },
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        run(io),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new TimeoutError(`${this.framing.name} handshake timed out after ${timeout} ms`)), timeout);
        }),
      ]);
    } catch (error) {
      this.#fail(error as Error);
      throw this.#error;
    } finally {
      clearTimeout(timer);
    }
    if (this.#state !== HANDSHAKE) throw this.#closedError();
    this.#state = OPEN;
    this.#raw = null;
    this.#armWatchdog();
    const rest = raw.leftover();
    if (rest.length > 0) this.#onData(rest);
    if (this.#state === OPEN && stream.isPaused() && !this.#paused) stream.resume();
  }
}

/** Buffers raw bytes during a framing's handshake and serves exact-length reads. */
class RawReader {
  readonly #stream: Duplex;
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #length = 0;
  #pending: { n: number; resolve(b: Buffer): void; reject(e: unknown): void } | null = null;
  #error: Error | undefined;

  constructor(stream: Duplex, limit: number) {
    this.#stream = stream;
    this.#limit = limit;
  }

  feed(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    this.#serve();
    if (this.#length > this.#limit) this.#stream.pause();
  }

  read(n: number): Promise<Buffer> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#pending) return Promise.reject(new Error('RawReader: one read at a time'));
    return new Promise((resolve, reject) => {
      this.#pending = { n, resolve, reject };
      this.#serve();
      if (this.#pending && this.#stream.isPaused()) this.#stream.resume();
    });
  }

  fail(error: Error): void {
    this.#error = error;
    const p = this.#pending;
    this.#pending = null;
    p?.reject(error);
  }

  leftover(): Buffer {
    const all = Buffer.concat(this.#chunks, this.#length);
    this.#chunks = [];
    this.#length = 0;
    return all;
  }

  #serve(): void {
    const p = this.#pending;
    if (p === null || this.#length < p.n) return;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#length);
    this.#pending = null;
    const rest = all.subarray(p.n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#length = rest.length;
    p.resolve(all.subarray(0, p.n));
  }
}

/** Refuse an incoming connection: the framing's refusal bytes then close, or a TCP reset. */
function refuse(socket: net.Socket, framing: Framing | undefined): void {
  socket.on('error', noop);
  const refusal = framing?.refusal;
  if (refusal !== undefined) {
    socket.resume(); // discard what the client sends, so its close is seen
    socket.end(refusal);
    socket.setTimeout(DEFAULT_CLOSE_TIMEOUT, () => socket.destroy());
    return;
  }
  try {
    socket.resetAndDestroy(); // TCP: the client reads ECONNRESET before any frame
  } catch {
    socket.destroy(); // not TCP (a Unix socket): a close before any frame
  }
}

function describeTarget(opts: { host?: string | undefined; port?: number | undefined; path?: string | undefined }): string {
  return opts.path !== undefined ? opts.path : `${opts.host ?? 'localhost'}:${opts.port}`;
}

function connectChannel(opts: ConnectOptions): Promise<Channel> {
  let timeout: number | undefined;
  try {
    timeout = checkTimeout('timeout', opts.timeout);
    if (opts.path === undefined) checkSize('port', opts.port, 0, 65535);
  } catch (error) {
    return Promise.reject(error);
  }
  const target = describeTarget(opts);
  return new Promise<Channel>((resolve, reject) => {
    const where = opts.path !== undefined ? { path: opts.path } : { host: opts.host ?? 'localhost', port: opts.port! };
    const secure = opts.tls !== undefined;
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    const socket: net.Socket = secure
      ? tls.connect({ ...(opts.tls === true ? {} : opts.tls), ...where })
      : net.connect(where);
    let channel: Channel | undefined;
    let timer: NodeJS.Timeout | undefined;
    const settle = (): void => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.removeListener('error', onError);
    };
    const fail = (error: unknown): void => {
      settle();
      if (channel) channel.destroy(error as Error);
      else socket.destroy();
      reject(error);
    };
    const onError = (error: Error): void => fail(error);
    const onAbort = (): void => fail(opts.signal!.reason);
    socket.once('error', onError);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = setTimeout(() => fail(new TimeoutError(`connect to ${target} timed out after ${timeout} ms`)), timeout);
    }
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      if (opts.path === undefined) socket.setNoDelay(opts.noDelay ?? true);
      if (opts.keepAlive && opts.path === undefined) socket.setKeepAlive(true, opts.keepAlive === true ? 0 : opts.keepAlive);
      socket.removeListener('error', onError);
      channel = new Channel(socket, opts);
      channel.ready.then(
        () => {
          settle();
          resolve(channel!);
        },
        (error: unknown) => fail(error),
      );
    });
  });
}

/**
 * A listening server: an async iterable of client channels. Clients that connect while nobody
 * iterates wait in a queue; none is lost. Leaving a `for await` loop closes the listener;
 * channels already handed out stay open.
 */
export class Listener implements AsyncIterable<Channel> {
  /** Resolves with the bound address once listening; rejects on EADDRINUSE and the like. */
  readonly listening: Promise<AddressInfo>;

  readonly #server: net.Server;
  readonly #options: ListenOptions;
  readonly #queue = new Deque<Channel>();
  readonly #takers = new Deque<{ resolve(r: IteratorResult<Channel, undefined>): void; reject(e: unknown): void }>();
  #error: Error | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: ListenOptions) {
    this.#options = options;
    if (options.path === undefined) checkSize('port', options.port, 0, 65535);
    checkChannelOptions(options); // now, not at the first client
    const max = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (typeof max !== 'number' || !(max >= 0) || (max !== Infinity && !Number.isInteger(max))) {
      throw new RangeError(`Expected \`maxConnections\` to be an integer >= 0 or Infinity, got ${String(max)}`);
    }
    this.#maxConnections = max;
    this.#server = options.tls
      ? tls.createServer(options.tls, (socket) => this.#onSocket(socket))
      : net.createServer((socket) => this.#onSocket(socket));
    if (options.tls) this.#server.on('tlsClientError', noop); // a failed TLS handshake ends that socket only
    this.listening = new Promise<AddressInfo>((resolve, reject) => {
      const onError = (error: Error): void => {
        this.#fatal(error);
        reject(error);
      };
      this.#server.once('error', onError);
      this.#server.once('listening', () => {
        this.#server.removeListener('error', onError);
        this.#server.on('error', (error) => this.#fatal(error));
        const address = this.address!;
        if (options.echo) console.log(`listening on ${options.path ?? `${address.address}:${address.port}`}`);
        resolve(address);
      });
    });
    this.listening.catch(noop);
    const listenOptions: net.ListenOptions & { reusePort?: boolean } =
      options.path !== undefined
        ? { path: options.path, backlog: options.backlog }
        : { host: options.host, port: options.port, backlog: options.backlog, reusePort: options.reuse ?? true };
    this.#server.listen(listenOptions);
    if (options.signal) {
      if (options.signal.aborted) void this.close();
      else options.signal.addEventListener('abort', () => void this.close(), { once: true });
    }
  }

  /** What was bound (port 0 picks a free one); null before listening and after close. */
  get address(): AddressInfo | null {
    const a = this.#server.address();
    if (a === null) return null;
    if (typeof a === 'string') return { address: a, family: 'unix', port: 0 };
    return a;
  }

  /** Channels accepted but not yet taken by the iterator. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Connections accepted whose framing handshake has not finished yet (not yet in `pending`). */
  get handshaking(): number {
    return this.#handshaking;
  }

  #handshaking = 0;
  readonly #maxConnections: number;
  /** Channels of this listener not yet closed (handshaking, pending or handed out). */
  #open = 0;

  /** Connections of this listener open now: in their handshake, pending, or handed out and not closed. */
  get connections(): number {
    return this.#open;
  }

  readonly #closedOne = (): void => {
    this.#open--;
  };

  #onSocket(socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (this.#open >= this.#maxConnections || (this.#options.admit !== undefined && !this.#options.admit())) {
      refuse(socket, this.#options.framing);
      return;
    }
    if (this.#options.path === undefined) {
      socket.setNoDelay(this.#options.noDelay ?? true);
      const keepAlive = this.#options.keepAlive;
      if (keepAlive) socket.setKeepAlive(true, keepAlive === true ? 0 : keepAlive);
    }
    let channel: Channel;
    try {
      channel = new Channel(socket, { ...this.#options, isServer: true });
    } catch (error) {
      socket.destroy();
      this.#fatal(error as Error);
      return;
    }
    if (this.#options.echo) console.log(`--> ${channel.ip ?? this.#options.path}:${channel.port ?? ''}`);
    this.#open++;
    void channel.closed.then(this.#closedOne);
    this.#handshaking++;
    channel.ready.then(
      () => {
        this.#handshaking--;
        this.#deliver(channel);
      },
      () => this.#handshaking--, // a failed handshake ends that connection only
    );
  }

  #deliver(channel: Channel): void {
    if (this.#closed) {
      channel.destroy();
      return;
    }
    const taker = this.#takers.shift();
    if (taker) taker.resolve({ value: channel, done: false });
    else this.#queue.push(channel);
  }

  #fatal(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    const t = this.#takers.shift();
    if (t) {
      this.#errorReported = true;
      t.reject(error);
    }
    void this.close();
  }

  /** Wait for the next client. Resolves with undefined once the listener is closed. */
  async accept(): Promise<Channel | undefined> {
    const r = await this.#next();
    return r.done ? undefined : r.value;
  }

  #errorReported = false;

  #next(): Promise<IteratorResult<Channel, undefined>> {
    const channel = this.#queue.shift();
    if (channel) return Promise.resolve({ value: channel, done: false });
    if (this.#error && !this.#errorReported) {
      // A listener error (EADDRINUSE, ...) is thrown once by the iterator, then it is done.
      this.#errorReported = true;
      return Promise.reject(this.#error);
    }
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#takers.push({ resolve, reject }));
  }

  /** Stop accepting. Channels handed out stay open; ones accepted but not yet handed out are closed. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    for (let ch = this.#queue.shift(); ch; ch = this.#queue.shift()) ch.destroy();
    for (let t = this.#takers.shift(); t; t = this.#takers.shift()) t.resolve({ value: undefined, done: true });
    this.#closing = new Promise<void>((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      // server.close()'s callback waits for every connection to end; the port is released now.
      this.#server.close();
      setImmediate(resolve);
    });
    return this.#closing;
  }

  [Symbol.asyncIterator](): AsyncIterator<Channel, undefined> {
    return {
      next: () => this.#next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
      throw: async (error?: unknown) => {
        await this.close();
        throw error;
      },
    };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

