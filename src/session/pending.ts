/**
 * PendingBytes: the bytes a session received that its Channel has not taken yet (it paused, or
 * is not attached yet), in order. The session's window bounds their bytes; their objects are
 * bounded here: a piece under COALESCE_BELOW bytes is copied into a shared block instead of kept
 * as a view, so a peer that sends one-byte DATA segments makes us hold one object per
 * BLOCK_SIZE bytes, not one per byte, and a small view never pins a large read buffer.
 */
import { Deque } from '../core/deque.js';

const BLOCK_SIZE = 64 * 1024;
const COALESCE_BELOW = 4 * 1024;

export class PendingBytes {
  readonly #pieces = new Deque<Buffer>();
  /** The block small pieces are copied into; [#blockStart, #blockEnd) is not in #pieces yet. */
  #block: Buffer | null = null;
  #blockStart = 0;
  #blockEnd = 0;
  /** Bytes held. */
  length = 0;

  push(bytes: Buffer): void {
    this.length += bytes.length;
    if (bytes.length >= COALESCE_BELOW) {
      this.#flushBlock();
      this.#pieces.push(bytes);
      return;
    }
    if (this.#block === null || this.#blockEnd + bytes.length > BLOCK_SIZE) {
      this.#flushBlock();
      this.#block = Buffer.allocUnsafe(BLOCK_SIZE);
      this.#blockStart = this.#blockEnd = 0;
    }
    bytes.copy(this.#block, this.#blockEnd);
    this.#blockEnd += bytes.length;
  }

  /** The oldest piece, or undefined when none is held. */
  shift(): Buffer | undefined {
    if (this.#pieces.length === 0) this.#flushBlock();
    const piece = this.#pieces.shift();
    if (piece !== undefined) this.length -= piece.length;
    return piece;
  }

  /** Move what the block holds into the queue, as one view; later pieces go after it. */
  #flushBlock(): void {
    if (this.#block === null || this.#blockEnd === this.#blockStart) return;
    this.#pieces.push(this.#block.subarray(this.#blockStart, this.#blockEnd));
    this.#blockStart = this.#blockEnd;
  }
}
