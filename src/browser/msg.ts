/**
 * The MSG framing (`\r\nMSG <decimal length>\r\n<body>`, src/framing/msg.ts) on Uint8Array, for
 * the browser build. The same strictness as the Node decoder: exactly CR LF 'M' 'S' 'G' SP, 1 to
 * 16 ASCII digits, CR LF; a length above maxMessageSize is refused from the header, before any
 * allocation. A body wholly inside one chunk is a view of it; one spread over chunks is assembled
 * into one allocation of its announced length.
 */
import { MessageTooLargeError, ProtocolError } from '../errors.js';
import { BodyAssembler, type BrowserDecoder, type BrowserFraming, type FrameSink } from './framing.js';

const PREFIX = [0x0d, 0x0a, 0x4d, 0x53, 0x47, 0x20]; // \r\nMSG SP
const CR = 0x0d;
const LF = 0x0a;
const MAX_DIGITS = 16;
const S_DIGITS = 6;
const S_LF = 7;

/** The header of a `length`-byte body. */
export function msgHeader(length: number): Uint8Array {
  const text = `\r\nMSG ${length}\r\n`;
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

export class MsgDecoder implements BrowserDecoder {
  readonly #max: number;
  readonly #body = new BodyAssembler();
  /** Header bytes read so far: 0-5 the prefix, S_DIGITS the length, S_LF the LF after it. */
  #state = 0;
  #digits = 0;
  #length = 0;
  /** Bytes consumed so far (for error offsets). */
  offset = 0;

  constructor(maxMessageSize: number) {
    this.#max = maxMessageSize;
  }

  /** True between frames (the peer may end here). */
  get atBoundary(): boolean {
    return this.#state === 0 && !this.#body.active;
  }

  /** Decode `chunk`, calling `sink` with each whole body (type 0); throws a typed error on bad bytes. */
  push(chunk: Uint8Array, sink: FrameSink): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#body.active) {
        const next = this.#body.fill(chunk, i, sink);
        this.offset += next - i;
        i = next;
        continue;
      }
      this.#header(chunk[i]!);
      i++;
      this.offset++;
      if (this.#state === S_LF + 1) {
        const length = this.#length;
        this.#state = 0;
        this.#digits = 0;
        this.#length = 0;
        const next = this.#body.start(chunk, i, length, 0, sink);
        this.offset += next - i;
        i = next;
      }
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
    } else if (b === LF) this.#state = S_LF + 1;
    else this.#bad('LF after the length', b);
  }

  #bad(expected: string, b: number): never {
    throw new ProtocolError(`malformed MSG header: ${expected}, got 0x${b.toString(16).padStart(2, '0')}`, {
      offset: this.offset,
    });
  }
}

/** The MSG framing (the gist's, msgchannel's default): no type field. */
export const msg: BrowserFraming = Object.freeze({
  name: 'msg',
  hasType: false,
  maxType: 0,
  maxEncodableSize: Number.MAX_SAFE_INTEGER,
  header: (bodyLength: number) => msgHeader(bodyLength),
  createDecoder: (maxMessageSize: number) => new MsgDecoder(maxMessageSize),
});
