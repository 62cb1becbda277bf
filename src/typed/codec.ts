/**
 * Payload codecs of the typed layer: how one message type turns its data into a frame body and
 * back, like ltprotocol's LTMessage.pack()/unpack(). A codec is two pure functions; it never
 * sees the socket. The browser build shares them: bytes, UTF-8 and msgpack come from platform.ts.
 */
import type { Decoder } from '@msgpack/msgpack';
import { allocBytes, msgpackLib, utf8Decode, utf8Encode } from '../platform.js';
import { checkInt } from '../validate.js';

/** How one message type packs its data into a frame body and unpacks it again. */
export interface Codec<T> {
  /** Data to frame body. Throwing here rejects send() before anything is written. */
  pack(data: T): Uint8Array;
  /**
   * Frame body to data. Throwing here makes recv() reject with MessageDecodeError for that message
   * only. The body is a Buffer in Node, a Uint8Array in the browser build.
   */
  unpack(body: Buffer): T;
}

/** Options of the msgpack codec. */
export interface MsgpackCodecOptions {
  /**
   * Decode msgpack **bin** values as UTF-8 strings. Python 2 packers (packetmq's peers) write
   * every byte string as bin, so a peer's `"hello"` arrives as bin; turn this on to get strings.
   * Map keys are always accepted as bin and decoded to strings, whatever this says.
   * @default false
   */
  binAsString?: boolean;
  /**
   * Deepest nesting of arrays and maps unpack() accepts (a deeper body is refused before it is
   * decoded, as a MessageDecodeError on a typed channel). Lengths need no option: no value may
   * claim more than its body holds.
   * @default 1024
   */
  maxDepth?: number;
}

const DEFAULT_MSGPACK_MAX_DEPTH = 1024;

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Map keys may be str, bin (Python 2 packers) or numbers; bin keys become strings. */
function mapKey(key: unknown): string | number {
  if (typeof key === 'string' || typeof key === 'number') return key;
  if (key instanceof Uint8Array) return utf8.decode(key);
  // msgpack allows any key; a JS object key is a string, so say which one we could not use.
  throw new TypeError(`Expected a msgpack map key of type str, bin or int, got ${typeof key}`);
}

function binToString(value: unknown): unknown {
  if (value instanceof Uint8Array) return utf8.decode(value);
  if (Array.isArray(value)) return value.map(binToString);
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = binToString(v);
    return out;
  }
  return value;
}

/** A big-endian length of `size` bytes at `pos`; throws if the body ends first. */
function lengthAt(body: Uint8Array, pos: number, size: 1 | 2 | 4): number {
  if (pos + size > body.length) throw new RangeError(`msgpack body ends inside the header at byte ${pos - 1}`);
  if (size === 1) return body[pos]!;
  if (size === 2) return (body[pos]! << 8) | body[pos + 1]!;
  return body[pos]! * 0x100_0000 + ((body[pos + 1]! << 16) | (body[pos + 2]! << 8) | body[pos + 3]!);
}

/** For each open container but the innermost, the values it still awaits (reused: a check runs synchronously to its end). */
const outer: number[] = [];

/**
 * Check, in one pass and without allocating, that a msgpack body is one value whose every length
 * fits what is left of the body, nesting at most `maxDepth` arrays and maps deep: every string,
 * bin and ext within the body, and every array or map announcing no more elements than there are
 * bytes left (each element takes at least one), counting the elements the enclosing containers
 * still await. So the decoder allocates at most one slot per byte of the body in all, whatever
 * the headers claim. Throws RangeError.
 */
function checkBounds(body: Uint8Array, maxDepth: number): void {
  const n = body.length;
  let pos = 0;
  let awaited = 1; // values still to read in all: one at the top
  let current = 1; // of which in the innermost open container (or at the top)
  let depth = 0;
  while (awaited > 0) {
    if (pos >= n) throw new RangeError(`msgpack body ends at byte ${n} with ${awaited} value(s) missing`);
    while (current === 0) current = outer[--depth]!; // containers whose values are all read
    current--;
    awaited--;
    const at = pos;
    const head = body[pos++]!;
    let size = -1; // values a container announces (a map's entries count twice); -1: not a container
    if (head < 0x80 || head >= 0xe0) continue; // fixint
    if (head < 0x90)
      size = 2 * (head & 0x0f); // fixmap
    else if (head < 0xa0)
      size = head & 0x0f; // fixarray
    else if (head < 0xc0)
      pos += head & 0x1f; // fixstr
    else {
      switch (head) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          continue; // nil, false, true
        case 0xcc:
        case 0xd0:
          pos += 1;
          break; // uint8, int8
        case 0xcd:
        case 0xd1:
        case 0xd4:
          pos += 2;
          break; // uint16, int16, fixext1
        case 0xd5:
          pos += 3;
          break; // fixext2
        case 0xca:
        case 0xce:
        case 0xd2:
          pos += 4;
          break; // float32, uint32, int32
        case 0xd6:
          pos += 5;
          break; // fixext4
        case 0xcb:
        case 0xcf:
        case 0xd3:
          pos += 8;
          break; // float64, uint64, int64
        case 0xd7:
          pos += 9;
          break; // fixext8
        case 0xd8:
          pos += 17;
          break; // fixext16
        case 0xc4:
        case 0xd9:
          pos += 1 + lengthAt(body, pos, 1);
          break; // bin8, str8
        case 0xc5:
        case 0xda:
          pos += 2 + lengthAt(body, pos, 2);
          break; // bin16, str16
        case 0xc6:
        case 0xdb:
          pos += 4 + lengthAt(body, pos, 4);
          break; // bin32, str32
        case 0xc7:
          pos += 2 + lengthAt(body, pos, 1);
          break; // ext8: length, type, data
        case 0xc8:
          pos += 3 + lengthAt(body, pos, 2);
          break; // ext16
        case 0xc9:
          pos += 5 + lengthAt(body, pos, 4);
          break; // ext32
        case 0xdc:
          size = lengthAt(body, pos, 2);
          pos += 2;
          break; // array16
        case 0xdd:
          size = lengthAt(body, pos, 4);
          pos += 4;
          break; // array32
        case 0xde:
          size = 2 * lengthAt(body, pos, 2);
          pos += 2;
          break; // map16
        case 0xdf:
          size = 2 * lengthAt(body, pos, 4);
          pos += 4;
          break; // map32
        default:
          throw new RangeError(`msgpack type byte 0xc1 at byte ${at} is never valid`);
      }
    }
    if (size < 0) {
      if (pos > n)
        throw new RangeError(
          `msgpack value at byte ${at} (0x${head.toString(16)}) is ${pos - at} bytes long, more than the ${n - at} bytes left`,
        );
      continue;
    }
    if (depth >= maxDepth)
      throw new RangeError(`msgpack containers nest deeper than maxDepth ${maxDepth} at byte ${at}`);
    if (size > 0) {
      awaited += size;
      if (awaited > n - pos) {
        throw new RangeError(
          `msgpack container at byte ${at} (0x${head.toString(16)}) announces ${size} values, ${awaited} in all still to come: more than the ${n - pos} bytes left`,
        );
      }
      outer[depth++] = current;
      current = size;
    }
  }
  if (pos < n) throw new RangeError(`msgpack body has ${n - pos} extra byte(s) after its value, from byte ${pos}`);
}

/**
 * @msgpack/msgpack's decoder with every length limit (str, bin, array, map, ext) set to 2^k, where
 * the body is shorter than 2^k bytes: no value in a body can be longer than the body.
 * checkBounds() already guarantees it; these limits are the decoder's own second line. Decoders
 * for bodies under 64 KiB are kept, one per size class (constructing one is ~5% of decoding a
 * small message); a kept decoder holds on to the last body it decoded, so larger bodies get a
 * fresh one.
 */
const decoders: Decoder[] = [];
const KEEP_BELOW = 16; // 2^16 bytes

function decoderFor(length: number): Decoder {
  const k = 32 - Math.clz32(length); // length < 2^k (2^32 covers every body a Channel accepts)
  let d = decoders[k];
  if (d === undefined) {
    const max = Math.min(2 ** k, 0xffff_ffff);
    d = new (msgpackLib().Decoder)({
      mapKeyConverter: mapKey,
      maxStrLength: max,
      maxBinLength: max,
      maxArrayLength: max,
      maxMapLength: max,
      maxExtLength: max,
    });
    if (k <= KEEP_BELOW) decoders[k] = d;
  }
  return d;
}

/** Decode one msgpack value that must fill `body`, in time and memory proportional to the body. */
function decodeBounded(body: Uint8Array, maxDepth: number): unknown {
  checkBounds(body, maxDepth);
  return decoderFor(body.length).decode(body);
}

/**
 * The msgpack codec (the default payload codec, and packetmq's). The type parameter only states
 * what you expect; msgpack does not check it.
 *
 * Unpacking is bounded by the body: a header that announces more than the rest of the body holds
 * (a string, bin or ext longer than the bytes left, an array or map with more elements than bytes
 * left) is refused from the header, before anything is allocated, and so is nesting deeper than
 * `maxDepth`. A body of n bytes decodes to at most n values.
 * @example
 * protocol.define('chat:say', 17, msgpack<{ text: string }>())
 */
export function msgpack<T = unknown>(options: MsgpackCodecOptions = {}): Codec<T> {
  const binAsString = options.binAsString ?? false;
  const maxDepth = checkInt('maxDepth', options.maxDepth ?? DEFAULT_MSGPACK_MAX_DEPTH, 0, Number.MAX_SAFE_INTEGER);
  return {
    pack: (data) => msgpackLib().encode(data),
    unpack: (body) => {
      const value = decodeBounded(body, maxDepth);
      return (binAsString ? binToString(value) : value) as T;
    },
  };
}

/** The default codec: msgpack, bin map keys accepted. */
export const msgpackCodec: Codec<unknown> = msgpack();

/** The body as is (ltprotocol's StrMsg). Unpacked bodies are views into the received frame. */
export const raw: Codec<Uint8Array> = {
  pack: (data) => {
    if (!(data instanceof Uint8Array)) throw new TypeError(`Expected a Uint8Array, got ${typeof data}`);
    return data;
  },
  unpack: (body) => body,
};

/** A UTF-8 string. */
export const utf8String: Codec<string> = {
  pack: (data) => {
    if (typeof data !== 'string') throw new TypeError(`Expected a string, got ${typeof data}`);
    return utf8Encode(data);
  },
  unpack: (body) => utf8Decode(body),
};

/** JSON text. */
export function json<T = unknown>(): Codec<T> {
  return {
    pack: (data) => utf8Encode(JSON.stringify(data)),
    unpack: (body) => JSON.parse(utf8Decode(body)) as T,
  };
}

function exact(body: Uint8Array, n: number, what: string): void {
  if (body.length !== n) throw new RangeError(`Expected a ${n}-byte ${what} body, got ${body.length} bytes`);
}

/** One unsigned big-endian integer, Python struct `>B`, `>H` or `>I` (ltprotocol's NumMsg is `>I`). */
export function uint(bytes: 1 | 2 | 4): Codec<number> {
  const max = 2 ** (8 * bytes) - 1;
  const what = `u${8 * bytes} BE`;
  return {
    pack: (data) => {
      let value = checkInt(`${what} data`, data, 0, max);
      const b = allocBytes(bytes);
      for (let i = bytes - 1; i >= 0; i--) {
        b[i] = value & 0xff;
        value = Math.floor(value / 256);
      }
      return b;
    },
    unpack: (body) => {
      exact(body, bytes, what);
      let value = 0;
      for (let i = 0; i < bytes; i++) value = value * 256 + body[i]!;
      return value;
    },
  };
}

/** Python struct `>I`: one u32 big-endian. */
export const uint32: Codec<number> = uint(4);
