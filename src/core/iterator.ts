/**
 * The one async iterator of every receiving layer (`for await (const m of ch)`): Channel,
 * RequestChannel's one-way messages and TypedChannel use it as it is. A small object rather than an
 * async generator, taking a buffered message without a round through recv() when it can.
 */
import { ChannelClosedError } from '../errors.js';

/** What the iterator needs of a receiver: recv(), and tryRecv() when it has one. */
export interface Receiver<T> {
  recv(): Promise<T>;
  /** The next message if one is buffered and no recv() waits, without a promise; undefined otherwise. */
  tryRecv?(): T | undefined;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * Messages until the receiver ends with ChannelClosedError (the peer closed at a frame boundary,
 * or a local close). Breaking out does not close it: unread messages stay for later recv(). Any
 * other error is thrown, and ends the iteration.
 */
export function messages<T>(receiver: Receiver<T>): AsyncIterableIterator<T, undefined> {
  let finished = false;
  const nextResult = (value: T): IteratorResult<T, undefined> => ({ value, done: false });
  const end = (error: unknown): IteratorResult<T, undefined> => {
    finished = true;
    if (error instanceof ChannelClosedError) return DONE;
    throw error;
  };
  const iterator: AsyncIterableIterator<T, undefined> = {
    next: () => {
      if (finished) return Promise.resolve(DONE);
      // A buffered message, uncontended: one resolved promise, no generator machinery.
      const buffered = receiver.tryRecv?.();
      if (buffered !== undefined) return Promise.resolve({ value: buffered, done: false });
      return receiver.recv().then(nextResult, end);
    },
    return: () => {
      finished = true;
      return Promise.resolve(DONE);
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
