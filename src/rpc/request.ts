/**
 * RequestChannel: request/reply with correlation ids, one-way messages, heartbeats and counters
 * over any Channel, through the public Channel API (plus Channel.sendJoined, which writes an
 * envelope head and its payload into the write slab without joining them first). Every message
 * carries the envelope of envelope.ts at the front of its body, so any framing works. The RequestChannel takes over the
 * channel's receiving: one read loop (the pump) matches replies to requests by id, runs request
 * handlers (at most `maxPending` at once) and queues one-way messages for recv(). While either is
 * full it stops reading, so the Channel's highWaterMark pushes back on the peer.
 */
import type { Channel } from '../core/channel.js';
import type { CloseOptions, RecvOptions } from '../core/options.js';
import { Deque } from '../core/deque.js';
import { ChannelClosedError, MessageTooLargeError, RemoteError, TimeoutError } from '../errors.js';
import { WarningLimiter, reportError } from '../report.js';
import { handledRejection, noop } from '../util.js';
import { checkDelay, describe } from '../validate.js';
import {
  ERROR,
  ONEWAY,
  PING,
  PONG,
  REPLY,
  REQUEST,
  decodeEnvelope,
  encodeError,
  encodeMessage,
  envelopeError,
  idLength,
  readError,
  readId,
  writeId,
} from './envelope.js';
import { view } from '../framing/body.js';
import { Inbox } from './inbox.js';
import { PendingTable } from './pending.js';
import {
  checkRequestSettings,
  type OneWaySendOptions,
  type RequestChannelOptions,
  type RequestChannelStats,
  type RequestContext,
  type RequestHandler,
  type RequestOptions,
  type RequestReply,
} from './options.js';

/** One request, from the call until it settles. */
interface Pending {
  /** What request() returned; marked handled when it is rejected. */
  promise: Promise<Buffer> | undefined;
  id: number;
  /** The data, kept only while it waits for a `maxPending` slot. */
  data: Uint8Array | string | undefined;
  resolve(body: Buffer): void;
  reject(error: unknown): void;
  /** The shared clock's tick at which it expires; 0 when the request has its own timer or none. */
  deadline: number;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
  /** In #waiting and not settled. */
  queued: boolean;
}

/**
 * The shared timeout clock ticks every `timeout / TICKS` ms while requests with the default
 * timeout are pending, so such a request expires between `timeout` and (1 + 1/TICKS) x `timeout`
 * after the call, with no clock read or timer per request.
 */
const TICKS = 8;

const PING_BODY = Buffer.from([PING]);
const PONG_BODY = Buffer.from([PONG]);
const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/** An error the peer's handler raised, as its error reply said; no stack (it would only point at the read loop). */
function remoteError(message: string, code: string | undefined): RemoteError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new RemoteError(message, code === undefined ? undefined : { remoteCode: code });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

// One executor for every request's promise (no closure per request): it hands resolve and reject over here.
let nextResolve: (body: Buffer) => void = noop;
let nextReject: (error: unknown) => void = noop;
function takeResolvers(resolve: (body: Buffer) => void, reject: (error: unknown) => void): void {
  nextResolve = resolve;
  nextReject = reject;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/** message and code of whatever a handler threw. */
function describeThrown(error: unknown): { message: string; code: string | undefined } {
  try {
    if (error instanceof Error) {
      const code = (error as { code?: unknown }).code;
      return { message: String(error.message), code: typeof code === 'string' ? code : undefined };
    }
    return { message: String(error), code: undefined };
  } catch {
    return { message: 'the request handler failed', code: undefined };
  }
}

/**
 * Requests and replies, matched by id, and ordered one-way messages over one Channel.
 * @example
 * const server = new RequestChannel(a, { onRequest: (body) => body.toString().toUpperCase() });
 * const client = new RequestChannel(b);
 * const reply = await client.request('hello', { timeout: 1000 }); // <Buffer 48 45 4c 4c 4f>
 */
export class RequestChannel implements AsyncIterable<Buffer> {
  /** The channel below; do not read from it yourself (the RequestChannel takes every message). */
  readonly channel: Channel;
  readonly stats: RequestChannelStats = {
    requestsSent: 0,
    repliesReceived: 0,
    remoteErrors: 0,
    timeouts: 0,
    aborted: 0,
    lateReplies: 0,
    requestsReceived: 0,
    repliesSent: 0,
    errorsSent: 0,
    oneWaySent: 0,
    oneWayReceived: 0,
    pingsSent: 0,
    pongsReceived: 0,
    pingsReceived: 0,
    pongsSent: 0,
    protocolErrors: 0,
  };
  /**
   * Resolves once the channel has closed and every pending request has been rejected: with
   * undefined after a clean close, the error that ended the channel otherwise. Never rejects.
   */
  readonly closed: Promise<Error | undefined>;

  readonly #handler: RequestHandler | undefined;
  readonly #timeout: number;
  readonly #maxPending: number;
  readonly #sendLimit: number;
  /** The channel joins an envelope head to its payload as it writes (a Channel does; a look-alike may not). */
  readonly #joined: boolean;
  /** Where #sendMessage writes an envelope head (kind and id: at most 9 bytes), copied out at once. */
  readonly #head = Buffer.alloc(16);
  readonly #onError: ((error: Error) => unknown) | undefined;
  readonly #warnings = new WarningLimiter();

  // Requester.
  /** The next request id: ids count up from 1 and are never reused (2^53 of them). */
  #nextId = 1;
  /** Requests written and not settled, by id. */
  readonly #pending: PendingTable<Pending>;
  /** Requests waiting for a `maxPending` slot, in call order (settled ones are skipped). */
  readonly #waiting = new Deque<Pending>();
  /** Entries of #waiting not settled yet. */
  #queued = 0;
  /** One interval for every request with the default timeout (see TICKS): their deadlines come in call order. */
  #ticker: NodeJS.Timeout | undefined;
  #tick = 0;
  /** What the last write's send() returned: the Channel's fast path returns one already-resolved promise. */
  #lastSent: Promise<void> | undefined;

  // Responder.
  #running = 0;
  readonly #abort = new AbortController();
  /** One context for every handler: its signal aborts when the channel closes. */
  readonly #ctx: RequestContext;

  /** One-way messages received and not yet taken by recv(). */
  readonly #inbox: Inbox;

  // The read loop.
  /** Resumes the pump while it waits for room (handlers or inbox full). */
  #wake: (() => void) | null = null;
  /** Messages taken from the channel, for the heartbeat. */
  #received = 0;
  /** The channel's transport has closed: read what is left whatever the limits, to the end. */
  #closedSeen = false;
  #ended = false;
  #endError: Error | undefined;
  #resolveEnded!: () => void;

  // Heartbeat.
  readonly #heartbeat: { interval: number; timeout: number } | undefined;
  #hbTimer: NodeJS.Timeout | undefined;
  #hbSeen = 0;
  #hbPinged = false;

  constructor(channel: Channel, options: RequestChannelOptions = {}) {
    if (typeof channel?.recv !== 'function' || typeof channel.send !== 'function') {
      throw new TypeError(`Expected a Channel, got ${describe(channel)}`);
    }
    if (options.onRequest !== undefined && typeof options.onRequest !== 'function') {
      throw new TypeError(`Expected \`onRequest\` to be a function, got ${describe(options.onRequest)}`);
    }
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new TypeError(`Expected \`onError\` to be a function, got ${describe(options.onError)}`);
    }
    this.channel = channel;
    this.#handler = options.onRequest;
    this.#onError = options.onError;
    const o = checkRequestSettings(options);
    this.#timeout = o.timeout;
    this.#maxPending = o.maxPending;
    this.#pending = new PendingTable(Math.min(4096, 2 * o.maxPending));
    this.#heartbeat = o.heartbeat;
    this.#sendLimit = Math.min(channel.maxMessageSize, channel.framing.maxEncodableSize);
    this.#joined = typeof channel.sendJoined === 'function';
    this.#inbox = new Inbox(o.highWaterMark, () => {
      if (this.#wake !== null) this.#wakePump();
    });
    this.#ctx = Object.freeze({ signal: this.#abort.signal });
    const ended = new Promise<void>((resolve) => (this.#resolveEnded = resolve));
    this.closed = Promise.all([channel.closed, ended]).then(([error]) => error);
    void channel.closed.then(() => {
      this.#closedSeen = true;
      this.#wakePump();
    });
    void this.#pump();
    if (this.#heartbeat !== undefined) this.#armHeartbeat(this.#heartbeat.interval);
  }

  /** Requests outstanding (written, not yet answered). */
  get pending(): number {
    return this.#pending.size;
  }

  /** request() calls waiting for a `maxPending` slot. */
  get waiting(): number {
    return this.#queued;
  }

  /** Request handlers running. */
  get running(): number {
    return this.#running;
  }

  /** One-way messages received and not yet taken by recv(). */
  get bufferedMessages(): number {
    return this.#inbox.length;
  }

  /** True until the channel starts closing. */
  get isOpen(): boolean {
    return !this.#ended && this.channel.isOpen;
  }

  // ---------------------------------------------------------------- requests

  /**
   * Send a request and resolve with the reply body. Rejects with RemoteError (ERR_REMOTE) when the
   * peer's handler failed, TimeoutError (ERR_TIMEOUT) after `timeout`, the signal's reason on
   * abort, and ChannelClosedError (or the error that ended the channel) when the channel closes
   * first. Beyond `maxPending` outstanding, it waits for a slot (in call order) within its timeout.
   * The promise is marked handled (as Channel.send()'s): it rejects for whoever awaits it, never as
   * an unhandled rejection.
   */
  request(data: Uint8Array | string, options?: RequestOptions): Promise<Buffer> {
    if (this.#ended) return handledRejection(this.#closedError());
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      return Promise.reject(new TypeError(`Expected a Uint8Array or a string, got ${describe(data)}`));
    }
    let timeout = this.#timeout;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      try {
        timeout = checkDelay('timeout', options.timeout, 0) ?? timeout;
      } catch (error) {
        return Promise.reject(error);
      }
      signal = options.signal;
      if (signal?.aborted) return Promise.reject(signal.reason);
    }
    const promise = new Promise<Buffer>(takeResolvers);
    const p: Pending = {
      promise,
      id: 0,
      data,
      resolve: nextResolve,
      reject: nextReject,
      deadline: 0,
      timer: undefined,
      signal,
      onAbort: undefined,
      done: false,
      queued: false,
    };
    const now = this.#queued === 0 && this.#pending.size < this.#maxPending;
    if (timeout > 0) {
      if (timeout === this.#timeout && now) {
        // Default timeout, written at once: the shared clock (deadlines come in call order).
        p.deadline = this.#tick + TICKS + 1;
        if (this.#ticker === undefined) {
          this.#ticker = setInterval(this.#onTick, Math.max(1, timeout / TICKS));
          this.#ticker.unref();
        }
      } else {
        p.timer = setTimeout(() => this.#expire(p, timeout), timeout);
        p.timer.unref();
      }
    }
    if (signal !== undefined) {
      p.onAbort = () => this.#cancel(p, signal.reason, 'aborted');
      signal.addEventListener('abort', p.onAbort, { once: true });
    }
    if (now) this.#write(p);
    else {
      p.queued = true;
      this.#queued++;
      this.#waiting.push(p);
    }
    return promise;
  }

  /**
   * Reject a request, marking its promise handled (as Channel.send() does): a peer closing the
   * channel rejects every pending request, and one the caller has not reached yet must not crash
   * the process. Marked here rather than at creation, which would cost a reaction per request.
   */
  #reject(p: Pending, error: unknown): void {
    p.reject(error);
    p.promise!.catch(noop);
  }

  /** Write a request now: it gets its id and joins the pending map. */
  #write(p: Pending): void {
    const id = this.#nextId++;
    const sent = this.#sendMessage(REQUEST, id, p.data!);
    p.data = undefined;
    if (typeof sent === 'number') {
      this.#settle(p);
      this.#reject(p, new MessageTooLargeError(sent, this.#sendLimit, 'send'));
      return;
    }
    p.id = id;
    this.#pending.put(p);
    this.stats.requestsSent++;
    // A refusal (SendQueueFullError, or the channel closing) rejects this request at once. The
    // Channel's uncontended path returns one shared, already-resolved promise: a reaction on it
    // per request would only cost a microtask, so a promise seen before is skipped. (Were send()
    // ever to return distinct promises, each would simply be watched.)
    if (sent !== this.#lastSent) {
      this.#lastSent = sent;
      sent.then(undefined, (error: unknown) => this.#cancel(p, error, undefined));
    }
  }

  /**
   * Send `kind id payload` as one message; returns its length instead when it is over the limit.
   * A byte payload is joined to its envelope head in the Channel's write slab (no buffer of its
   * own, one copy), a string is encoded once into one buffer.
   */
  #sendMessage(kind: number, id: number, payload: Uint8Array | string): Promise<void> | number {
    if (typeof payload !== 'string' && this.#joined) {
      const head = this.#head;
      head[0] = kind;
      const headLength = writeId(head, 1, id);
      const length = headLength + payload.byteLength;
      if (length > this.#sendLimit) return length;
      const body = Buffer.isBuffer(payload)
        ? payload
        : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      return this.channel.sendJoined(head, headLength, body);
    }
    const body = encodeMessage(kind, id, payload);
    return body.length > this.#sendLimit ? body.length : this.channel.send(body);
  }

  /** Start waiting requests while there is room. */
  #startWaiting(): void {
    while (this.#pending.size < this.#maxPending) {
      const p = this.#waiting.shift();
      if (p === undefined) return;
      if (!p.queued) continue; // settled while it waited
      p.queued = false;
      this.#queued--;
      this.#write(p);
    }
  }

  /** Stop a request's timer and abort listener; it is settled by the caller. */
  #settle(p: Pending): void {
    p.done = true;
    if (p.queued) {
      p.queued = false;
      this.#queued--;
    }
    if (p.timer !== undefined) clearTimeout(p.timer);
    if (p.onAbort !== undefined) p.signal!.removeEventListener('abort', p.onAbort);
  }

  /** Reject a request that has not settled (timeout, abort, refused write); a reply that comes later is late. */
  #cancel(p: Pending, error: unknown, counter: 'timeouts' | 'aborted' | undefined): void {
    if (p.done) return;
    this.#settle(p);
    if (counter !== undefined) this.stats[counter]++;
    this.#reject(p, error);
    if (p.id !== 0 && this.#pending.take(p.id) !== undefined && this.#queued > 0) this.#startWaiting();
  }

  #expire(p: Pending, timeout: number): void {
    this.#cancel(p, new TimeoutError(`request timed out after ${timeout} ms`), 'timeouts');
  }

  /** The shared clock: expire the default-timeout requests whose tick has come, in call order; stop when none is left. */
  readonly #onTick = (): void => {
    const tick = ++this.#tick;
    const due: Pending[] = [];
    let left = false;
    for (const p of this.#pending.entries()) {
      if (p.deadline === 0) continue; // its own timer, or none
      if (p.deadline > tick) left = true;
      else due.push(p);
    }
    due.sort((a, b) => a.id - b.id);
    for (const p of due) this.#expire(p, this.#timeout);
    if (left) return;
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  };

  #onReply(id: number, payload: Buffer): void {
    const p = this.#pending.take(id);
    if (p === undefined) {
      this.#unmatched(id);
      return;
    }
    this.#settle(p);
    this.stats.repliesReceived++;
    p.resolve(payload);
    if (this.#queued > 0) this.#startWaiting();
  }

  #onErrorReply(id: number, body: Buffer, at: number): void {
    const p = this.#pending.take(id);
    if (p === undefined) {
      this.#unmatched(id);
      return;
    }
    let error: Error;
    try {
      const { code, message } = readError(body, at);
      error = remoteError(message, code);
      this.stats.remoteErrors++;
    } catch (e) {
      error = e as Error; // over its limits: the request learns why, as a ProtocolError
      this.stats.protocolErrors++;
    }
    this.#settle(p);
    this.#reject(p, error);
    if (this.#queued > 0) this.#startWaiting();
  }

  /** A reply with no pending request: late (an id we sent) or made up (one we never sent). */
  #unmatched(id: number): void {
    if (id >= 1 && id < this.#nextId) this.stats.lateReplies++;
    else this.#protocolError(envelopeError(`reply to request id ${id}, which this side never sent`));
  }

  // ---------------------------------------------------------------- answering

  #onRequest(id: number, payload: Buffer): void {
    this.stats.requestsReceived++;
    if (this.#ended || !this.channel.isOpen) return; // the reply could not be sent
    const handler = this.#handler;
    if (handler === undefined) {
      this.#replyError(id, { message: 'no request handler on this side (onRequest)', code: 'ERR_NO_HANDLER' });
      return;
    }
    this.#running++;
    let result: RequestReply | PromiseLike<RequestReply>;
    try {
      result = handler(payload, this.#ctx);
    } catch (error) {
      this.#running--;
      this.#replyError(id, describeThrown(error));
      return;
    }
    if (isThenable(result)) {
      Promise.resolve(result).then(
        (value) => {
          this.#running--;
          this.#reply(id, value);
          this.#wakePump();
        },
        (error: unknown) => {
          this.#running--;
          this.#replyError(id, describeThrown(error));
          this.#wakePump();
        },
      );
      return;
    }
    this.#running--;
    this.#reply(id, result);
  }

  #reply(id: number, value: unknown): void {
    if (this.#ended) return;
    if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
      this.#replyError(id, {
        message: `the request handler returned ${describe(value)}, expected a Uint8Array or a string`,
        code: 'ERR_INVALID_REPLY',
      });
      return;
    }
    const sent = this.#sendMessage(REPLY, id, value);
    if (typeof sent === 'number') {
      this.#replyError(id, {
        message: new MessageTooLargeError(sent, this.#sendLimit, 'send').message,
        code: 'ERR_MESSAGE_TOO_LARGE',
      });
      return;
    }
    // The send is not awaited: the Channel marks a refusal (closed, SendQueueFullError) handled; the requester then times out.
    this.stats.repliesSent++;
  }

  #replyError(id: number, error: { message: string; code: string | undefined }): void {
    if (this.#ended) return;
    let body = encodeError(id, error.code, error.message);
    if (body.length > this.#sendLimit) body = encodeError(id, undefined, '');
    if (body.length > this.#sendLimit) return; // maxMessageSize below a few bytes
    this.stats.errorsSent++;
    void this.channel.send(body);
  }

  // ---------------------------------------------------------------- one-way messages

  /** Send a one-way message (no reply). One-way messages keep their order among themselves, and with requests sent from the same side. */
  send(data: Uint8Array | string, options?: OneWaySendOptions): Promise<void> {
    if (this.#ended) return handledRejection(this.#closedError());
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      return Promise.reject(new TypeError(`Expected a Uint8Array or a string, got ${describe(data)}`));
    }
    this.stats.oneWaySent++;
    const body = encodeMessage(ONEWAY, -1, data);
    return options?.signal !== undefined
      ? this.channel.send(body, { signal: options.signal })
      : this.channel.send(body);
  }

  /**
   * The next one-way message, in wire order. Concurrent calls resolve in call order; an aborted or
   * timed-out recv takes no message. Rejects with ChannelClosedError once the channel has closed
   * and every message was read (or with the error that ended it).
   */
  recv(options?: RecvOptions): Promise<Buffer> {
    return this.#inbox.recv(options);
  }

  /** The next one-way message if one is buffered and no recv() waits, without a promise; undefined otherwise. */
  tryRecv(): Buffer | undefined {
    return this.#inbox.tryRecv();
  }

  /** One-way messages until the channel closes (ChannelClosedError ends the loop; other errors are thrown). */
  async *messages(): AsyncGenerator<Buffer, void, undefined> {
    for (;;) {
      let m: Buffer;
      try {
        m = this.tryRecv() ?? (await this.recv());
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
      yield m;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer, undefined> {
    let finished = false;
    return {
      next: async () => {
        if (finished) return DONE;
        try {
          return { value: this.tryRecv() ?? (await this.recv()), done: false };
        } catch (error) {
          finished = true;
          if (error instanceof ChannelClosedError) return DONE;
          throw error;
        }
      },
      return: async () => {
        finished = true;
        return DONE;
      },
    };
  }

  // ---------------------------------------------------------------- the read loop

  async #pump(): Promise<void> {
    const channel = this.channel;
    for (;;) {
      if (!this.#ended && !this.#closedSeen && (this.#running >= this.#maxPending || this.#inbox.full)) {
        // Full: stop reading, so the Channel's highWaterMark pushes back on the peer.
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      let body = channel.tryRecv();
      if (body === undefined) {
        try {
          body = await channel.recv();
        } catch (error) {
          this.#end(error instanceof Error ? error : new ChannelClosedError(String(error)));
          return;
        }
      }
      this.#received++;
      if (!this.#ended) this.#dispatch(body);
    }
  }

  #wakePump(): void {
    const wake = this.#wake;
    if (wake !== null) {
      this.#wake = null;
      wake();
    }
  }

  #dispatch(body: Buffer): void {
    try {
      switch (body[0]) {
        case ONEWAY:
          this.stats.oneWayReceived++;
          this.#inbox.push(view(body, 1, body.length - 1));
          return;
        case REQUEST: {
          const id = readId(body, 1);
          const at = 1 + idLength(id);
          this.#onRequest(id, view(body, at, body.length - at));
          return;
        }
        case REPLY: {
          const id = readId(body, 1);
          const at = 1 + idLength(id);
          this.#onReply(id, view(body, at, body.length - at));
          return;
        }
        case ERROR: {
          const id = readId(body, 1);
          this.#onErrorReply(id, body, 1 + idLength(id));
          return;
        }
      }
      const e = decodeEnvelope(body); // ping, pong; throws for the rest
      if (e.kind === 'ping') {
        this.stats.pingsReceived++;
        this.#pong();
      } else if (e.kind === 'pong') this.stats.pongsReceived++;
    } catch (error) {
      this.#protocolError(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #pong(): void {
    if (!this.channel.isOpen) return;
    this.stats.pongsSent++;
    void this.channel.send(PONG_BODY);
  }

  #protocolError(error: Error): void {
    this.stats.protocolErrors++;
    reportError(this.#onError, this.#warnings.tag(error));
  }

  // ---------------------------------------------------------------- heartbeat

  #armHeartbeat(delay: number): void {
    this.#hbTimer = setTimeout(this.#heartbeatTick, delay);
    this.#hbTimer.unref();
  }

  readonly #heartbeatTick = (): void => {
    this.#hbTimer = undefined;
    if (this.#ended) return;
    const { interval, timeout } = this.#heartbeat!;
    if (this.#wake !== null) {
      // We paused reading (handlers all busy, or one-way messages unread): the peer is not to
      // blame, and its pings wait unread behind its requests, so tell it we are alive.
      this.#hbSeen = this.#received;
      this.#hbPinged = false;
      this.#pong();
      this.#armHeartbeat(interval);
      return;
    }
    // Anything received since the last tick: alive.
    if (this.#received !== this.#hbSeen) {
      this.#hbSeen = this.#received;
      this.#hbPinged = false;
      this.#armHeartbeat(interval);
      return;
    }
    if (!this.#hbPinged) {
      this.#hbPinged = true;
      this.stats.pingsSent++;
      void this.channel.send(PING_BODY);
      this.#armHeartbeat(timeout);
      return;
    }
    this.channel.destroy(
      new TimeoutError(`heartbeat: nothing received for ${timeout} ms after a ping (interval ${interval} ms)`),
    );
  };

  // ---------------------------------------------------------------- lifecycle

  #closedError(): Error {
    const error = this.#endError;
    if (error instanceof ChannelClosedError) return error;
    return new ChannelClosedError('channel is closed', error ? { cause: error } : undefined);
  }

  /** The end: handlers' signal aborts, every pending and waiting request and every waiting recv rejects with `error`. */
  #end(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endError = error;
    clearInterval(this.#ticker);
    clearTimeout(this.#hbTimer);
    this.#ticker = this.#hbTimer = undefined;
    this.#abort.abort(error);
    for (const p of this.#pending.entries().sort((a, b) => a.id - b.id)) {
      this.#settle(p);
      this.#reject(p, error);
    }
    this.#pending.clear();
    for (let p = this.#waiting.shift(); p !== undefined; p = this.#waiting.shift()) {
      if (p.done) continue;
      this.#settle(p);
      this.#reject(p, error);
    }
    this.#inbox.end(error);
    this.#warnings.flush();
    this.#wakePump(); // it reads on (and drops) until the channel's recv() rejects
    this.#resolveEnded();
  }

  /**
   * Close: handlers' signal aborts, pending requests and waiting recv()s reject with
   * ChannelClosedError, unread one-way messages are discarded, then the channel closes gracefully
   * (what was already sent is flushed). Idempotent.
   */
  close(options?: CloseOptions): Promise<void> {
    this.#end(new ChannelClosedError('channel was closed'));
    this.#inbox.clear();
    return this.channel.close(options);
  }

  /** Close at once without flushing (see Channel.destroy); pending requests reject with `error` (or ChannelClosedError). */
  destroy(error?: Error): void {
    this.#end(error ?? new ChannelClosedError('channel was destroyed'));
    this.channel.destroy(error);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
