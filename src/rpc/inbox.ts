/**
 * The one-way messages a RequestChannel received and recv() has not taken yet, with the Channel's
 * recv() semantics: concurrent calls resolve in call order, an aborted or timed-out recv takes no
 * message, and once the channel has ended recv() returns what is buffered, then rejects.
 */
import { recvDeadline, type RecvOptions } from '../core/options.js';
import { Deque } from '../core/deque.js';

/** One recv() waiting for a message. */
interface Receiver {
  resolve(body: Buffer): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  dispose: () => void;
  done: boolean;
}

/** Bookkeeping bytes counted per queued message on top of its body (as the Channel does), so empty ones count too. */
const MESSAGE_OVERHEAD = 64;

export class Inbox {
  readonly #items = new Deque<Buffer>();
  #bytes = 0;
  readonly #receivers = new Deque<Receiver>();
  #endError: Error | undefined;
  readonly #highWaterMark: number;
  /** Called when a take brings the buffered bytes down to half the high-water mark. */
  readonly #onRoom: () => void;

  constructor(highWaterMark: number, onRoom: () => void) {
    this.#highWaterMark = highWaterMark;
    this.#onRoom = onRoom;
  }

  /** Messages buffered. */
  get length(): number {
    return this.#items.length;
  }

  /** More than the high-water mark is buffered: stop reading. */
  get full(): boolean {
    return this.#bytes > this.#highWaterMark;
  }

  recv(options?: RecvOptions): Promise<Buffer> {
    if (options === undefined && this.#receivers.length === 0 && this.#items.length > 0)
      return Promise.resolve(this.#take());
    return this.#recvSlow(options);
  }

  tryRecv(): Buffer | undefined {
    return this.#receivers.length === 0 && this.#items.length > 0 ? this.#take() : undefined;
  }

  #recvSlow(options: RecvOptions | undefined): Promise<Buffer> {
    while (this.#receivers.peek()?.done) this.#receivers.shift();
    const limit = recvDeadline(options);
    if ('error' in limit) return Promise.reject(limit.error);
    const cancel = limit.signal;
    if (this.#receivers.length === 0 && this.#items.length > 0) {
      limit.dispose();
      return Promise.resolve(this.#take());
    }
    if (this.#endError !== undefined) {
      limit.dispose();
      return Promise.reject(this.#endError);
    }
    return new Promise<Buffer>((resolve, reject) => {
      const r: Receiver = { resolve, reject, signal: cancel, onAbort: undefined, dispose: limit.dispose, done: false };
      if (cancel !== undefined) {
        r.onAbort = () => {
          if (r.done) return;
          r.done = true;
          r.dispose();
          reject(cancel.reason);
        };
        cancel.addEventListener('abort', r.onAbort, { once: true });
      }
      this.#receivers.push(r);
    });
  }

  #take(): Buffer {
    const body = this.#items.shift()!;
    this.#bytes -= body.length + MESSAGE_OVERHEAD;
    if (this.#bytes <= this.#highWaterMark / 2) this.#onRoom();
    return body;
  }

  /** A message arrived: to the first waiting recv(), or buffered. */
  push(payload: Buffer): void {
    for (let r = this.#receivers.shift(); r !== undefined; r = this.#receivers.shift()) {
      if (r.done) continue;
      Inbox.#finish(r);
      r.resolve(payload);
      return;
    }
    this.#items.push(payload);
    this.#bytes += payload.length + MESSAGE_OVERHEAD;
  }

  static #finish(r: Receiver): void {
    r.done = true;
    if (r.onAbort !== undefined) r.signal!.removeEventListener('abort', r.onAbort);
    r.dispose();
  }

  /** The channel ended: waiting recv()s reject with `error`; later ones get the buffered messages, then `error`. */
  end(error: Error): void {
    this.#endError ??= error;
    for (let r = this.#receivers.shift(); r !== undefined; r = this.#receivers.shift()) {
      if (r.done) continue;
      Inbox.#finish(r);
      r.reject(error);
    }
  }

  /** Discard what is buffered (a local close). */
  clear(): void {
    this.#items.drain();
    this.#bytes = 0;
  }
}
