/**
 * Configurable length-prefixed framing, in the spirit of tokio's LengthDelimitedCodec: a fixed-size
 * header holding a length field (1, 2, 4 or 8 bytes, big- or little-endian) and optionally a type
 * field, followed by the body. Presets: `ltprotocol()`, `int32`, `openflow`. The layout (options,
 * checks, reading and writing the fields) is layout.ts, which the browser build shares; this is
 * Node's Framing of it, with its decoder on the one decoder skeleton (decoder.ts).
 */
import { checkInt } from '../validate.js';
import { FrameDecoder } from './decoder.js';
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
} from './layout.js';
import type { Decoder, DecoderLimits, FrameSink, Framing } from './types.js';

export type { LengthPrefixedOptions, StructCode } from './layout.js';

/** A length-prefixed framing; its layout is exposed read-only for diagnostics. */
export interface LengthPrefixedFraming extends Framing, LengthPrefixedLayout {}

class LengthPrefixedDecoder extends FrameDecoder {
  readonly #framing: LengthPrefixedFraming;
  /** Header bytes gathered when the header spans chunks. */
  readonly #header: Buffer;
  #headerFilled = 0;
  /** Stream offset of the current frame. */
  #frameStart = 0;

  constructor(framing: LengthPrefixedFraming, limits: DecoderLimits) {
    super(limits);
    this.#framing = framing;
    this.#header = Buffer.alloc(framing.headerSize);
  }

  protected betweenHeaders(): boolean {
    return this.#headerFilled === 0;
  }

  protected readHeader(chunk: Buffer, i: number, sink: FrameSink): number {
    const hsize = this.#framing.headerSize;
    const n = chunk.length;
    let h: Buffer;
    let at: number;
    if (this.#headerFilled === 0 && n - i >= hsize) {
      // Whole header in this chunk: parse it in place.
      this.#frameStart = this.base + i;
      h = chunk;
      at = i;
      i += hsize;
    } else {
      if (this.#headerFilled === 0) this.#frameStart = this.base + i;
      const take = Math.min(hsize - this.#headerFilled, n - i);
      chunk.copy(this.#header, this.#headerFilled, i, i + take);
      this.#headerFilled += take;
      i += take;
      if (this.#headerFilled < hsize) return i;
      this.#headerFilled = 0;
      h = this.#header;
      at = 0;
    }
    // Decided from the header: nothing has been allocated for this frame.
    const len = bodyLengthOf(this.#framing, h, at, this.max, this.#frameStart);
    const type = typeOf(this.#framing, h, at, this.#frameStart);
    return this.body.start(chunk, i, len, type, sink);
  }
}

/**
 * A length-prefixed framing.
 * @example
 * // packetmq: [u32 BE length of type+body][u16 BE type][body]
 * const packetmq = lengthPrefixed({ lengthSize: 4, typeSize: 2, lengthAdjustment: 2 });
 * const ch = await Channel.connect('localhost', 9999, { framing: packetmq });
 * await ch.send(payload, { type: 16 });
 */
export function lengthPrefixed(options: LengthPrefixedOptions = {}): LengthPrefixedFraming {
  const layout = lengthPrefixedLayout(options);
  const framing: LengthPrefixedFraming = {
    ...layout,
    maxHeaderLength: layout.headerSize,
    hasType: layout.typeSize > 0,
    writeHeader(target: Buffer, offset: number, bodyLength: number, type: number): number {
      return writeHeaderOf(layout, target, offset, bodyLength, type);
    },
    createDecoder(limits: DecoderLimits): Decoder {
      return new LengthPrefixedDecoder(framing, limits);
    },
  };
  return Object.freeze(framing);
}

/**
 * The framing of ltprotocol (`LTProtocol(msg_types, len_type, type_type)`):
 * `[length][type][body]`, both fields big-endian with Python struct codes B/H/I/Q, the length
 * counting the whole frame. A length below the header size is a ProtocolError.
 * @example
 * const ch = await Channel.connect('127.0.0.1', 9999, { framing: ltprotocol() }); // 'H', 'B'
 * const { type, data } = await ch.recvFrame(); // NumMsg(200): type 1, data 00 00 00 C8
 */
export function ltprotocol(lenType: StructCode = 'H', typeType: StructCode = 'B'): LengthPrefixedFraming {
  return lengthPrefixed(ltprotocolOptions(lenType, typeType));
}

/** Twisted's Int32StringReceiver: `[u32 BE body length][body]`. (Twisted's own MAX_LENGTH is 99999.) */
export const int32: LengthPrefixedFraming = lengthPrefixed(INT32_OPTIONS);

/**
 * An OpenFlow-style header, `[u8 version][u8 type][u16 BE length of the whole message][u32 xid]`,
 * expressed with the generic options so that nothing is lost:
 * - the frame's `type` is `version << 8 | ofType` (a 2-byte type field at offset 0): use
 *   `openflowType(version, ofType)` to send and `type >> 8`, `type & 0xff` to read;
 * - the `body` is everything after the length field: the 4-byte xid, then the payload. The codec
 *   does not interpret the xid; `send()` takes it as the first four body bytes.
 * A length below 4 is a ProtocolError; a real peer's length is at least 8 (xid included), and the
 * body of any frame it sends is at least 4 bytes.
 */
export const openflow: LengthPrefixedFraming = lengthPrefixed({
  name: 'openflow',
  typeSize: 2,
  typeOffset: 0,
  lengthSize: 2,
  lengthOffset: 2,
  lengthCounts: 'frame',
});

/** The `type` of an openflow frame carrying OpenFlow `version` and message type `ofType`. */
export function openflowType(version: number, ofType: number): number {
  checkInt('version', version, 0, 255);
  checkInt('ofType', ofType, 0, 255);
  return (version << 8) | ofType;
}
