/**
 * Configurable length-prefixed framing, in the spirit of tokio's LengthDelimitedCodec: a fixed-size
 * header holding a length field (1, 2, 4 or 8 bytes, big- or little-endian) and optionally a type
 * field, followed by the body. Presets: `ltprotocol()`, `int32`, `openflow`.
 *
 * Header layout: `headerSize = max(lengthOffset + lengthSize, typeOffset + typeSize)`. Header bytes
 * that belong to neither field are written as zero and ignored when reading.
 *
 * The length field holds `counted + lengthAdjustment`, where `counted` is the body length
 * (`lengthCounts: 'body'`) or the whole frame, header included (`lengthCounts: 'frame'`). Note the
 * sign: this is the opposite of tokio's `length_adjustment`, which is added to the field's value.
 */
import { MessageTooLargeError, ProtocolError } from '../errors.js';
import { checkInt, checkOneOf } from '../validate.js';
import { FrameDecoder } from './decoder.js';
import type { Decoder, DecoderLimits, FrameSink, Framing } from './types.js';

/** Options of lengthPrefixed(). */
export interface LengthPrefixedOptions {
  /**
   * Bytes of the length field: 1, 2, 4 or 8.
   * @default 4
   */
  lengthSize?: 1 | 2 | 4 | 8;
  /**
   * Both fields little-endian instead of big-endian (network order).
   * @default false
   */
  littleEndian?: boolean;
  /**
   * Bytes of the header before the length field.
   * @default 0
   */
  lengthOffset?: number;
  /**
   * What the length field counts: the body only, or the whole frame (header and body).
   * @default 'body'
   */
  lengthCounts?: 'body' | 'frame';
  /**
   * Added to what the length counts to give the field's value. For `[u32 len][u16 type][body]`
   * whose length counts the type and the body, use `lengthCounts: 'body', lengthAdjustment: 2`.
   * Must not make the field negative for an empty body.
   * @default 0
   */
  lengthAdjustment?: number;
  /**
   * Bytes of the type field (0 for none): 0, 1, 2, 4 or 8.
   * @default 0
   */
  typeSize?: 0 | 1 | 2 | 4 | 8;
  /**
   * Offset of the type field in the header.
   * @default lengthOffset + lengthSize (right after the length field)
   */
  typeOffset?: number;
  /**
   * Name of the framing, for errors.
   * @default 'lengthPrefixed'
   */
  name?: string;
}

/** A length-prefixed framing; its layout is exposed read-only for diagnostics. */
export interface LengthPrefixedFraming extends Framing {
  readonly lengthSize: 1 | 2 | 4 | 8;
  readonly littleEndian: boolean;
  readonly lengthOffset: number;
  readonly lengthCounts: 'body' | 'frame';
  readonly lengthAdjustment: number;
  readonly typeSize: 0 | 1 | 2 | 4 | 8;
  readonly typeOffset: number;
  /** Bytes of the header. */
  readonly headerSize: number;
}

const TWO_32 = 2 ** 32;
/** Offsets and adjustments are bounded so header arithmetic stays small and exact. */
const MAX_OFFSET = 1024;

/** Largest value a field of `size` bytes can carry here (8-byte fields: MAX_SAFE_INTEGER). */
function fieldMax(size: number): number {
  return size === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * size) - 1;
}

/**
 * Read an unsigned field. 8-byte values above MAX_SAFE_INTEGER come back inexact but still above
 * MAX_SAFE_INTEGER, which is all the callers need to reject them.
 */
function readField(buf: Buffer, at: number, size: number, le: boolean): number {
  switch (size) {
    case 1:
      return buf[at]!;
    case 2:
      return le ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
    case 4:
      return le ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
    default: {
      const hi = le ? buf.readUInt32LE(at + 4) : buf.readUInt32BE(at);
      const lo = le ? buf.readUInt32LE(at) : buf.readUInt32BE(at + 4);
      return hi * TWO_32 + lo;
    }
  }
}

/** Write an unsigned field; `value` has been range-checked by the caller. */
function writeField(buf: Buffer, at: number, size: number, le: boolean, value: number): void {
  switch (size) {
    case 1:
      buf[at] = value;
      return;
    case 2:
      if (le) buf.writeUInt16LE(value, at);
      else buf.writeUInt16BE(value, at);
      return;
    case 4:
      if (le) buf.writeUInt32LE(value, at);
      else buf.writeUInt32BE(value, at);
      return;
    default: {
      const hi = Math.floor(value / TWO_32);
      const lo = value - hi * TWO_32;
      if (le) {
        buf.writeUInt32LE(lo, at);
        buf.writeUInt32LE(hi, at + 4);
      } else {
        buf.writeUInt32BE(hi, at);
        buf.writeUInt32BE(lo, at + 4);
      }
    }
  }
}

class LengthPrefixedDecoder extends FrameDecoder {
  readonly #framing: LengthPrefixedFraming;
  /** Header bytes gathered when the header spans chunks. */
  readonly #header: Buffer;
  #headerFilled = 0;
  #type = 0;
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
    const len = this.#parseHeader(h, at);
    return this.body.start(chunk, i, len, this.#type, sink);
  }

  /** Validate a complete header; sets #type and returns the body length. Allocates nothing. */
  #parseHeader(h: Buffer, at: number): number {
    const f = this.#framing;
    const field = readField(h, at + f.lengthOffset, f.lengthSize, f.littleEndian);
    if (field > Number.MAX_SAFE_INTEGER) throw new MessageTooLargeError(field, this.max, 'recv');
    const overhead = f.lengthAdjustment + (f.lengthCounts === 'frame' ? f.headerSize : 0);
    const len = field - overhead;
    if (len < 0) {
      throw new ProtocolError(`bad ${f.name} header: length field ${field} is below the minimum ${overhead}`, {
        offset: this.#frameStart + f.lengthOffset,
      });
    }
    // Decided from the header: nothing has been allocated for this frame.
    if (len > this.max) throw new MessageTooLargeError(len, this.max, 'recv');
    if (f.typeSize > 0) {
      const type = readField(h, at + f.typeOffset, f.typeSize, f.littleEndian);
      if (type > Number.MAX_SAFE_INTEGER) {
        throw new ProtocolError(`bad ${f.name} header: type field is above Number.MAX_SAFE_INTEGER`, {
          offset: this.#frameStart + f.typeOffset,
        });
      }
      this.#type = type;
    }
    return len;
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
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected \`options\` to be an object, got ${String(options)}`);
  }
  const lengthSize = checkOneOf('lengthSize', options.lengthSize ?? 4, [1, 2, 4, 8] as const);
  const typeSize = checkOneOf('typeSize', options.typeSize ?? 0, [0, 1, 2, 4, 8] as const);
  const littleEndian = options.littleEndian ?? false;
  if (typeof littleEndian !== 'boolean')
    throw new TypeError(`Expected \`littleEndian\` to be a boolean, got ${String(littleEndian)}`);
  const lengthCounts = checkOneOf('lengthCounts', options.lengthCounts ?? 'body', ['body', 'frame'] as const);
  const lengthOffset = checkInt('lengthOffset', options.lengthOffset ?? 0, 0, MAX_OFFSET);
  const typeOffset = checkInt('typeOffset', options.typeOffset ?? lengthOffset + lengthSize, 0, MAX_OFFSET);
  const name = options.name ?? 'lengthPrefixed';
  if (typeof name !== 'string') throw new TypeError(`Expected \`name\` to be a string, got ${String(name)}`);
  if (typeSize > 0 && typeOffset < lengthOffset + lengthSize && lengthOffset < typeOffset + typeSize) {
    throw new RangeError(
      `Expected the type field (bytes ${typeOffset}..${typeOffset + typeSize - 1}) not to overlap the length field (bytes ${lengthOffset}..${lengthOffset + lengthSize - 1})`,
    );
  }
  const headerSize = Math.max(lengthOffset + lengthSize, typeSize > 0 ? typeOffset + typeSize : 0);
  const fieldLimit = fieldMax(lengthSize);
  const base = lengthCounts === 'frame' ? headerSize : 0;
  // The field of an empty body must be >= 0, and that of some body must fit the field.
  const lengthAdjustment = checkInt('lengthAdjustment', options.lengthAdjustment ?? 0, -base, fieldLimit - base);
  const overhead = base + lengthAdjustment;
  const maxEncodableSize = fieldLimit - overhead;
  const maxType = typeSize === 0 ? 0 : fieldMax(typeSize);

  const framing: LengthPrefixedFraming = {
    name,
    lengthSize,
    littleEndian,
    lengthOffset,
    lengthCounts,
    lengthAdjustment,
    typeSize,
    typeOffset,
    headerSize,
    maxHeaderLength: headerSize,
    hasType: typeSize > 0,
    maxType,
    maxEncodableSize,
    writeHeader(target: Buffer, offset: number, bodyLength: number, type: number): number {
      if (!(bodyLength >= 0 && bodyLength <= maxEncodableSize)) {
        throw new RangeError(
          `${name}: a ${bodyLength}-byte body does not fit the ${lengthSize}-byte length field (max ${maxEncodableSize})`,
        );
      }
      if (!(type >= 0 && type <= maxType) || !Number.isInteger(type)) {
        throw new RangeError(`${name}: expected a type from 0 to ${maxType}, got ${type}`);
      }
      if (headerSize > lengthSize + typeSize) target.fill(0, offset, offset + headerSize);
      writeField(target, offset + lengthOffset, lengthSize, littleEndian, bodyLength + overhead);
      if (typeSize > 0) writeField(target, offset + typeOffset, typeSize, littleEndian, type);
      return offset + headerSize;
    },
    createDecoder(limits: DecoderLimits): Decoder {
      return new LengthPrefixedDecoder(framing, limits);
    },
  };
  return Object.freeze(framing);
}

/** Python `struct` codes of ltprotocol's fields. */
export type StructCode = 'B' | 'H' | 'I' | 'Q';
const STRUCT_SIZES = { B: 1, H: 2, I: 4, Q: 8 } as const;

/**
 * The framing of ltprotocol (`LTProtocol(msg_types, len_type, type_type)`):
 * `[length][type][body]`, both fields big-endian with Python struct codes B/H/I/Q, the length
 * counting the whole frame. A length below the header size is a ProtocolError.
 * @example
 * const ch = await Channel.connect('127.0.0.1', 9999, { framing: ltprotocol() }); // 'H', 'B'
 * const { type, data } = await ch.recvFrame(); // NumMsg(200): type 1, data 00 00 00 C8
 */
export function ltprotocol(lenType: StructCode = 'H', typeType: StructCode = 'B'): LengthPrefixedFraming {
  const codes = Object.keys(STRUCT_SIZES) as StructCode[];
  const lengthSize = STRUCT_SIZES[checkOneOf('lenType', lenType, codes)];
  const typeSize = STRUCT_SIZES[checkOneOf('typeType', typeType, codes)];
  return lengthPrefixed({ name: 'ltprotocol', lengthSize, typeSize, lengthCounts: 'frame' });
}

/** Twisted's Int32StringReceiver: `[u32 BE body length][body]`. (Twisted's own MAX_LENGTH is 99999.) */
export const int32: LengthPrefixedFraming = lengthPrefixed({ name: 'int32', lengthSize: 4 });

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
