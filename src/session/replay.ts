/**
 * The replay buffer of one direction of a session: a copy of every byte written and not yet
 * acknowledged by the peer, in order, with a send cursor that a resume moves back to where the
 * peer's received count says. Chunks are kept as written (no joining); acknowledged ones are
 * dropped from the front.
 */
export class ReplayBuffer {
  #chunks: Buffer[] = [];
  /** Index of the first live chunk in #chunks (the array is compacted now and then). */
  #head = 0;
  /** Stream offset of the first byte of #chunks[#head]. */
  #start = 0;
  /** Stream offset after the last byte. */
  #end = 0;
  /** The send cursor: chunk index and the offset within it of the next byte to transmit. */
  #index = 0;
  #within = 0;

  /** Bytes held. */
  get bytes(): number {
    return this.#end - this.#start;
  }

  /** Stream offset after the last byte appended. */
  get end(): number {
    return this.#end;
  }

  append(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#end += chunk.length;
  }

  /** Drop whole chunks that end at or before `offset` (acknowledged); returns the bytes freed. */
  trim(offset: number): number {
    const before = this.#start;
    const chunks = this.#chunks;
    while (this.#head < chunks.length && this.#start + chunks[this.#head]!.length <= offset) {
      this.#start += chunks[this.#head]!.length;
      chunks[this.#head] = undefined as unknown as Buffer;
      this.#head++;
    }
    if (this.#head > 64 && this.#head * 2 > chunks.length) {
      this.#chunks = chunks.slice(this.#head);
      this.#index -= this.#head;
      this.#head = 0;
    }
    if (this.#index < this.#head) {
      this.#index = this.#head;
      this.#within = 0;
    }
    return this.#start - before;
  }

  /** Move the send cursor to stream offset `offset` (between the first byte held and the end). */
  seek(offset: number): void {
    let at = this.#start;
    let i = this.#head;
    while (i < this.#chunks.length && at + this.#chunks[i]!.length <= offset) {
      at += this.#chunks[i]!.length;
      i++;
    }
    this.#index = i;
    this.#within = offset - at;
  }

  /** Up to `max` bytes from the cursor on (a view, no copy), advancing it; undefined at the end. */
  next(max: number): Buffer | undefined {
    const chunk = this.#chunks[this.#index];
    if (chunk === undefined || max <= 0) return undefined;
    const n = Math.min(max, chunk.length - this.#within);
    const piece = this.#within === 0 && n === chunk.length ? chunk : chunk.subarray(this.#within, this.#within + n);
    this.#within += n;
    if (this.#within === chunk.length) {
      this.#index++;
      this.#within = 0;
    }
    return piece;
  }

  clear(): number {
    const freed = this.bytes;
    this.#chunks = [];
    this.#head = this.#index = this.#within = 0;
    this.#start = this.#end;
    return freed;
  }
}
