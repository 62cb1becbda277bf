/**
 * The replay buffer of one direction of a session: a copy of every byte written and not yet
 * acknowledged by the peer, in order, with a send cursor that a resume moves back to where the
 * peer's received count says.
 *
 * It is one ring of at most `limit` bytes (the session's window), grown on demand by doubling, so
 * the bytes are copied once into memory that is reused instead of into a new buffer per write
 * (which cost an allocation, fresh pages and garbage per chunk). What is transmitted is a view of
 * the ring; a region is written over only once the peer has acknowledged every byte in it, and an
 * acknowledged byte was taken by the transport long before, so no write still refers to it. (A
 * transport that handed the very chunk to its peer, as an in-memory pair without a copy would,
 * could not carry a session: the peer's messages would be views of this ring.)
 */
const INITIAL_CAPACITY = 64 * 1024;

export class ReplayBuffer {
  /** Most bytes held. */
  readonly #limit: number;
  #ring: Buffer | null = null;
  /** Ring index of the first byte held (stream offset #start). */
  #head = 0;
  /** Stream offset of the first byte held. */
  #start = 0;
  /** Stream offset after the last byte. */
  #end = 0;
  /** The send cursor: stream offset of the next byte to transmit. */
  #cursor = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#end - this.#start;
  }

  /** Stream offset after the last byte appended. */
  get end(): number {
    return this.#end;
  }

  /** Bytes that may be appended before the peer acknowledges more. */
  get room(): number {
    return this.#limit - this.bytes;
  }

  /** Copy `source[from, to)` in, as much as there is room for; returns how many bytes were taken. */
  append(source: Buffer, from: number, to: number): number {
    const n = Math.min(to - from, this.room);
    if (n <= 0) return 0;
    const ring = this.#reserve(this.bytes + n);
    const capacity = ring.length;
    const at = (this.#head + this.bytes) % capacity;
    const first = Math.min(n, capacity - at);
    source.copy(ring, at, from, from + first);
    if (first < n) source.copy(ring, 0, from + first, from + n);
    this.#end += n;
    return n;
  }

  /** The ring, grown (by doubling, up to the limit) to hold `needed` bytes; the bytes held move to its start. */
  #reserve(needed: number): Buffer {
    const ring = this.#ring;
    if (ring !== null && ring.length >= needed) return ring;
    let capacity = ring?.length ?? INITIAL_CAPACITY;
    while (capacity < needed) capacity *= 2;
    const grown = Buffer.allocUnsafeSlow(Math.min(capacity, Math.max(this.#limit, needed)));
    if (ring !== null) {
      // Views of the old ring may still be queued in the transport: it is left as it is, for them.
      const held = this.bytes;
      const first = Math.min(held, ring.length - this.#head);
      ring.copy(grown, 0, this.#head, this.#head + first);
      if (first < held) ring.copy(grown, first, 0, held - first);
    }
    this.#head = 0;
    return (this.#ring = grown);
  }

  /** Forget the bytes before stream offset `offset` (acknowledged); returns the bytes freed. */
  trim(offset: number): number {
    const freed = offset - this.#start;
    if (freed <= 0) return 0;
    this.#start = offset;
    if (this.#start === this.#end) this.#head = 0;
    else this.#head = (this.#head + freed) % this.#ring!.length;
    if (this.#cursor < offset) this.#cursor = offset;
    return freed;
  }

  /** Move the send cursor to stream offset `offset` (between the first byte held and the end). */
  seek(offset: number): void {
    this.#cursor = offset;
  }

  /** Up to `max` bytes from the cursor on (a view of the ring, no copy), advancing it; undefined at the end. */
  next(max: number): Buffer | undefined {
    const n = Math.min(max, this.#end - this.#cursor);
    if (n <= 0) return undefined;
    const ring = this.#ring!;
    const at = (this.#head + (this.#cursor - this.#start)) % ring.length;
    const piece = ring.subarray(at, at + Math.min(n, ring.length - at));
    this.#cursor += piece.length;
    return piece;
  }

  /** Drop everything (the session ended); returns the bytes freed. */
  clear(): number {
    const freed = this.bytes;
    this.#ring = null;
    this.#head = 0;
    this.#start = this.#cursor = this.#end;
    return freed;
  }
}
