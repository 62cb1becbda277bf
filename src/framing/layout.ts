/**
 * The header layout of the length-prefixed framings (lengthPrefixed(), ltprotocol(), int32,
 * openflow): their options and checks, and reading and writing a header's fields. On Uint8Array,
 * importing nothing of Node, so the Node decoder (lengthPrefixed.ts) and the browser build's
 * (src/browser/framing.ts) read and write the same bytes from one description.
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

/** A checked layout: every option filled in, and what follows from them. */
export interface LengthPrefixedLayout {
  readonly name: string;
  readonly lengthSize: 1 | 2 | 4 | 8;
  readonly littleEndian: boolean;
  readonly lengthOffset: number;
  readonly lengthCounts: 'body' | 'frame';
  readonly lengthAdjustment: number;
  readonly typeSize: 0 | 1 | 2 | 4 | 8;
  readonly typeOffset: number;
  /** Bytes of the header. */
  readonly headerSize: number;
  /** Largest type value the type field holds (0 without one). */
  readonly maxType: number;
  /** Largest body the length field can describe. */
  readonly maxEncodableSize: number;
}

const TWO_32 = 2 ** 32;
/** Offsets and adjustments are bounded so header arithmetic stays small and exact. */
const MAX_OFFSET = 1024;

/** Largest value a field of `size` bytes can carry here (8-byte fields: MAX_SAFE_INTEGER). */
function fieldMax(size: number): number {
  return size === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * size) - 1;
}

/** What the length field holds beyond the body's length. */
function overheadOf(layout: LengthPrefixedLayout): number {
  return layout.lengthAdjustment + (layout.lengthCounts === 'frame' ? layout.headerSize : 0);
}

/** Check lengthPrefixed()'s options; throws TypeError/RangeError saying what was expected. */
export function lengthPrefixedLayout(options: LengthPrefixedOptions): LengthPrefixedLayout {
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
  return {
    name,
    lengthSize,
    littleEndian,
    lengthOffset,
    lengthCounts,
    lengthAdjustment,
    typeSize,
    typeOffset,
    headerSize,
    maxType: typeSize === 0 ? 0 : fieldMax(typeSize),
    maxEncodableSize: fieldLimit - (base + lengthAdjustment),
  };
}

/** Python `struct` codes of ltprotocol's fields. */
export type StructCode = 'B' | 'H' | 'I' | 'Q';
const STRUCT_SIZES = { B: 1, H: 2, I: 4, Q: 8 } as const;

/**
 * ltprotocol's layout (`LTProtocol(msg_types, len_type, type_type)`): `[length][type][body]`,
 * both fields big-endian with Python struct codes B/H/I/Q, the length counting the whole frame.
 */
export function ltprotocolOptions(lenType: StructCode, typeType: StructCode): LengthPrefixedOptions {
  const codes = Object.keys(STRUCT_SIZES) as StructCode[];
  const lengthSize = STRUCT_SIZES[checkOneOf('lenType', lenType, codes)];
  const typeSize = STRUCT_SIZES[checkOneOf('typeType', typeType, codes)];
  return { name: 'ltprotocol', lengthSize, typeSize, lengthCounts: 'frame' };
}

/** Twisted's Int32StringReceiver: `[u32 BE body length][body]`. */
export const INT32_OPTIONS: LengthPrefixedOptions = Object.freeze({ name: 'int32', lengthSize: 4 });

/**
 * Read an unsigned field. 8-byte values above MAX_SAFE_INTEGER come back inexact but still above
 * MAX_SAFE_INTEGER, which is all the callers need to reject them.
 */
function readField(b: Uint8Array, at: number, size: number, le: boolean): number {
  switch (size) {
    case 1:
      return b[at]!;
    case 2:
      return le ? b[at]! | (b[at + 1]! << 8) : (b[at]! << 8) | b[at + 1]!;
    case 4:
      return le
        ? (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)) + b[at + 3]! * 0x100_0000
        : b[at]! * 0x100_0000 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
    default: {
      const hi = readField(b, le ? at + 4 : at, 4, le);
      const lo = readField(b, le ? at : at + 4, 4, le);
      return hi * TWO_32 + lo;
    }
  }
}

/** Write an unsigned field; `value` has been range-checked by the caller. */
function writeField(b: Uint8Array, at: number, size: number, le: boolean, value: number): void {
  if (size === 8) {
    const hi = Math.floor(value / TWO_32);
    writeField(b, le ? at + 4 : at, 4, le, hi);
    writeField(b, le ? at : at + 4, 4, le, value - hi * TWO_32);
    return;
  }
  for (let i = 0; i < size; i++) {
    b[le ? at + i : at + size - 1 - i] = value & 0xff;
    value = Math.floor(value / 256);
  }
}

/**
 * Write the header of a `bodyLength`-byte frame of `type` into `target` at `offset`; returns the
 * offset after it. Throws RangeError for a length or type the fields cannot hold.
 */
export function writeHeaderOf(
  layout: LengthPrefixedLayout,
  target: Uint8Array,
  offset: number,
  bodyLength: number,
  type: number,
): number {
  const { name, lengthSize, typeSize, headerSize, maxType, maxEncodableSize, littleEndian } = layout;
  if (!(bodyLength >= 0 && bodyLength <= maxEncodableSize)) {
    throw new RangeError(
      `${name}: a ${bodyLength}-byte body does not fit the ${lengthSize}-byte length field (max ${maxEncodableSize})`,
    );
  }
  if (!(type >= 0 && type <= maxType) || !Number.isInteger(type)) {
    throw new RangeError(`${name}: expected a type from 0 to ${maxType}, got ${type}`);
  }
  if (headerSize > lengthSize + typeSize) target.fill(0, offset, offset + headerSize);
  writeField(target, offset + layout.lengthOffset, lengthSize, littleEndian, bodyLength + overheadOf(layout));
  if (typeSize > 0) writeField(target, offset + layout.typeOffset, typeSize, littleEndian, type);
  return offset + headerSize;
}

/**
 * The body length of the whole header at `h[at]`, checked: a length field below the header's own
 * share is a ProtocolError, a body above `max` a MessageTooLargeError, both decided from the
 * header before anything is allocated. `frameStart` is the frame's stream offset, for errors.
 */
export function bodyLengthOf(
  layout: LengthPrefixedLayout,
  h: Uint8Array,
  at: number,
  max: number,
  frameStart: number,
): number {
  const field = readField(h, at + layout.lengthOffset, layout.lengthSize, layout.littleEndian);
  if (field > Number.MAX_SAFE_INTEGER) throw new MessageTooLargeError(field, max, 'recv');
  const overhead = overheadOf(layout);
  const len = field - overhead;
  if (len < 0) {
    throw new ProtocolError(`bad ${layout.name} header: length field ${field} is below the minimum ${overhead}`, {
      offset: frameStart + layout.lengthOffset,
    });
  }
  if (len > max) throw new MessageTooLargeError(len, max, 'recv');
  return len;
}

/** The type field of the whole header at `h[at]` (0 without one); one above MAX_SAFE_INTEGER is a ProtocolError. */
export function typeOf(layout: LengthPrefixedLayout, h: Uint8Array, at: number, frameStart: number): number {
  if (layout.typeSize === 0) return 0;
  const type = readField(h, at + layout.typeOffset, layout.typeSize, layout.littleEndian);
  if (type > Number.MAX_SAFE_INTEGER) {
    throw new ProtocolError(`bad ${layout.name} header: type field is above Number.MAX_SAFE_INTEGER`, {
      offset: frameStart + layout.typeOffset,
    });
  }
  return type;
}
