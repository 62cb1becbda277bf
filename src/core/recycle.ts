/**
 * Message memory given back with `Channel.release()`, reused for a later body. A garbage-collected
 * runtime frees a message's memory only at the next collection, so a loop that receives 1 MiB
 * messages writes every body into fresh, cache-cold memory (and the kernel faults and zeroes its
 * pages); Python's refcounting hands the same hot memory back at once. Releasing a message you
 * are done with gives msgchannel the same: the next large body is read into it.
 *
 * Only what this channel allocated is taken back, and only the exact Buffer it handed out (not a
 * view, not a copy, not twice): anything else is refused, so a release can never hand out memory
 * the user (or the peer of a Channel.pair) still owns through another object. Bodies carry that
 * mark in a private field of their class, not in a WeakMap: a WeakMap entry per body keeps the
 * body alive until a full collection (bench/README.md, "The receive path", has the figures).
 */
import { BodyView } from '../framing/body.js';

/** Bodies of this size and up come from (and may go back to) the pool; smaller ones are not worth it. */
export const RECYCLE_MIN = 64 * 1024;
/**
 * Released buffers kept for reuse, per channel. When a third comes back it replaces the oldest:
 * the newest releases say best what size the next bodies will be, and spares that never fit a
 * later body (two small ones, say, under a stream of large messages) must not block reuse forever.
 */
const MAX_SPARES = 2;

/** A body the pool allocated: a Buffer in every observable way, privately marked with the pool it may go back to. */
class PooledBody extends BodyView {
  #pool: BodyPool | null;

  constructor(memory: ArrayBufferLike, length: number, pool: BodyPool) {
    super(memory as ArrayBuffer, 0, length);
    this.#pool = pool;
  }

  /** Unmark `body` if `pool` handed it out and has not had it back; whether it did. */
  static take(body: unknown, pool: BodyPool): body is PooledBody {
    if (typeof body !== 'object' || body === null || !(#pool in body) || body.#pool !== pool) return false;
    body.#pool = null;
    return true;
  }
}
Object.defineProperty(PooledBody.prototype, 'constructor', { value: Buffer, writable: true, configurable: true });

export class BodyPool {
  readonly #spares: ArrayBufferLike[] = [];
  #closed = false;

  /** Memory for a body of `length` bytes: a released buffer of at least that size (at most twice), else a new one. */
  readonly alloc = (length: number): Buffer => {
    if (length < RECYCLE_MIN) return Buffer.allocUnsafe(length);
    const spares = this.#spares;
    let memory: ArrayBufferLike | undefined;
    for (let k = spares.length - 1; k >= 0; k--) {
      const spare = spares[k]!;
      if (spare.byteLength >= length && spare.byteLength <= 2 * length) {
        spares.splice(k, 1);
        memory = spare;
        break;
      }
    }
    return new PooledBody(memory ?? Buffer.allocUnsafeSlow(length).buffer, length, this) as unknown as Buffer;
  };

  /**
   * Take `message` back for reuse (in place of the oldest spare if two are kept); false (and
   * nothing kept) unless it is a body this pool handed out and has not had back.
   */
  release(message: unknown): boolean {
    if (this.#closed || !PooledBody.take(message, this)) return false;
    if (this.#spares.length >= MAX_SPARES) this.#spares.shift();
    this.#spares.push(message.buffer);
    return true;
  }

  /** The channel has closed: drop the spares, take nothing more. */
  clear(): void {
    this.#closed = true;
    this.#spares.length = 0;
  }
}
