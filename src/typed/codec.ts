/**
 * Payload codecs of the typed layer: how one message type turns its data into a frame body and
 * back, like ltprotocol's LTMessage.pack()/unpack(). A codec is two pure functions; it never
 * sees the socket.
 */
import { decode, encode } from '@msgpack/msgpack';
import { checkInt } from '../validate.js';

/** How one message type packs its data into a frame body and unpacks it again. */
export interface Codec<T> {
  /** Data to frame body. Throwing here rejects send() before anything is written. */
  pack(data: T): Uint8Array;
  /** Frame body to data. Throwing here makes recv() reject with MessageDecodeError for that message only. */
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
}

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

/**
 * The msgpack codec (the default payload codec, and packetmq's). The type parameter only states
 * what you expect; msgpack does not check it.
 * @example
 * protocol.define('chat:say', 17, msgpack<{ text: string }>())
 */
export function msgpack<T = unknown>(options: MsgpackCodecOptions = {}): Codec<T> {
  const binAsString = options.binAsString ?? false;
  return {
    pack: (data) => encode(data),
    unpack: (body) => {
      const value = decode(body, { mapKeyConverter: mapKey });
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
    return Buffer.from(data, 'utf8');
  },
  unpack: (body) => body.toString('utf8'),
};

/** JSON text. */
export function json<T = unknown>(): Codec<T> {
  return {
    pack: (data) => Buffer.from(JSON.stringify(data), 'utf8'),
    unpack: (body) => JSON.parse(body.toString('utf8')) as T,
  };
}

function exact(body: Buffer, n: number, what: string): void {
  if (body.length !== n) throw new RangeError(`Expected a ${n}-byte ${what} body, got ${body.length} bytes`);
}

/** One unsigned big-endian integer, Python struct `>B`, `>H` or `>I` (ltprotocol's NumMsg is `>I`). */
export function uint(bytes: 1 | 2 | 4): Codec<number> {
  const max = 2 ** (8 * bytes) - 1;
  const what = `u${8 * bytes} BE`;
  return {
    pack: (data) => {
      const b = Buffer.allocUnsafe(bytes);
      b.writeUIntBE(checkInt(`${what} data`, data, 0, max), 0, bytes);
      return b;
    },
    unpack: (body) => {
      exact(body, bytes, what);
      return body.readUIntBE(0, bytes);
    },
  };
}

/** Python struct `>I`: one u32 big-endian. */
export const uint32: Codec<number> = uint(4);

/** Turn a codec's output into a Buffer view (no copy). */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
