/**
 * The channel's async iterator (`for await (const m of ch)`): a small object rather than an async
 * generator, taking a buffered message without a round through recv() when it can.
 */
import { ChannelClosedError } from '../errors.js';

/** What the iterator needs of a channel: its public receive API. */
export interface Receiver {
  recv(): Promise<Buffer>;
  tryRecv(): Buffer | undefined;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });
const nextResult = (value: Buffer): IteratorResult<Buffer, undefined> => ({ value, done: false });

/**
 * Messages until the peer closes at a frame boundary. Breaking out does not close the channel:
 * unread messages stay for later recv(). Any other error that ends the channel is thrown.
 */
export function messages(channel: Receiver): AsyncIterableIterator<Buffer> {
  let finished = false;
  const end = (error: unknown): IteratorResult<Buffer, undefined> => {
    finished = true;
    if (error instanceof ChannelClosedError) return DONE;
    throw error;
  };
  const iterator: AsyncIterableIterator<Buffer> = {
    next: () => {
      if (finished) return Promise.resolve(DONE);
      // A buffered message, uncontended: one resolved promise, no generator machinery.
      const buffered = channel.tryRecv();
      if (buffered !== undefined) return Promise.resolve({ value: buffered, done: false });
      return channel.recv().then(nextResult, end);
    },
    return: () => {
      finished = true;
      return Promise.resolve(DONE);
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
