/** A send() waiting its turn in a Channel, the promise a send() returns, and the tally of failed sends. */
import { noop } from '../util.js';

/** A send() queued behind others (backpressure, a handshake, tinyproto's answers). */
export interface QueuedSend {
  body: Buffer;
  type: number;
  /** What the send() returned: settled once the body is written (or refused, or failed). */
  promise: SendPromise;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
}

/**
 * A channel's failed sends: every send() that was accepted (its arguments were valid) and then
 * refused or dropped (SendQueueFullError, the channel closed or failed before it was written, a
 * tinyproto peer refused it, its write failed), and of those, the ones nobody has handled yet.
 */
export class SendTally {
  /** Every failed send (Channel.stats.sendsFailed). */
  failed = 0;
  /** Failed sends whose promise had no handler attached (then, catch, finally, await) when they failed, and has none since. */
  unseen = 0;
  /** The error of the latest send counted in `unseen`. */
  lastUnseen: unknown = undefined;
}

const baseThen = Promise.prototype.then;

/**
 * The promise of a send() that does not settle at once. A failure that nobody handles is never
 * an unhandled rejection (a peer that stops reading must not be able to crash the process), and
 * never silent either: it counts in the channel's SendTally until someone attaches a handler, so
 * close() can report the sends that failed unseen. Any handler counts (then, catch, finally,
 * await, Promise.all); the channel's own mark that keeps the runtime quiet does not.
 */
export class SendPromise extends Promise<void> {
  // then() and friends return plain promises: only the channel makes SendPromises.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  #tally!: SendTally;
  #settled = false;
  /** A handler was attached. */
  #seen = false;
  /** Failed and counted in the tally's `unseen`. */
  #counted = false;

  /** A pending send of the channel whose failures `tally` counts. */
  static pending(tally: SendTally): SendPromise {
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const p = new SendPromise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    p.#resolve = resolve;
    p.#reject = reject;
    p.#tally = tally;
    return p;
  }

  /** A send refused at once with `error`, counted as failed. */
  static failed(tally: SendTally, error: unknown): SendPromise {
    const p = SendPromise.pending(tally);
    p.fail(error);
    return p;
  }

  /** The send was written: resolve. */
  settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#resolve();
  }

  /** The send was refused or dropped: reject with `error`, counted as failed (and unseen if nobody listens yet). */
  fail(error: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    const tally = this.#tally;
    tally.failed++;
    if (!this.#seen) {
      this.#counted = true;
      tally.unseen++;
      tally.lastUnseen = error;
    }
    this.#rejectQuietly(error);
  }

  /** The caller withdrew the send (its signal aborted): reject with the reason, not counted. */
  withdraw(reason: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#rejectQuietly(reason);
  }

  /**
   * Reject, marked handled for the runtime first through the base then() (not counted as seen), so
   * it is never an unhandled rejection. Only a send that fails pays for the mark (a derived promise).
   */
  #rejectQuietly(error: unknown): void {
    void baseThen.call(this, undefined, noop);
    this.#reject(error);
  }

  override then<T1 = void, T2 = never>(
    onfulfilled?: ((value: void) => T1 | PromiseLike<T1>) | null,
    onrejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null,
  ): Promise<T1 | T2> {
    if (!this.#seen) {
      this.#seen = true;
      if (this.#counted) {
        this.#counted = false;
        this.#tally.unseen--;
      }
    }
    return super.then(onfulfilled, onrejected);
  }
}
