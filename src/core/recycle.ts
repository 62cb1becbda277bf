/**
 * Message memory given back with `Channel.release()`, reused for a later body. A garbage-collected
 * runtime frees a message's memory only at the next collection, so a loop that receives 1 MiB
 * messages writes every body into fresh, cache-cold memory (and the kernel faults and zeroes its
 * pages); Python's refcounting hands the same hot memory back at once. Releasing a message you
 * are done with gives msgchannel the same: the next large body is read into it.
 *
 * Only what this channel allocated is taken back, and only the exact Buffer it handed out (not a
 * view, not a copy, not twice): anything else is refused, so a release can never hand out memory
 * the user (or the peer of a Channel.pair) still owns through another object.
 */
import { viewOf } from '../framing/body.js';

/** Bodies of this size and up come from (and may go back to) the pool; smaller ones are not worth it. */
export const RECYCLE_MIN = 64 * 1024;
/** Released buffers kept for reuse, per channel. */
const MAX_SPARES = 2;

export class BodyPool {
  /** Memory this channel allocated for a body, and the one Buffer handed out over it. */
  readonly #owner = new WeakMap<ArrayBufferLike, Buffer>();
  readonly #spares: ArrayBufferLike[] = [];
  #closed = false;

  /** Memory for a body of `length` bytes: a released buffer of at least that size (at most twice), else a new one. */
  readonly alloc = (length: number): Buffer => {
    if (length < RECYCLE_MIN) return Buffer.allocUnsafe(length);
    const spares = this.#spares;
    let body: Buffer | undefined;
    for (let k = spares.length - 1; k >= 0; k--) {
      const memory = spares[k]!;
      if (memory.byteLength >= length && memory.byteLength <= 2 * length) {
        spares.splice(k, 1);
        body = viewOf(memory, length);
        break;
      }
    }
    body ??= Buffer.allocUnsafe(length);
    this.#owner.set(body.buffer, body);
    return body;
  };

  /** Take `message` back for reuse; false (and nothing kept) unless it is a body this pool handed out and has not had back. */
  release(message: unknown): boolean {
    if (!(message instanceof Uint8Array) || this.#closed || this.#spares.length >= MAX_SPARES) return false;
    const memory = message.buffer;
    if (this.#owner.get(memory) !== message) return false;
    this.#owner.delete(memory);
    this.#spares.push(memory);
    return true;
  }

  /** The channel has closed: drop the spares, take nothing more. */
  clear(): void {
    this.#closed = true;
    this.#spares.length = 0;
  }
}
