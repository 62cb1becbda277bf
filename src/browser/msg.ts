/**
 * The MSG framing (`\r\nMSG <decimal length>\r\n<body>`, src/framing/msg.ts) on Uint8Array, for
 * the browser build. The same strictness as the Node decoder: exactly CR LF 'M' 'S' 'G' SP, 1 to
 * 16 ASCII digits, CR LF; a length above maxMessageSize is refused from the header, before any
 * allocation. A body wholly inside one chunk is a view of it; one spread over chunks is assembled
 * into one allocation of its announced length.
 */
import { MessageTooLargeError, ProtocolError } from '../errors.js';

const PREFIX = [0x0d, 0x0a, 0x4d, 0x53, 0x47, 0x20]; // \r\nMSG SP
const CR = 0x0d;
const LF = 0x0a;
const MAX_DIGITS = 16;
const S_DIGITS = 6;
const S_LF = 7;
const S_BODY = 8;
const EMPTY = new Uint8Array(0);

/** The header of a `length`-byte body. */
export function msgHeader(length: number): Uint8Array {
  const text = `\r\nMSG ${length}\r\n`;
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

export class MsgDecoder {
  readonly #max: number;
  #state = 0;
  #digits = 0;
  #length = 0;
  #body: Uint8Array = EMPTY;
  #filled = 0;
  /** Bytes consumed so far (for error offsets). */
  offset = 0;

  constructor(maxMessageSize: number) {
    this.#max = maxMessageSize;
  }

  /** True between frames (the peer may end here). */
  get atBoundary(): boolean {
    return this.#state === 0;
  }

  /** Decode `chunk`, calling `sink` with each whole body; throws a typed error on bad bytes. */
  push(chunk: Uint8Array, sink: (body: Uint8Array) => void): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#state === S_BODY) {
        const take = Math.min(n - i, this.#length - this.#filled);
        if (this.#filled === 0 && take === this.#length) {
          this.#end(sink, chunk.subarray(i, i + take));
        } else {
          if (this.#filled === 0) this.#body = new Uint8Array(this.#length);
          this.#body.set(chunk.subarray(i, i + take), this.#filled);
          this.#filled += take;
          if (this.#filled === this.#length) this.#end(sink, this.#body);
        }
        i += take;
        this.offset += take;
        continue;
      }
      const b = chunk[i]!;
      this.#header(b);
      i++;
      this.offset++;
      if (this.#state === S_BODY && this.#length === 0) this.#end(sink, EMPTY);
    }
  }

  #header(b: number): void {
    const state = this.#state;
    if (state < S_DIGITS) {
      if (b !== PREFIX[state]) this.#bad(`expected ${JSON.stringify(String.fromCharCode(PREFIX[state]!))}`, b);
      this.#state++;
    } else if (state === S_DIGITS) {
      if (b >= 0x30 && b <= 0x39) {
        if (++this.#digits > MAX_DIGITS) this.#bad('a length of more than 16 digits', b);
        this.#length = this.#length * 10 + (b - 0x30);
        if (this.#length > this.#max) throw new MessageTooLargeError(this.#length, this.#max, 'recv');
      } else if (b === CR && this.#digits > 0) this.#state = S_LF;
      else this.#bad('a digit', b);
    } else if (b === LF) {
      this.#state = S_BODY;
      this.#filled = 0;
    } else this.#bad('LF after the length', b);
  }

  #end(sink: (body: Uint8Array) => void, body: Uint8Array): void {
    this.#state = 0;
    this.#digits = 0;
    this.#length = 0;
    this.#filled = 0;
    this.#body = EMPTY;
    sink(body);
  }

  #bad(expected: string, b: number): never {
    throw new ProtocolError(`malformed MSG header: ${expected}, got 0x${b.toString(16).padStart(2, '0')}`, {
      offset: this.offset,
    });
  }
}
