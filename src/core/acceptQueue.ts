/**
 * The accepting end of a listener (Listener, SessionListener): what it accepts is handed, in
 * order, to whoever waits in accept() or a `for await`, and queued while nobody does, so none is
 * lost. A listener error is thrown once, to the taker waiting then or to the next one; once
 * closed, what was queued is destroyed and every taker is told the iteration is done.
 */
import { Deque } from './deque.js';

interface Taker<T> {
  resolve(result: IteratorResult<T, undefined>): void;
  reject(error: unknown): void;
}

export class AcceptQueue<T extends { destroy(): void }> {
  readonly #queue = new Deque<T>();
  readonly #takers = new Deque<Taker<T>>();
  #error: Error | undefined;
  /** The error was thrown to a taker (it is thrown once). */
  #errorReported = false;
  #closed = false;

  /** Accepted and not yet taken. */
  get length(): number {
    return this.#queue.length;
  }

  /** Hand `item` to the first taker waiting, or queue it; once closed it is destroyed instead. */
  push(item: T): void {
    if (this.#closed) {
      item.destroy();
      return;
    }
    const taker = this.#takers.shift();
    if (taker) taker.resolve({ value: item, done: false });
    else this.#queue.push(item);
  }

  /** The listener failed (EADDRINUSE, ...): the taker waiting, or the next one, gets `error`. Only the first error counts. */
  fail(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    const taker = this.#takers.shift();
    if (taker) {
      this.#errorReported = true;
      taker.reject(error);
    }
  }

  /** The next item; done once closed and empty; rejects once with the listener's error. */
  next(): Promise<IteratorResult<T, undefined>> {
    const item = this.#queue.shift();
    if (item) return Promise.resolve({ value: item, done: false });
    if (this.#error && !this.#errorReported) {
      this.#errorReported = true;
      return Promise.reject(this.#error);
    }
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#takers.push({ resolve, reject }));
  }

  /** The next item, or undefined once closed. */
  async accept(): Promise<T | undefined> {
    const r = await this.next();
    return r.done ? undefined : r.value;
  }

  /** Accept no more: what is queued is destroyed, and every taker waiting is told done. */
  close(): void {
    this.#closed = true;
    for (let item = this.#queue.shift(); item; item = this.#queue.shift()) item.destroy();
    for (let t = this.#takers.shift(); t; t = this.#takers.shift()) t.resolve({ value: undefined, done: true });
  }

  /** An async iterator over what is accepted; leaving it early (`break`, a throw) runs `close`: the listener's. */
  iterator(close: () => Promise<void>): AsyncIterator<T, undefined> {
    return {
      next: () => this.next(),
      return: async () => {
        await close();
        return { value: undefined, done: true };
      },
      throw: async (error?: unknown) => {
        await close();
        throw error;
      },
    };
  }
}
