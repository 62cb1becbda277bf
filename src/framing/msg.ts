/**
 * The MSG framing of the Channel gist: `\r\nMSG <decimal length>\r\n<body>`.
 * Strict on input: exactly CR LF 'M' 'S' 'G' SP, 1 to 16 ASCII digits, CR LF.
 */
import { MessageTooLargeError, ProtocolError } from '../errors.js';
import { FrameDecoder } from './decoder.js';
import type { Decoder, DecoderLimits, FrameSink, Framing } from './types.js';

const CR = 0x0d;
const LF = 0x0a;
const PREFIX = Buffer.from('\r\nMSG ', 'latin1');
/** Digits of Number.MAX_SAFE_INTEGER: more can't be a length. */
const MAX_DIGITS = 16;

// Decoder states. 0..5 are "matched that many bytes of PREFIX".
const S_DIGITS = 6; // reading the length; at least one digit seen once `digits` > 0
const S_LF = 7; // saw the CR after the digits

function showByte(byte: number): string {
  return byte >= 0x20 && byte < 0x7f
    ? `'${String.fromCharCode(byte)}' (0x${byte.toString(16).padStart(2, '0')})`
    : `0x${byte.toString(16).padStart(2, '0')}`;
}

class MsgDecoder extends FrameDecoder {
  #state = 0;
  #digits = 0;
  #length = 0;
  /** Where the header parsed by #fastHeader ends (the first body byte). */
  #fastHeaderEnd = 0;

  protected betweenHeaders(): boolean {
    return this.#state === 0;
  }

  /** The body length of a complete, valid header at `i` within `max`, or -1 to take the slow path. */
  #fastHeader(chunk: Buffer, i: number, n: number): number {
    if (
      chunk[i] !== CR ||
      chunk[i + 1] !== LF ||
      chunk[i + 2] !== 0x4d ||
      chunk[i + 3] !== 0x53 ||
      chunk[i + 4] !== 0x47 ||
      chunk[i + 5] !== 0x20
    ) {
      return -1;
    }
    let j = i + 6;
    const stop = Math.min(n, j + MAX_DIGITS);
    let len = 0;
    for (; j < stop; j++) {
      const d = chunk[j]! - 0x30;
      if (d < 0 || d > 9) break;
      len = len * 10 + d;
    }
    if (j === i + 6 || j + 1 >= n || chunk[j] !== CR || chunk[j + 1] !== LF || len > this.max) return -1;
    this.#fastHeaderEnd = j + 2;
    return len;
  }

  protected readHeader(chunk: Buffer, i: number, sink: FrameSink): number {
    if (this.#state === 0 && chunk.length - i >= 9) {
      // Fast path: a whole, well-formed header inside this chunk is parsed in one go. Anything
      // unusual (malformed, too long, cut by the chunk's end) falls through to the byte-wise
      // state machine below, which produces the exact errors.
      const len = this.#fastHeader(chunk, i, chunk.length);
      if (len >= 0) return this.body.start(chunk, this.#fastHeaderEnd, len, 0, sink);
    }
    return this.#bytewiseHeader(chunk, i, sink);
  }

  /** The header byte by byte, across chunks, with the exact error for each malformed byte. */
  #bytewiseHeader(chunk: Buffer, i: number, sink: FrameSink): number {
    const n = chunk.length;
    let state = this.#state;
    for (; i < n; i++) {
      const b = chunk[i]!;
      if (state < S_DIGITS) {
        if (b !== PREFIX[state]) {
          throw new ProtocolError(
            `bad frame header: expected ${showByte(PREFIX[state]!)} at header byte ${state}, got ${showByte(b)}`,
            { offset: this.base + i },
          );
        }
        state++;
        if (state === S_DIGITS) {
          this.#digits = 0;
          this.#length = 0;
        }
        continue;
      }
      if (state === S_DIGITS) {
        if (b >= 0x30 && b <= 0x39) {
          if (++this.#digits > MAX_DIGITS) {
            throw new ProtocolError(`bad frame header: length has more than ${MAX_DIGITS} digits`, {
              offset: this.base + i,
            });
          }
          this.#length = this.#length * 10 + (b - 0x30);
          if (this.#length > this.max) {
            // Decided from the header: nothing has been allocated for this frame.
            throw new MessageTooLargeError(this.#length, this.max, 'recv');
          }
          continue;
        }
        if (b === CR && this.#digits > 0) {
          state = S_LF;
          continue;
        }
        throw new ProtocolError(
          this.#digits === 0
            ? `bad frame header: expected a decimal length, got ${showByte(b)}`
            : `bad frame header: expected a digit or CR after the length, got ${showByte(b)}`,
          { offset: this.base + i },
        );
      }
      // state === S_LF
      if (b !== LF) {
        throw new ProtocolError(`bad frame header: expected LF after the length, got ${showByte(b)}`, {
          offset: this.base + i,
        });
      }
      this.#state = 0;
      return this.body.start(chunk, i + 1, this.#length, 0, sink);
    }
    this.#state = state;
    return n;
  }
}

function countDigits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** The gist's MSG framing, the default. */
export const msg: Framing = {
  name: 'msg',
  maxHeaderLength: PREFIX.length + MAX_DIGITS + 2,
  hasType: false,
  maxType: 0,
  maxEncodableSize: Number.MAX_SAFE_INTEGER,
  writeHeader(target: Buffer, offset: number, bodyLength: number): number {
    // Byte stores, not PREFIX.copy(): a Buffer copy's fixed cost is large next to 6 bytes (bench/README.md).
    target[offset] = CR;
    target[offset + 1] = LF;
    target[offset + 2] = 0x4d; // M
    target[offset + 3] = 0x53; // S
    target[offset + 4] = 0x47; // G
    target[offset + 5] = 0x20; // SP
    let end = offset + PREFIX.length + countDigits(bodyLength);
    let p = end;
    let v = bodyLength;
    do {
      const q = Math.floor(v / 10);
      target[--p] = 0x30 + (v - q * 10);
      v = q;
    } while (v > 0);
    target[end++] = CR;
    target[end++] = LF;
    return end;
  },
  createDecoder(limits: DecoderLimits): Decoder {
    return new MsgDecoder(limits);
  },
};
