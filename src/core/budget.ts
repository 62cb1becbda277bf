/**
 * A listener's (or a Server's) memory budget: the bytes all its connections hold in large message
 * bodies (BODY_BUDGET_MIN and up) from their header until recv() takes them. A connection whose
 * next body does not fit waits, reading paused, until another releases memory; a body alone may
 * always start, so a message larger than the budget is slow, not impossible.
 */
import { Deque } from './deque.js';

export class MemoryBudget {
  /** Most bytes held at once. */
  readonly limit: number;
  #used = 0;
  /** Connections waiting for memory, woken in order when some is released. */
  readonly #waiting = new Deque<() => void>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Hold `n` bytes if they fit (or nothing else is held, or `force`); false: call wait() and try again. */
  reserve(n: number, force: boolean): boolean {
    if (!force && this.#used > 0 && this.#used + n > this.limit) return false;
    this.#used += n;
    return true;
  }

  release(n: number): void {
    this.#used -= n;
    // Wake every waiter: each tries again and waits again if its body still does not fit.
    for (let n = this.#waiting.length; n > 0; n--) this.#waiting.shift()!();
  }

  /** Call `wake` once memory is released. */
  wait(wake: () => void): void {
    this.#waiting.push(wake);
  }
}

/** One connection's share of a budget: what it holds, so all of it is released when it closes. */
export class BudgetShare {
  readonly #budget: MemoryBudget;
  #held = 0;
  /** Set once the connection is closing: its bodies are discarded, so they never wait. */
  closing = false;

  constructor(budget: MemoryBudget) {
    this.#budget = budget;
  }

  /** DecoderLimits.reserve for this connection. */
  readonly reserve = (length: number, force: boolean): boolean => {
    if (!this.#budget.reserve(length, force || this.closing)) return false;
    this.#held += length;
    return true;
  };

  /** Give back `length` bytes; never more than this connection still holds (after releaseAll(), nothing). */
  release(length: number): void {
    const n = Math.min(length, this.#held);
    if (n <= 0) return;
    this.#held -= n;
    this.#budget.release(n);
  }

  /** The connection closed: release what it still holds (unread and unfinished bodies). */
  releaseAll(): void {
    if (this.#held > 0) this.release(this.#held);
  }

  wait(wake: () => void): void {
    this.#budget.wait(wake);
  }
}
