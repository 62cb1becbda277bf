/**
 * The options of request/reply: RequestChannel's, a Server's or Client's `requests`, and request()'s;
 * their defaults and checks (through src/validate.ts), and the RequestChannel's counters.
 */
import { DEFAULT_HIGH_WATER_MARK } from '../core/options.js';
import { checkDelay, checkNumber, checkTimeout, describe } from '../validate.js';

/** Default `timeout` of a request: 30 s. */
export const DEFAULT_REQUEST_TIMEOUT = 30_000;
/** Default `maxPending`: requests outstanding, and the peer's requests being answered, per RequestChannel. */
export const DEFAULT_MAX_PENDING = 256;

/** What a request handler gets besides the body. */
export interface RequestContext {
  /** Aborted (with the reason) when the channel ends: the reply could no longer be sent. */
  readonly signal: AbortSignal;
}

/** What a request handler returns: the reply body (a string is sent as UTF-8). */
export type RequestReply = Uint8Array | string;

/**
 * Answers a request; a throw or rejection reaches the requester as RemoteError, and so does any
 * value that is not bytes or a string (or a promise or thenable of one), whatever it is.
 */
export type RequestHandler = (body: Buffer, ctx: RequestContext) => RequestReply | PromiseLike<RequestReply>;

/** Liveness by ping/pong, off by default. */
export interface HeartbeatOptions {
  /**
   * Send a ping after this many ms in which nothing was received (checked every `interval`, so
   * after 1 to 2 x `interval`). While this side has stopped reading (requests held up to their
   * bound, or one-way messages unread), it sends a pong every `interval` instead, so a peer with a
   * heartbeat knows it is alive, and blames no one until reading resumes.
   */
  interval: number;
  /** After a ping, close the channel with TimeoutError if nothing at all (no pong, no message) arrives within this many ms. */
  timeout: number;
}

/** Options of a RequestChannel. */
export interface RequestChannelOptions {
  /** Answers the peer's requests. Without one, every request gets an error reply (RemoteError at the requester). */
  onRequest?: RequestHandler;
  /**
   * Default timeout of request(), in ms, counted from the call (time waiting for a `maxPending`
   * slot included). `0`: no timeout. Requests with this timeout share one clock, so they expire
   * between `timeout` and 1.125 x `timeout` after the call; a per-request `timeout` is exact.
   * @default 30000
   */
  timeout?: number;
  /** Ping when idle, close a dead peer. Off by default; pings from the peer are always answered. */
  heartbeat?: HeartbeatOptions;
  /**
   * Most requests outstanding (further request() calls wait their turn, in call order), and most
   * of the peer's requests being answered, each from when it is read until its reply has left the
   * send queue (further requests are held, up to `maxPending` more and `highWaterMark` bytes; then
   * reading pauses). `Infinity`: no limit.
   * @default 256
   */
  maxPending?: number;
  /**
   * Bytes of one-way messages received and not yet taken by recv() before reading pauses (as the
   * Channel's own `highWaterMark`; replies then wait too: read your one-way messages), and the most
   * body bytes of requests held while every `maxPending` slot is taken.
   * @default 1 MiB
   */
  highWaterMark?: number;
  /**
   * Envelopes the peer got wrong (an unknown kind, a bad id, a reply to an id never sent...): each
   * is a ProtocolError (ERR_PROTOCOL), that message is dropped and the channel carries on. Without
   * a handler: a process warning, rate-limited per channel.
   */
  onError?: (error: Error) => unknown;
}

/** Per-call options of request(). */
export interface RequestOptions {
  /** ms, counted from the call; `0`: none. @default the RequestChannel's `timeout` */
  timeout?: number;
  /** Aborting rejects the request with the signal's reason; a reply that comes later is dropped (`lateReplies`). */
  signal?: AbortSignal;
}

/** Per-call options of RequestChannel.send(). */
export interface OneWaySendOptions {
  /** Aborting before the message is handed to the transport rejects with the signal's reason and sends nothing. */
  signal?: AbortSignal;
}

/** Counters of a RequestChannel (plain numbers, updated in place). */
export interface RequestChannelStats {
  /** Requests written to the channel. */
  requestsSent: number;
  /** Replies that settled a request. */
  repliesReceived: number;
  /** Error replies that rejected a request with RemoteError. */
  remoteErrors: number;
  /** Requests that timed out. */
  timeouts: number;
  /** Requests aborted by their signal. */
  aborted: number;
  /** Replies (or error replies) to a request that had already timed out or been aborted: dropped. */
  lateReplies: number;
  /** Requests received from the peer. */
  requestsReceived: number;
  /** Replies sent. */
  repliesSent: number;
  /** Error replies sent (a handler threw, returned a bad value, or there is no handler). */
  errorsSent: number;
  oneWaySent: number;
  oneWayReceived: number;
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  /**
   * Pongs sent: answers to pings (one answers every ping that came while the previous pong was
   * still queued), and, with `heartbeat`, one per interval while this side has stopped reading.
   */
  pongsSent: number;
  /** Envelopes the peer got wrong (see `onError`). */
  protocolErrors: number;
}

/** The settings a RequestChannel (or a Server or Client with `requests`) takes, checked, with their defaults. */
export function checkRequestSettings(options: Omit<RequestChannelOptions, 'onRequest' | 'onError'>): {
  timeout: number;
  maxPending: number;
  highWaterMark: number;
  heartbeat: { interval: number; timeout: number } | undefined;
} {
  const hb = options.heartbeat;
  let heartbeat: { interval: number; timeout: number } | undefined;
  if (hb !== undefined) {
    if (typeof hb !== 'object' || hb === null)
      throw new TypeError(`Expected \`heartbeat\` to be { interval, timeout }, got ${describe(hb)}`);
    const interval = checkDelay('heartbeat.interval', hb.interval, 1, Infinity);
    const timeout = checkDelay('heartbeat.timeout', hb.timeout, 1, Infinity);
    if (interval === undefined || timeout === undefined)
      throw new RangeError('Expected `heartbeat` to have both `interval` and `timeout`');
    heartbeat = { interval, timeout };
  }
  return {
    timeout: checkTimeout('timeout', options.timeout) ?? DEFAULT_REQUEST_TIMEOUT,
    maxPending: checkNumber('maxPending', options.maxPending, 1, true) ?? DEFAULT_MAX_PENDING,
    highWaterMark: checkNumber('highWaterMark', options.highWaterMark, 1, true) ?? DEFAULT_HIGH_WATER_MARK,
    heartbeat,
  };
}
