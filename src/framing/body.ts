/**
 * The body half of every decoder: a body that lies within the chunk is handed out as a view (no
 * copy); one that spans chunks is allocated once, at the length its header announced (already
 * checked against maxMessageSize), and filled from the following chunks.
 */
import type { DecoderLimits, FrameSink } from './types.js';

/** The body of every empty message. */
export const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Views are made as Node's own Buffers are (its internal FastBuffer is a plain Uint8Array subclass
 * whose prototype is Buffer.prototype): `new BodyView(...)` skips the species lookup that
 * `buf.subarray()` goes through, on the hottest path there is (bench/README.md has the figures).
 * The result is a Buffer in every observable way (`Buffer.isBuffer`, `instanceof Buffer`, every
 * Buffer method, `constructor === Buffer`).
 */
export class BodyView extends Uint8Array {
  // Spelled out: V8 runs an implicit derived constructor as `super(...args)`, a spread per view.
  constructor(buffer: ArrayBuffer, byteOffset: number, length: number) {
    super(buffer, byteOffset, length);
  }
}
Object.setPrototypeOf(BodyView.prototype, Buffer.prototype);
Object.defineProperty(BodyView.prototype, 'constructor', { value: Buffer, writable: true, configurable: true });
// recv() resolves a promise with each body, and resolving looks up `then` on it (is it a
// thenable?). On a Buffer that lookup walks into Buffer.prototype, a dictionary-mode object, a slow
// lookup per message: an own, non-enumerable `then: undefined` answers it at the first prototype.
// A body is still not a thenable (`typeof body.then !== 'function'`).
Object.defineProperty(BodyView.prototype, 'then', { value: undefined, writable: true, configurable: true });

/** A Buffer viewing `chunk[start, start + length)`, sharing its memory. */
export function view(chunk: Buffer, start: number, length: number): Buffer {
  return new BodyView(chunk.buffer as ArrayBuffer, chunk.byteOffset + start, length) as unknown as Buffer;
}

/** The default body allocation (looked up at each call, so a test's spy on Buffer sees it). */
const allocBody = (length: number): Buffer => Buffer.allocUnsafe(length);

/** Bodies of this size and up are counted by `DecoderLimits.reserve` (a listener's memory budget). */
export const BODY_BUDGET_MIN = 64 * 1024;

export class BodyAssembler {
  readonly #reserve: DecoderLimits['reserve'];
  readonly #alloc: (length: number) => Buffer;
  readonly #discard: (() => boolean) | undefined;
  #body: Buffer = EMPTY;
  /** Bytes of a discarded body still to pass over (0: none). */
  #skip = 0;
  #filled = 0;
  #type = 0;
  /** Length of the body `reserve` refused, asked for again at the next fill() (0: none). */
  #refusedLength = 0;
  /** True while a body that spans chunks is being filled (or waits for memory): the next bytes belong to it. */
  inProgress = false;
  /** True while the body in progress waits for memory: nothing of it is allocated, no byte consumed. */
  awaitingMemory = false;

  constructor(limits: DecoderLimits) {
    this.#reserve = limits.reserve;
    this.#alloc = limits.alloc ?? allocBody;
    this.#discard = limits.discard;
  }

  /**
   * Start a body of `length` bytes at `chunk[i]`, the header having ended at `i`. Emits it at once
   * when it lies within the chunk; otherwise allocates it and copies what the chunk holds.
   * Returns the index after what it consumed.
   */
  start(chunk: Buffer, i: number, length: number, type: number, sink: FrameSink): number {
    if (length === 0) {
      sink(EMPTY, type);
      return i;
    }
    const within = chunk.length - i >= length;
    if (!within && this.#discard?.() === true) {
      this.inProgress = true;
      this.#skip = length;
      return this.fill(chunk, i, sink);
    }
    if (length >= BODY_BUDGET_MIN && this.#reserve !== undefined && !this.#reserve(length, within)) {
      // No memory for it now: allocate nothing, consume nothing more; fill() asks again.
      this.#refusedLength = length;
      this.#type = type;
      this.inProgress = true;
      this.awaitingMemory = true;
      return i;
    }
    if (within) {
      sink(view(chunk, i, length), type);
      return i + length;
    }
    this.#body = this.#alloc(length);
    this.#filled = 0;
    this.#type = type;
    this.inProgress = true;
    return this.fill(chunk, i, sink);
  }

  /** The unfilled rest of the body being filled when at least `min` bytes of it are due (to read straight into), else null. */
  space(min: number): Buffer | null {
    if (!this.inProgress || this.awaitingMemory || this.#skip > 0) return null;
    const due = this.#body.length - this.#filled;
    return due >= min ? view(this.#body, this.#filled, due) : null;
  }

  /** `n` bytes were written at the start of the last space(): emit the body once complete. */
  filled(n: number, sink: FrameSink): void {
    this.#filled += n;
    if (this.#filled === this.#body.length) {
      const body = this.#body;
      this.#body = EMPTY;
      this.inProgress = false;
      sink(body, this.#type);
    }
  }

  /** Copy from `chunk[i]` into the body under construction, emitting it once complete. Returns the index after what it consumed. */
  fill(chunk: Buffer, i: number, sink: FrameSink): number {
    if (this.awaitingMemory) {
      const length = this.#refusedLength;
      const within = chunk.length - i >= length;
      if (!within && this.#discard?.() === true) {
        this.#skip = length;
      } else {
        if (!this.#reserve!(length, within)) return i;
        if (within) {
          this.awaitingMemory = false;
          this.#refusedLength = 0;
          this.inProgress = false;
          sink(view(chunk, i, length), this.#type);
          return i + length;
        }
        this.#body = this.#alloc(length);
        this.#filled = 0;
      }
      this.awaitingMemory = false;
      this.#refusedLength = 0;
    }
    if (this.#skip > 0) {
      // A discarded body: pass over its bytes, allocate and emit nothing.
      const take = chunk.length - i < this.#skip ? chunk.length - i : this.#skip;
      this.#skip -= take;
      if (this.#skip === 0) this.inProgress = false;
      return i + take;
    }
    const body = this.#body;
    const want = body.length - this.#filled;
    const take = chunk.length - i < want ? chunk.length - i : want;
    chunk.copy(body, this.#filled, i, i + take);
    this.#filled += take;
    if (this.#filled === body.length) {
      this.#body = EMPTY;
      this.inProgress = false;
      sink(body, this.#type);
    }
    return i + take;
  }
}
