/**
 * The one-way messages a RequestChannel received and recv() has not taken yet: the core's
 * ReceiveQueue (the Channel's recv() semantics: concurrent calls resolve in call order, an aborted
 * or timed-out recv takes no message, and once the channel has ended recv() returns what is
 * buffered, then rejects), plus the RequestChannel's flow control: `full` above the high-water
 * mark, `onRoom` once a take brings the buffered bytes down to half of it.
 */
import type { RecvOptions } from '../core/options.js';
import { ReceiveQueue } from '../core/receive.js';

export class Inbox {
  readonly #queue: ReceiveQueue;
  readonly #highWaterMark: number;

  constructor(highWaterMark: number, onRoom: () => void) {
    this.#highWaterMark = highWaterMark;
    this.#queue = new ReceiveQueue(false, () => {
      if (this.#queue.bytes <= highWaterMark / 2) onRoom();
    });
  }

  /** Messages buffered. */
  get length(): number {
    return this.#queue.length;
  }

  /** More than the high-water mark is buffered: stop reading. */
  get full(): boolean {
    return this.#queue.bytes > this.#highWaterMark;
  }

  recv(options?: RecvOptions): Promise<Buffer> {
    return this.#queue.recv(options, false) as Promise<Buffer>;
  }

  tryRecv(): Buffer | undefined {
    return this.#queue.tryRecv();
  }

  /** A message arrived: to the first waiting recv(), or buffered. */
  push(payload: Buffer): void {
    this.#queue.push(payload, 0);
  }

  /** The channel ended: waiting recv()s reject with `error`; later ones get the buffered messages, then `error`. */
  end(error: Error): void {
    if (this.#queue.endError === undefined) this.#queue.end(error);
  }

  /** Discard what is buffered (a local close). */
  clear(): void {
    this.#queue.clear();
  }
}
