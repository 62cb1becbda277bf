/**
 * Channel options: their types, named defaults and checks. Every way of making a channel
 * (constructor, connect, listen, pair, Server, Client) validates through checkChannelOptions().
 */
import { constants as bufferConstants } from 'node:buffer';
import type * as tls from 'node:tls';
import { authKey, type AuthOptions } from '../auth.js';
import { TimeoutError } from '../errors.js';
import { msg } from '../framing/msg.js';
import type { Framing } from '../framing/types.js';
import { checkInt, checkNumber, checkPort, checkTimeout, describe } from '../validate.js';
import { afterTimeout, noop } from '../util.js';
import type { ReadSource } from './reader.js';
import type { MemoryBudget } from './budget.js';
import type { ResumeOptions } from '../session/options.js';
import type { SessionStats } from '../session/stream.js';
import { attachedServer, type WebSocketListenOptions } from '../ws/options.js';

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

/** close()'s timeout from its options (DEFAULT_CLOSE_TIMEOUT when absent), or the RangeError/TypeError of a bad one. */
export function closeTimeout(options: CloseOptions | undefined): number | Error {
  try {
    return checkTimeout('timeout', options?.timeout) ?? DEFAULT_CLOSE_TIMEOUT;
  } catch (error) {
    return error as Error;
  }
}
/** Default `headerTimeout`: a frame's header must be in within 30 s of its first byte. */
export const DEFAULT_HEADER_TIMEOUT = 30_000;
/** Default `maxQueuedBytes`: sends that would queue more than 16 MiB per connection are refused. */
export const DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Default `bodyTimeout`: a message in progress must receive 1 MiB (or end) within every 30 s. */
export const DEFAULT_BODY_TIMEOUT = 30_000;
/** Default `memoryBudget` of a Listener (and a Server): 256 MiB held in large message bodies across its connections. */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;
/** Default `maxConnections` of a Listener (and a Server): 10,000 connections at once. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

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
   * `authkey`) and `auth`'s, together. `0` or `Infinity`: no limit (as every timeout: see checkTimeout).
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
   * Milliseconds within which a message in progress must receive at least 1 MiB more of itself
   * (or end): a peer that trickles or stalls a body fails the channel with TimeoutError, so it
   * cannot hold the body's memory (a listener's `memoryBudget`) for ever. Checked like
   * `headerTimeout`; not counted while the channel itself paused reading. `0` turns it off.
   * @default 30000
   */
  bodyTimeout?: number;
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
  /**
   * A resumable session (docs/sessions.md): the channel survives dropped connections, reconnecting
   * with backoff, and every message arrives exactly once and in order. The server must listen
   * with `resume` too. `true` for the defaults, or `{ window, keep, heartbeat }`.
   * @default false
   */
  resume?: boolean | ResumeOptions;
  /** Connect over WebSocket to this ws:// or wss:// URL (docs/websocket.md) instead of host and port; `tls` options apply to wss. */
  url?: string;
  /** WebSocket: the `Origin` header to send (a server with `allowedOrigins` checks it). */
  origin?: string;
  /** WebSocket: the largest WebSocket message accepted, in bytes (msgchannel's senders send at most 64 KiB each). @default 65536 */
  maxPayload?: number;
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
   * Most bytes all connections of this listener may hold in message bodies of 64 KiB and up, from
   * their header until recv() takes them (bodies still arriving, and received but unread). A
   * connection whose next body would not fit waits, with reading paused, instead of allocating;
   * a body may always start when nothing else is held, so a message above the budget is still
   * received alone. Smaller messages are bounded per connection by `highWaterMark`. Raise it to
   * receive many large messages at once (e.g. `memoryBudget: 2 * 1024 ** 3`); `Infinity` for none.
   * @default 256 MiB
   */
  memoryBudget?: number;
  /** @internal A budget shared with other listeners (a Server's), instead of one of `memoryBudget`. */
  budget?: MemoryBudget;
  /** @internal A connection's handshake failed (it is closed; the listener goes on): a Server reports it to onError. */
  onHandshakeError?: (error: Error) => void;
  /**
   * Most connections of this listener open at once: in their handshake, accepted but not yet
   * taken, or handed out and not yet closed. An extra one is refused like `admit` refuses (before
   * any byte: tinyproto's `FE`, otherwise a TCP reset). `Infinity` for no limit.
   * @default 10000
   */
  maxConnections?: number;
  /**
   * Serve WebSocket clients (docs/websocket.md): the listener's port (with `tls`: wss) answers
   * HTTP upgrade requests, or `ws.server` attaches to an http(s).Server of yours. `true` for any
   * path and origin. Limits, timeouts and backpressure hold as over TCP.
   */
  ws?: WebSocketListenOptions | true;
}

/** Options of Channel.listen() with resumable sessions: it returns a SessionListener. */
export interface SessionListenOptions extends ListenOptions {
  /**
   * Resumable sessions (docs/sessions.md): each client's session is yielded once, and its
   * reconnections re-attach to it. Only clients that connect with `resume` can connect.
   * `true` for the defaults, or `{ window, keep, heartbeat, maxSessions, maxDetached, replayBudget }`.
   */
  resume: true | ResumeOptions;
}

/** Per-call options of recv(). */
export interface RecvOptions {
  /** Aborting rejects this recv with the signal's reason; it takes no message. */
  signal?: AbortSignal;
  /** Milliseconds to wait; then it rejects with TimeoutError and takes no message. `0` or `Infinity`: no limit. */
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
   * destroyed and close() rejects with TimeoutError. `0` or `Infinity`: no limit.
   * @default 10000
   */
  timeout?: number;
}

/** A received frame with its type field (0 for framings without one). */
export interface Frame {
  type: number;
  data: Buffer;
}

/** Channel options after checkChannelOptions(): every default filled in, `auth` as its key. */
export type CheckedOptions = Required<Omit<ChannelOptions, 'auth'>> & { auth: Buffer | undefined };

/** The Framing a mistaken `framing` value probably meant: `int32, not the string 'int32'`. */
function framingExample(value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(value)) return 'msg, int32, ltprotocol()';
  const factory = ['ltprotocol', 'lengthPrefixed', 'pythonConnection'].includes(value);
  return `${value}${factory ? '()' : ''}, not ${describe(value)}`;
}

/** Validate channel options, filling in the defaults; throws RangeError/TypeError on bad values. */
export function checkChannelOptions(options: ChannelOptions): CheckedOptions {
  const framing = options.framing ?? msg;
  if (
    typeof framing !== 'object' ||
    typeof framing.createDecoder !== 'function' ||
    typeof framing.writeHeader !== 'function'
  ) {
    throw new TypeError(
      `Expected \`framing\` to be a Framing (e.g. ${framingExample(framing)}), got ${describe(framing)}`,
    );
  }
  return {
    framing,
    maxMessageSize: checkInt(
      'maxMessageSize',
      options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      0,
      bufferConstants.MAX_LENGTH,
    ),
    highWaterMark: checkInt(
      'highWaterMark',
      options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    sendHighWaterMark: checkInt(
      'sendHighWaterMark',
      options.sendHighWaterMark ?? DEFAULT_SEND_HIGH_WATER_MARK,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    handshakeTimeout: checkTimeout('handshakeTimeout', options.handshakeTimeout) ?? DEFAULT_HANDSHAKE_TIMEOUT,
    headerTimeout: checkTimeout('headerTimeout', options.headerTimeout) ?? DEFAULT_HEADER_TIMEOUT,
    idleTimeout: checkTimeout('idleTimeout', options.idleTimeout) ?? 0,
    bodyTimeout: checkTimeout('bodyTimeout', options.bodyTimeout) ?? DEFAULT_BODY_TIMEOUT,
    maxQueuedBytes: checkInt(
      'maxQueuedBytes',
      options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
      0,
      Number.MAX_SAFE_INTEGER,
    ),
    auth: options.auth === undefined ? undefined : authKey(options.auth),
  };
}

/** Check what connect() needs before it opens a socket: the address, `timeout`, and every channel option. */
export function checkConnectOptions(opts: ConnectOptions): number | undefined {
  if (opts.path === undefined) checkPort(opts.port);
  checkChannelOptions(opts);
  return checkTimeout('timeout', opts.timeout);
}

/** Check what listen() needs before it binds: the address, every channel option and `maxConnections`. */
export function checkListenOptions(opts: ListenOptions): {
  maxConnections: number;
  handshakeTimeout: number;
  memoryBudget: number;
} {
  if (opts.path === undefined && attachedServer(opts) === undefined) checkPort(opts.port);
  const { handshakeTimeout } = checkChannelOptions(opts);
  return {
    maxConnections: checkNumber('maxConnections', opts.maxConnections, 0, true) ?? DEFAULT_MAX_CONNECTIONS,
    handshakeTimeout,
    memoryBudget: checkNumber('memoryBudget', opts.memoryBudget, 0, true) ?? DEFAULT_MEMORY_BUDGET,
  };
}

/** What listeners and servers pass to the channels they make, beside the options. */
export interface ChannelInternals {
  /** True on the side that accepted the connection. */
  isServer?: boolean;
  /** @internal The listener's (or server's) memory budget for large bodies. */
  budget?: MemoryBudget;
  /** @internal The socket's direct reader (it was made with its `onread`): reads come from it, not 'data'. */
  reader?: ReadSource;
}

/** A signal that aborts when `signal` does or after `timeout` ms (0: no limit); `dispose` releases the timer and listener. */
export function deadline(
  signal: AbortSignal | undefined,
  timeout: number | undefined,
  what: string,
): { signal: AbortSignal | undefined; dispose: () => void } {
  if (timeout === undefined || timeout === 0) return { signal, dispose: noop };
  const controller = new AbortController();
  const timer = afterTimeout(timeout, () =>
    controller.abort(new TimeoutError(`${what} timed out after ${timeout} ms`)),
  );
  const onAbort = (): void => controller.abort(signal!.reason);
  if (signal) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    dispose: () => {
      timer.clear();
      signal?.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * Counters of a channel since it was made (`ch.stats`). Bytes are message bodies, framing headers
 * not included. Sent: frames handed to the transport; received: frames decoded from it, whether or
 * not recv() has taken them yet (frames arriving after a local close() are discarded, not counted).
 */
export interface ChannelStats {
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /**
   * Of bytesReceived, the body bytes read from the socket straight into their message (the direct
   * receive path of plain TCP and Unix sockets under Node: no copy). 0 where that path is not used
   * (TLS, Channel.pair, a wrapped stream, Bun, Deno) or for bodies under 64 KiB.
   */
  bytesReadDirect: number;
  /**
   * Sends that were accepted and then failed: refused (SendQueueFullError), dropped because the
   * channel ended before they were written, refused by a tinyproto peer, or whose write failed.
   * Those that nobody handled also make close() reject with SendsFailedError.
   */
  sendsFailed: number;
  /** With `resume`: the session's counters (resumes, bytes and messages replayed, unacknowledged bytes). */
  session?: SessionStats;
}

/**
 * The deadline of one recv() from its `signal` and `timeout`, or `{ error }` when the signal is
 * already aborted (its reason) or `timeout` is bad (a RangeError): callers reject with it.
 */
export function recvDeadline(
  options: RecvOptions | undefined,
): { signal: AbortSignal | undefined; dispose: () => void } | { error: unknown } {
  let limit: { signal: AbortSignal | undefined; dispose: () => void };
  try {
    limit = deadline(options?.signal, checkTimeout('timeout', options?.timeout), 'recv');
  } catch (error) {
    return { error };
  }
  if (limit.signal?.aborted) {
    limit.dispose();
    return { error: limit.signal.reason };
  }
  return limit;
}
