/**
 * The requester side of a RequestChannel: request() calls, waiting for one of `maxPending` slots in
 * call order, then outstanding (written, by id) until their reply, error reply, timeout, abort or
 * the end of the channel settles them. Timeouts share one clock where they can (see TICKS).
 */
import { Deque } from '../core/deque.js';
import { MessageTooLargeError, RemoteError, TimeoutError, withoutStack } from '../errors.js';
import { MAX_TIMER_DELAY, after, noop, type Timer } from '../util.js';
import { checkTimeout, describe } from '../validate.js';
import { REQUEST, envelopeError, readError } from './envelope.js';
import type { RequestChannelStats, RequestOptions } from './options.js';
import { OutstandingRequests } from './outstanding.js';

/** One request() call, from the call until it settles (waiting for a slot, then outstanding). */
interface OutgoingRequest {
  /** What request() returned; marked handled when it is rejected. */
  readonly promise: Promise<Buffer>;
  readonly resolve: (body: Buffer) => void;
  readonly reject: (error: unknown) => void;
  /** 0 until written. */
  id: number;
  /** The data, kept only while it waits for a `maxPending` slot. */
  data: Uint8Array | string | undefined;
  /** The shared clock's tick at which it expires; 0 when the request has its own timer or none. */
  deadline: number;
  timer: Timer | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
  /** In the waiting queue and not settled. */
  queued: boolean;
}

/**
 * The shared timeout clock ticks every `timeout / TICKS` ms while requests with the default
 * timeout are outstanding, so such a request expires between `timeout` and (1 + 1/TICKS) x
 * `timeout` after the call, with no clock read or timer per request.
 */
const TICKS = 8;

/** What the requester needs of its RequestChannel. */
export interface RequesterHost {
  /** Send `kind id payload` as one message; its length instead when it is over `sendLimit`. */
  send(kind: number, id: number, payload: Uint8Array | string): Promise<void> | number;
  readonly sendLimit: number;
  readonly stats: RequestChannelStats;
  /** A reply the peer got wrong. */
  protocolError(error: Error): void;
  /** Whether this send() promise was seen fulfilled already (then it needs no watching). */
  knownSent(sent: Promise<void>): boolean;
  /** This send() promise was seen fulfilled. */
  sawSent(sent: Promise<void>): void;
}

/** An error the peer's handler raised, as its error reply said; no stack (it would only point at the read loop). */
function remoteError(message: string, code: string | undefined): RemoteError {
  return withoutStack(() => new RemoteError(message, code === undefined ? undefined : { remoteCode: code }));
}

export class Requester {
  readonly #host: RequesterHost;
  readonly #stats: RequestChannelStats;
  /** The default timeout of a request (0: none). */
  readonly #timeout: number;
  readonly #maxPending: number;
  /** The next request id: ids count up from 1 and are never reused (2^53 of them). */
  #nextId = 1;
  /** Requests written and not settled, by id. */
  readonly #outstanding: OutstandingRequests<OutgoingRequest>;
  /** Requests waiting for a `maxPending` slot, in call order (settled ones are skipped). */
  readonly #waitingForSlot = new Deque<OutgoingRequest>();
  /** Entries of #waitingForSlot not settled yet. */
  #waitingCount = 0;
  /** One interval for every request with the default timeout (see TICKS): their deadlines come in call order. */
  #ticker: NodeJS.Timeout | undefined;
  #tick = 0;

  constructor(host: RequesterHost, timeout: number, maxPending: number) {
    this.#host = host;
    this.#stats = host.stats;
    this.#timeout = timeout;
    this.#maxPending = maxPending;
    this.#outstanding = new OutstandingRequests(Math.min(4096, 2 * maxPending));
  }

  /** Requests written and not yet answered. */
  get outstanding(): number {
    return this.#outstanding.size;
  }

  /** request() calls waiting for a slot. */
  get waiting(): number {
    return this.#waitingCount;
  }

  /**
   * Send a request and resolve with the reply body. Rejects with RemoteError (ERR_REMOTE) when the
   * peer's handler failed, TimeoutError (ERR_TIMEOUT) after `timeout`, the signal's reason on
   * abort, and ChannelClosedError (or the error that ended the channel) when the channel closes
   * first. Beyond `maxPending` outstanding, it waits for a slot (in call order) within its timeout.
   * The promise is marked handled (as Channel.send()'s): it rejects for whoever awaits it, never as
   * an unhandled rejection.
   */
  request(data: Uint8Array | string, options?: RequestOptions): Promise<Buffer> {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      return Promise.reject(new TypeError(`Expected a Uint8Array or a string, got ${describe(data)}`));
    }
    let timeout = this.#timeout;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      try {
        timeout = checkTimeout('timeout', options.timeout) ?? timeout;
      } catch (error) {
        return Promise.reject(error);
      }
      signal = options.signal;
      if (signal?.aborted) return Promise.reject(signal.reason);
    }
    let resolve!: (body: Buffer) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<Buffer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const r: OutgoingRequest = {
      promise,
      resolve,
      reject,
      id: 0,
      data,
      deadline: 0,
      timer: undefined,
      signal,
      onAbort: undefined,
      settled: false,
      queued: false,
    };
    const now = this.#waitingCount === 0 && this.#outstanding.size < this.#maxPending;
    if (timeout > 0) {
      if (timeout === this.#timeout && now && timeout / TICKS <= MAX_TIMER_DELAY) {
        // Default timeout, written at once: the shared clock (deadlines come in call order).
        r.deadline = this.#tick + TICKS + 1;
        if (this.#ticker === undefined) {
          this.#ticker = setInterval(this.#onTick, Math.max(1, timeout / TICKS));
          this.#ticker.unref();
        }
      } else {
        r.timer = after(timeout, () => this.#expire(r, timeout), true);
      }
    }
    if (signal !== undefined) {
      r.onAbort = () => this.#cancel(r, signal.reason, 'aborted');
      signal.addEventListener('abort', r.onAbort, { once: true });
    }
    if (now) this.#write(r);
    else {
      r.queued = true;
      this.#waitingCount++;
      this.#waitingForSlot.push(r);
    }
    return promise;
  }

  /**
   * Reject a request, marking its promise handled (as Channel.send() does): a peer closing the
   * channel rejects every outstanding request, and one the caller has not reached yet must not
   * crash the process. Marked here rather than at creation, which would cost a reaction per request.
   */
  static #reject(r: OutgoingRequest, error: unknown): void {
    r.reject(error);
    r.promise.catch(noop);
  }

  /** Write a request now: it gets its id and joins the outstanding table. */
  #write(r: OutgoingRequest): void {
    const id = this.#nextId++;
    const sent = this.#host.send(REQUEST, id, r.data!);
    r.data = undefined;
    if (typeof sent === 'number') {
      this.#finish(r);
      Requester.#reject(r, new MessageTooLargeError(sent, this.#host.sendLimit, 'send'));
      return;
    }
    r.id = id;
    this.#outstanding.put(r);
    this.#stats.requestsSent++;
    // A refusal (SendQueueFullError, or the channel closing) rejects this request at once.
    if (this.#host.knownSent(sent)) return;
    sent.then(
      () => this.#host.sawSent(sent),
      (error: unknown) => this.#cancel(r, error, undefined),
    );
  }

  /** Write waiting requests while there is room. */
  #startWaiting(): void {
    while (this.#outstanding.size < this.#maxPending) {
      const r = this.#waitingForSlot.shift();
      if (r === undefined) return;
      if (!r.queued) continue; // settled while it waited
      r.queued = false;
      this.#waitingCount--;
      this.#write(r);
    }
  }

  /** Mark a request settled and stop its timer and abort listener; the caller resolves or rejects it. */
  #finish(r: OutgoingRequest): void {
    r.settled = true;
    if (r.queued) {
      r.queued = false;
      this.#waitingCount--;
    }
    r.timer?.clear();
    if (r.onAbort !== undefined) r.signal!.removeEventListener('abort', r.onAbort);
  }

  /** Reject a request that has not settled (timeout, abort, refused write); a reply that comes later is late. */
  #cancel(r: OutgoingRequest, error: unknown, counter: 'timeouts' | 'aborted' | undefined): void {
    if (r.settled) return;
    this.#finish(r);
    if (counter !== undefined) this.#stats[counter]++;
    Requester.#reject(r, error);
    if (r.id !== 0 && this.#outstanding.take(r.id) !== undefined && this.#waitingCount > 0) this.#startWaiting();
  }

  #expire(r: OutgoingRequest, timeout: number): void {
    this.#cancel(r, new TimeoutError(`request timed out after ${timeout} ms`), 'timeouts');
  }

  /** The shared clock: expire the default-timeout requests whose tick has come, in call order; stop when none is left. */
  readonly #onTick = (): void => {
    const tick = ++this.#tick;
    const due: OutgoingRequest[] = [];
    let left = false;
    for (const r of this.#outstanding.entries()) {
      if (r.deadline === 0) continue; // its own timer, or none
      if (r.deadline > tick) left = true;
      else due.push(r);
    }
    due.sort((a, b) => a.id - b.id);
    for (const r of due) this.#expire(r, this.#timeout);
    if (left) return;
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  };

  /** A reply arrived. */
  onReply(id: number, payload: Buffer): void {
    const r = this.#outstanding.take(id);
    if (r === undefined) {
      this.#unmatched(id);
      return;
    }
    this.#finish(r);
    this.#stats.repliesReceived++;
    r.resolve(payload);
    if (this.#waitingCount > 0) this.#startWaiting();
  }

  /** An error reply arrived; its id ends at `at`. */
  onErrorReply(id: number, body: Buffer, at: number): void {
    const r = this.#outstanding.take(id);
    if (r === undefined) {
      this.#unmatched(id);
      return;
    }
    let error: Error;
    try {
      const { code, message } = readError(body, at);
      error = remoteError(message, code);
      this.#stats.remoteErrors++;
    } catch (e) {
      error = e as Error; // over its limits: the request learns why, as a ProtocolError
      this.#stats.protocolErrors++;
    }
    this.#finish(r);
    Requester.#reject(r, error);
    if (this.#waitingCount > 0) this.#startWaiting();
  }

  /** A reply with no outstanding request: late (an id we sent) or made up (one we never sent). */
  #unmatched(id: number): void {
    if (id >= 1 && id < this.#nextId) this.#stats.lateReplies++;
    else this.#host.protocolError(envelopeError(`reply to request id ${id}, which this side never sent`));
  }

  /** The channel ended: every outstanding request (in id order), then every waiting one, rejects with `error`. */
  end(error: Error): void {
    clearInterval(this.#ticker);
    this.#ticker = undefined;
    for (const r of this.#outstanding.entries().sort((a, b) => a.id - b.id)) {
      this.#finish(r);
      Requester.#reject(r, error);
    }
    this.#outstanding.clear();
    for (let r = this.#waitingForSlot.shift(); r !== undefined; r = this.#waitingForSlot.shift()) {
      if (r.settled) continue;
      this.#finish(r);
      Requester.#reject(r, error);
    }
  }
}
