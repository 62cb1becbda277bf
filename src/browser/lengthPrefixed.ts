/**
 * The length-prefixed framings for the browser build: lengthPrefixed(options), ltprotocol() and
 * int32, from the header layout Node's framings use (src/framing/layout.ts: the same options,
 * checks and bytes). The decoder gathers a header cut across chunks, checks it (a body above
 * maxMessageSize is refused from the header), and assembles the body (./framing.ts).
 */
import {
  INT32_OPTIONS,
  bodyLengthOf,
  lengthPrefixedLayout,
  ltprotocolOptions,
  typeOf,
  writeHeaderOf,
  type LengthPrefixedLayout,
  type LengthPrefixedOptions,
  type StructCode,
} from '../framing/layout.js';
import { BodyAssembler, type BrowserDecoder, type BrowserFraming, type FrameSink } from './framing.js';

/** A length-prefixed framing of the browser build; its layout is readable, as in Node. */
export interface BrowserLengthPrefixedFraming extends BrowserFraming, LengthPrefixedLayout {}

class LengthPrefixedDecoder implements BrowserDecoder {
  readonly #layout: LengthPrefixedLayout;
  readonly #max: number;
  readonly #body = new BodyAssembler();
  /** Header bytes gathered when the header spans chunks. */
  readonly #header: Uint8Array;
  #headerFilled = 0;
  /** Stream offset of the current frame. */
  #frameStart = 0;
  /** Bytes consumed so far (for error offsets). */
  offset = 0;

  constructor(layout: LengthPrefixedLayout, maxMessageSize: number) {
    this.#layout = layout;
    this.#max = maxMessageSize;
    this.#header = new Uint8Array(layout.headerSize);
  }

  get atBoundary(): boolean {
    return this.#headerFilled === 0 && !this.#body.active;
  }

  push(chunk: Uint8Array, sink: FrameSink): void {
    let i = 0;
    while (i < chunk.length) {
      const next = this.#body.active ? this.#body.fill(chunk, i, sink) : this.#readHeader(chunk, i, sink);
      this.offset += next - i;
      i = next;
    }
  }

  /** The header at `chunk[i]` (or the rest of one cut across chunks), then its body's start. */
  #readHeader(chunk: Uint8Array, i: number, sink: FrameSink): number {
    const size = this.#layout.headerSize;
    let h = chunk;
    let at = i;
    if (this.#headerFilled === 0) this.#frameStart = this.offset;
    if (this.#headerFilled === 0 && chunk.length - i >= size) {
      i += size; // the whole header is here: read it in place
    } else {
      const take = Math.min(size - this.#headerFilled, chunk.length - i);
      this.#header.set(chunk.subarray(i, i + take), this.#headerFilled);
      this.#headerFilled += take;
      i += take;
      if (this.#headerFilled < size) return i;
      this.#headerFilled = 0;
      h = this.#header;
      at = 0;
    }
    const length = bodyLengthOf(this.#layout, h, at, this.#max, this.#frameStart);
    const type = typeOf(this.#layout, h, at, this.#frameStart);
    return this.#body.start(chunk, i, length, type, sink);
  }
}

/**
 * A length-prefixed framing, as Node's `lengthPrefixed()` (the same options and bytes).
 * @example
 * const ch = await Channel.connect('wss://example.com/app', { framing: lengthPrefixed({ typeSize: 2 }) });
 */
export function lengthPrefixed(options: LengthPrefixedOptions = {}): BrowserLengthPrefixedFraming {
  const layout = lengthPrefixedLayout(options);
  return Object.freeze({
    ...layout,
    hasType: layout.typeSize > 0,
    header(bodyLength: number, type: number): Uint8Array {
      const header = new Uint8Array(layout.headerSize);
      writeHeaderOf(layout, header, 0, bodyLength, type);
      return header;
    },
    createDecoder: (maxMessageSize: number) => new LengthPrefixedDecoder(layout, maxMessageSize),
  });
}

/** ltprotocol's framing, `[length][type][body]` (Python struct codes; the length counts the whole frame), as Node's `ltprotocol()`. */
export function ltprotocol(lenType: StructCode = 'H', typeType: StructCode = 'B'): BrowserLengthPrefixedFraming {
  return lengthPrefixed(ltprotocolOptions(lenType, typeType));
}

/** Twisted's Int32StringReceiver: `[u32 BE body length][body]`, as Node's `int32`. */
export const int32: BrowserLengthPrefixedFraming = lengthPrefixed(INT32_OPTIONS);
