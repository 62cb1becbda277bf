/**
 * RequestChannel: request/reply with correlation ids, one-way messages, heartbeats and counters
 * over any Channel, through the public Channel API (plus Channel.sendJoined, which writes an
 * envelope head and its payload into the write slab without joining them first, and
 * Channel.holdMemory). Every message carries the envelope of envelope.ts at the front of its body,
 * so any framing works. The RequestChannel takes over the channel's receiving: one read loop (the
 * pump) matches replies to requests by id, answers pings, runs request handlers and queues one-way
 * messages for recv().
 *
 * What the peer can make it hold is bounded (docs/request-reply.md, "Bounds"): a request takes one
 * of `maxPending` slots from the moment it is read until its reply has left the channel's send
 * queue; requests read while every slot is taken wait (at most `maxPending` of them, and at most
 * `highWaterMark` bytes), one-way messages wait up to `highWaterMark` bytes, and one pong answers
 * every ping that came while the previous one was still queued. Past a bound the pump stops
 * reading, so the Channel's highWaterMark, then TCP, pushes back on the peer.
 */
import { setMaxListeners } from 'node:events';
import type { Channel } from '../core/channel.js';
import type { CloseOptions, RecvOptions } from '../core/options.js';
import { Deque } from '../core/deque.js';
import { messages } from '../core/iterator.js';
import { ChannelClosedError, MessageTooLargeError, NoHandlerError, closedError } from '../errors.js';
import { BODY_BUDGET_MIN, view } from '../framing/body.js';
import { WarningLimiter, reportError } from '../report.js';
import { handledRejection } from '../util.js';
import { describe } from '../validate.js';
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
  idLength,
  readId,
  writeId,
} from './envelope.js';
import { adopt, describeThrown, invalidReply, mustAdopt, replyBody, type ErrorReply } from './handler.js';
import { Heartbeat } from './heartbeat.js';
import { Inbox } from './inbox.js';
import { Requester } from './requester.js';
import {
  checkRequestSettings,
  type OneWaySendOptions,
  type RequestChannelOptions,
  type RequestChannelStats,
  type RequestContext,
  type RequestHandler,
  type RequestOptions,
} from './options.js';

/** A request from the peer read while every slot was taken: it starts when one frees. */
interface HeldRequest {
  id: number;
  payload: Buffer;
  /** Gives its body's bytes back to the memory budget (bodies of BODY_BUDGET_MIN and up). */
  release: (() => void) | undefined;
}

const PING_BODY = Buffer.from([PING]);
const PONG_BODY = Buffer.from([PONG]);
const NO_HANDLER: ErrorReply = describeThrown(new NoHandlerError());

/**
 * Listeners each running handler may add to the shared `ctx.signal` (its own, and those of the
 * APIs it passes the signal to) before Node warns of a leak: a handler that never removes its
 * listeners is still reported, once they outnumber what the handlers in flight can hold.
 */
const HANDLER_SIGNAL_LISTENERS = 4;

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
   * Resolves once the channel has closed and every outstanding request has been rejected: with
   * undefined after a clean close, the error that ended the channel otherwise. Never rejects.
   */
  readonly closed: Promise<Error | undefined>;

  readonly #handler: RequestHandler | undefined;
  readonly #maxPending: number;
  readonly #highWaterMark: number;
  readonly #sendLimit: number;
  /** The channel joins an envelope head to its payload as it writes (a Channel does; a look-alike may not). */
  readonly #joined: boolean;
  /** The channel counts what a layer above holds against a memory budget (a Channel does; a look-alike may not). */
  readonly #budgeted: boolean;
  /** Where #sendMessage writes an envelope head (kind and id: at most 9 bytes), copied out at once. */
  readonly #head = Buffer.alloc(16);
  readonly #onError: ((error: Error) => unknown) | undefined;
  readonly #warnings = new WarningLimiter();
  /**
   * A send() promise seen fulfilled. A settled promise never changes, so a later send that returns
   * this same promise needs no watching (the Channel's uncontended path returns one shared,
   * resolved promise). A record of what was observed, so it holds for any send().
   */
  #fulfilled: Promise<void> | undefined;

  readonly #requester: Requester;

  // Responder.
  /** Handlers called and not settled. */
  #running = 0;
  /** Replies (and error replies) handed to the channel whose send has not settled: they hold their slot. */
  #unsentReplies = 0;
  /** Requests read while every slot was taken, in wire order, and their body bytes. */
  readonly #held = new Deque<HeldRequest>();
  #heldBytes = 0;
  /** #slotFreed is starting held requests. */
  #startingHeld = false;
  readonly #abort = new AbortController();
  /** One context for every handler: its signal aborts when the channel closes. */
  readonly #ctx: RequestContext;
  /** A pong is queued in the channel: pings that come meanwhile are answered by one more after it. */
  #pongQueued = false;
  #pongOwed = false;

  /** One-way messages received and not yet taken by recv(). */
  readonly #inbox: Inbox;

  // The read loop.
  /** Resumes the pump while it waits for room (held requests or inbox full). */
  #wake: (() => void) | null = null;
  /** Messages taken from the channel, for the heartbeat. */
  #received = 0;
  /** The channel's transport has closed: read what is left whatever the limits, to the end. */
  #closedSeen = false;
  #ended = false;
  #endError: Error | undefined;
  #resolveEnded!: () => void;
  readonly #heartbeat: Heartbeat | undefined;

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
    this.#maxPending = o.maxPending;
    this.#highWaterMark = o.highWaterMark;
    this.#sendLimit = Math.min(channel.maxMessageSize, channel.framing.maxEncodableSize);
    this.#requester = new Requester(
      {
        send: (kind, id, payload) => this.#sendMessage(kind, id, payload),
        sendLimit: this.#sendLimit,
        stats: this.stats,
        protocolError: (error) => this.#protocolError(error),
        knownSent: (sent) => sent === this.#fulfilled,
        sawSent: (sent) => {
          this.#fulfilled = sent;
        },
      },
      o.timeout,
      o.maxPending,
    );
    this.#joined = typeof channel.sendJoined === 'function';
    this.#budgeted = typeof channel.holdMemory === 'function';
    this.#inbox = new Inbox(o.highWaterMark, () => this.#wakeIfRoom());
    // Up to maxPending handlers share this signal at once, each may listen to it while it runs:
    // Node's default of 10 listeners would warn of a leak for correct code.
    setMaxListeners(HANDLER_SIGNAL_LISTENERS * o.maxPending, this.#abort.signal);
    this.#ctx = Object.freeze({ signal: this.#abort.signal });
    const ended = new Promise<void>((resolve) => (this.#resolveEnded = resolve));
    this.closed = Promise.all([channel.closed, ended]).then(([error]) => error);
    void channel.closed.then(() => {
      this.#closedSeen = true;
      this.#wakePump();
    });
    void this.#pump();
    if (o.heartbeat !== undefined) {
      this.#heartbeat = new Heartbeat(o.heartbeat, {
        // The channel reads ahead while this stops taking messages: bytes arriving are the peer's
        // sign of life, and only once the channel itself has stopped reading can nothing be learned.
        received: () => this.#received + (channel.bytesRead ?? 0),
        notTaking: () => this.#wake !== null,
        peerBlocked: () => this.#wake !== null && (channel.peerBlocked ?? true),
        ping: () => {
          this.stats.pingsSent++;
          void this.channel.send(PING_BODY);
        },
        pong: () => this.#pong(),
        fail: (error) => this.channel.destroy(error),
      });
    }
  }

  /** Requests outstanding (written, not yet answered). */
  get outstanding(): number {
    return this.#requester.outstanding;
  }

  /** @deprecated The old name of `outstanding`. */
  get pending(): number {
    return this.#requester.outstanding;
  }

  /** request() calls waiting for a `maxPending` slot. */
  get waiting(): number {
    return this.#requester.waiting;
  }

  /** Request handlers running. */
  get running(): number {
    return this.#running;
  }

  /** Requests from the peer read while every `maxPending` slot was taken, waiting to start. */
  get heldRequests(): number {
    return this.#held.length;
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
    if (this.#ended) return handledRejection(closedError(this.#endError));
    return this.#requester.request(data, options);
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

  // ---------------------------------------------------------------- answering

  /** A request from the peer: answered now if a slot is free, held otherwise. */
  #onRequest(id: number, payload: Buffer, release: (() => void) | undefined): void {
    this.stats.requestsReceived++;
    if (this.#ended || !this.channel.isOpen) {
      release?.(); // the reply could not be sent
      return;
    }
    if (this.#running + this.#unsentReplies < this.#maxPending) this.#answer(id, payload, release);
    else {
      this.#held.push({ id, payload, release });
      this.#heldBytes += payload.length;
    }
  }

  /** Run the handler on a request; its slot is taken until the reply has left the send queue. */
  #answer(id: number, payload: Buffer, release: (() => void) | undefined): void {
    const handler = this.#handler;
    if (handler === undefined) {
      this.#freeSlotWhenSent(this.#replyError(id, NO_HANDLER), release);
      return;
    }
    this.#running++;
    let result: unknown;
    try {
      result = handler(payload, this.#ctx);
    } catch (error) {
      this.#running--;
      this.#freeSlotWhenSent(this.#replyError(id, describeThrown(error)), release);
      return;
    }
    if (!mustAdopt(result)) {
      this.#running--;
      this.#freeSlotWhenSent(this.#reply(id, result), release);
      return;
    }
    adopt(
      result,
      (value) => {
        this.#running--;
        this.#freeSlotWhenSent(this.#reply(id, value), release);
      },
      (error) => {
        this.#running--;
        this.#freeSlotWhenSent(this.#replyError(id, describeThrown(error)), release);
      },
    );
  }

  /** Send the reply a handler's value stands for; what its send returned (undefined: nothing sent). */
  #reply(id: number, value: unknown): Promise<void> | undefined {
    if (this.#ended) return undefined;
    const body = replyBody(value);
    if (body === undefined) return this.#replyError(id, invalidReply(value));
    const sent = this.#sendMessage(REPLY, id, body);
    if (typeof sent === 'number') {
      const message = new MessageTooLargeError(sent, this.#sendLimit, 'send').message;
      return this.#replyError(id, { message, code: 'ERR_MESSAGE_TOO_LARGE' });
    }
    this.stats.repliesSent++;
    return sent;
  }

  #replyError(id: number, error: ErrorReply): Promise<void> | undefined {
    if (this.#ended) return undefined;
    let body = encodeError(id, error.code, error.message);
    if (body.length > this.#sendLimit) body = encodeError(id, undefined, '');
    if (body.length > this.#sendLimit) return undefined; // maxMessageSize below a few bytes
    this.stats.errorsSent++;
    return this.channel.send(body);
  }

  /**
   * A reply was handed to the channel (or not sent at all): its slot frees, and its request's body
   * goes back to the memory budget, once the send has settled. A refused send (the channel closed,
   * or SendQueueFullError from a peer that does not read its replies) drops the reply; the
   * requester times out.
   */
  #freeSlotWhenSent(sent: Promise<void> | undefined, release: (() => void) | undefined): void {
    if (sent === undefined || sent === this.#fulfilled) {
      release?.();
      this.#slotFreed();
      return;
    }
    this.#unsentReplies++;
    sent.then(
      () => {
        this.#fulfilled = sent;
        release?.();
        this.#onReplySent();
      },
      () => {
        release?.();
        this.#onReplySent();
      },
    );
  }

  #onReplySent(): void {
    this.#unsentReplies--;
    this.#slotFreed();
  }

  /**
   * Start held requests while slots are free (in wire order), then read again if there is room.
   * A request started here may free its slot at once (a reply known sent): the loop that is
   * already running takes the next one, rather than a call nested in it.
   */
  #slotFreed(): void {
    if (this.#startingHeld) return;
    this.#startingHeld = true;
    try {
      while (this.#held.length > 0 && this.#running + this.#unsentReplies < this.#maxPending) {
        const h = this.#held.shift()!;
        this.#heldBytes -= h.payload.length;
        if (this.#ended) h.release?.();
        else this.#answer(h.id, h.payload, h.release);
      }
    } finally {
      this.#startingHeld = false;
    }
    this.#wakeIfRoom();
  }

  // ---------------------------------------------------------------- one-way messages

  /** Send a one-way message (no reply). One-way messages keep their order among themselves, and with requests sent from the same side. */
  send(data: Uint8Array | string, options?: OneWaySendOptions): Promise<void> {
    if (this.#ended) return handledRejection(closedError(this.#endError));
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
  messages(): AsyncIterableIterator<Buffer> {
    return messages(this);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return messages(this);
  }

  // ---------------------------------------------------------------- the read loop

  /** Reading stops while requests wait for a slot beyond their bound, or one-way messages beyond theirs. */
  #mustPause(): boolean {
    return this.#held.length >= this.#maxPending || this.#heldBytes > this.#highWaterMark || this.#inbox.full;
  }

  async #pump(): Promise<void> {
    const channel = this.channel;
    for (;;) {
      if (!this.#ended && !this.#closedSeen && this.#mustPause()) {
        // Full: stop reading, so the Channel's highWaterMark, then TCP, pushes back on the peer.
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

  #wakeIfRoom(): void {
    if (this.#wake !== null && !this.#mustPause()) this.#wakePump();
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
          // Kept after recv() took it: its bytes count against the memory budget until it is answered.
          const release =
            body.length >= BODY_BUDGET_MIN && this.#budgeted ? this.channel.holdMemory(body.length) : undefined;
          this.#onRequest(id, view(body, at, body.length - at), release);
          return;
        }
        case REPLY: {
          const id = readId(body, 1);
          const at = 1 + idLength(id);
          this.#requester.onReply(id, view(body, at, body.length - at));
          return;
        }
        case ERROR: {
          const id = readId(body, 1);
          this.#requester.onErrorReply(id, body, 1 + idLength(id));
          return;
        }
        case undefined:
          break; // empty: not an envelope (decodeEnvelope below says why), as are unknown kinds
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

  /** Answer pings: at most one pong waits in the channel; pings meanwhile are answered by one more after it. */
  #pong(): void {
    if (this.#pongQueued) {
      this.#pongOwed = true;
      return;
    }
    if (!this.channel.isOpen) return;
    this.#pongQueued = true;
    this.stats.pongsSent++;
    this.channel.send(PONG_BODY).then(this.#onPongSent, this.#onPongSent);
  }

  readonly #onPongSent = (): void => {
    this.#pongQueued = false;
    if (!this.#pongOwed) return;
    this.#pongOwed = false;
    this.#pong();
  };

  #protocolError(error: Error): void {
    this.stats.protocolErrors++;
    reportError(this.#onError, this.#warnings.tag(error));
  }

  // ---------------------------------------------------------------- lifecycle

  /** The end: handlers' signal aborts, every outstanding and waiting request and every waiting recv rejects with `error`. */
  #end(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endError = error;
    this.#heartbeat?.stop();
    this.#abort.abort(error);
    this.#requester.end(error);
    for (let h = this.#held.shift(); h !== undefined; h = this.#held.shift()) h.release?.();
    this.#heldBytes = 0;
    this.#inbox.end(error);
    this.#warnings.flush();
    this.#wakePump(); // it reads on (and drops) until the channel's recv() rejects
    this.#resolveEnded();
  }

  /**
   * Close: handlers' signal aborts, outstanding requests and waiting recv()s reject with
   * ChannelClosedError, unread one-way messages are discarded, then the channel closes gracefully
   * (what was already sent is flushed). Idempotent.
   */
  close(options?: CloseOptions): Promise<void> {
    this.#end(new ChannelClosedError('channel was closed'));
    this.#inbox.clear();
    return this.channel.close(options);
  }

  /** Close at once without flushing (see Channel.destroy); outstanding requests reject with `error` (or ChannelClosedError). */
  destroy(error?: Error): void {
    this.#end(error ?? new ChannelClosedError('channel was destroyed'));
    this.channel.destroy(error);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
