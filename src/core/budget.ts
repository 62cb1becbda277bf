/**
 * A listener's (or a Server's) memory budget: the bytes all its connections hold in large message
 * bodies (BODY_BUDGET_MIN and up) from their header until recv() takes them. A connection whose
 * next body does not fit waits, decoding held, until another releases memory; a body alone may
 * always start, so a message larger than the budget is slow, not impossible.
 *
 * Fairness: waiting connections are served smallest body first, so a small message is never
 * queued behind large announced ones; a waiting connection's own timeouts keep running (the wait
 * is caused by its announcement), and while anyone waits, a connection holding budget for a body
 * in progress must make progress faster (see Watchdog), so idle announcers give their memory up.
 */

/** A connection waiting for memory: the body length it asked for, and how to wake it. */
interface Waiting {
  readonly length: number;
  readonly wake: () => void;
}

export class MemoryBudget {
  /** Most bytes held at once. */
  readonly limit: number;
  #used = 0;
  /** Connections waiting for memory, smallest request first (equal ones in arrival order). */
  readonly #waiting: Waiting[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Connections waiting for memory now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Whether `n` more bytes fit now (a body alone always fits). */
  #fits(n: number): boolean {
    return this.#used === 0 || this.#used + n <= this.limit;
  }

  /** Hold `n` bytes if they fit (or `force`); false: call wait() and try again. */
  reserve(n: number, force: boolean): boolean {
    if (!force && !this.#fits(n)) return false;
    this.#used += n;
    return true;
  }

  release(n: number): void {
    this.#used -= n;
    // Wake, smallest first, those whose request fits now; each reserves before the next is asked.
    // A waker whose connection no longer wants memory reserves nothing, and the next is tried.
    const waiting = this.#waiting;
    while (waiting.length > 0 && this.#fits(waiting[0]!.length)) waiting.shift()!.wake();
  }

  /** Call `wake` once `length` bytes may fit. */
  wait(length: number, wake: () => void): void {
    const waiting = this.#waiting;
    let at = waiting.length;
    while (at > 0 && waiting[at - 1]!.length > length) at--;
    waiting.splice(at, 0, { length, wake });
  }

  /** `wake` no longer waits (its connection closed). */
  cancel(wake: () => void): void {
    const at = this.#waiting.findIndex((w) => w.wake === wake);
    if (at >= 0) this.#waiting.splice(at, 1);
  }
}

/** One connection's share of a budget: what it holds, so all of it is released when it closes. */
export class BudgetShare {
  readonly #budget: MemoryBudget;
  #held = 0;
  /** The length of the last request refused: what wait() waits for. */
  #wanted = 0;
  #wake: (() => void) | undefined;

  constructor(budget: MemoryBudget) {
    this.#budget = budget;
  }

  /** DecoderLimits.reserve for this connection. */
  readonly reserve = (length: number, force: boolean): boolean => {
    if (!this.#budget.reserve(length, force)) {
      this.#wanted = length;
      return false;
    }
    this.#held += length;
    return true;
  };

  /** True while this connection holds budget that other connections wait for. */
  get contended(): boolean {
    return this.#held > 0 && this.#budget.waiting > 0;
  }

  /** Give back `length` bytes; never more than this connection still holds (after releaseAll(), nothing). */
  release(length: number): void {
    const n = Math.min(length, this.#held);
    if (n <= 0) return;
    this.#held -= n;
    this.#budget.release(n);
  }

  /** The connection closed: release what it still holds (unread and unfinished bodies), and wait no more. */
  releaseAll(): void {
    if (this.#wake !== undefined) this.#budget.cancel(this.#wake);
    if (this.#held > 0) this.release(this.#held);
  }

  /** Call `wake` once the request last refused may fit. */
  wait(wake: () => void): void {
    this.#wake = wake;
    this.#budget.wait(this.#wanted, wake);
  }
}
