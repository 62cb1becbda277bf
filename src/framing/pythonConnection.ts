/**
 * Python's multiprocessing.connection framing (`Connection.send_bytes` / `recv_bytes`, what
 * `multiprocessing.connection.Listener` and `Client` speak): `[i32 BE length][body]`, and for bodies
 * over 0x7FFFFFFF bytes `FF FF FF FF` followed by `[u64 BE length]`. With `authkey`, both sides
 * authenticate each other right after connecting, exactly as CPython does (see src/auth.ts).
 *
 * Note that `Connection.send()`/`recv()` in Python pickle objects into that body: use
 * `send_bytes`/`recv_bytes` on the Python side (or unpickle yourself).
 */
import { authenticate, rawMessageIO, type ChallengeKind, type RawMessageOptions } from '../auth.js';
import { MessageTooLargeError, ProtocolError } from '../errors.js';
import { FrameDecoder } from './decoder.js';
import type { Decoder, DecoderLimits, FrameSink, Framing, HandshakeIO } from './types.js';

/** Options of pythonConnection(). */
export interface PythonConnectionOptions {
  /**
   * The shared secret of `Listener(authkey=...)` / `Client(authkey=...)`; strings are UTF-8.
   * Without it there is no handshake.
   */
  authkey?: Uint8Array | string;
  /**
   * The challenge this side sends: `'sha256'` (Python 3.12+: `{sha256}` + 40 random bytes) or
   * `'legacy'` (Python 3.11 and older: 20 random bytes, HMAC-MD5). Older Pythons answer a
   * `'sha256'` challenge with HMAC-MD5, which is accepted, so the default works with both.
   * Answers are accepted in either scheme whatever is chosen here, as CPython 3.12 does.
   * @default 'sha256'
   */
  challenge?: ChallengeKind;
}

const ESCAPE = 0xffffffff;
const SHORT_MAX = 0x7fffffff;
const TWO_32 = 2 ** 32;

/** The authkey exchange's messages as multiprocessing frames them: u64-escaped lengths, a ProtocolError past the limit. */
const MULTIPROCESSING_MESSAGES: RawMessageOptions = {
  u64Escape: true,
  tooLong: (len, max) => new ProtocolError(`bad message length ${len} in the multiprocessing handshake (limit ${max})`),
};

class PythonConnectionDecoder extends FrameDecoder {
  /** Header bytes gathered when the header spans chunks (4, or 12 with the escape). */
  readonly #header = Buffer.alloc(12);
  #headerFilled = 0;
  #frameStart = 0;

  protected betweenHeaders(): boolean {
    return this.#headerFilled === 0;
  }

  protected readHeader(chunk: Buffer, i: number, sink: FrameSink): number {
    const n = chunk.length;
    let len: number;
    let escaped = false;
    if (this.#headerFilled === 0 && n - i >= 4 && chunk.readUInt32BE(i) !== ESCAPE) {
      // Common case: a short header wholly in this chunk.
      this.#frameStart = this.base + i;
      len = chunk.readUInt32BE(i);
      i += 4;
    } else {
      if (this.#headerFilled === 0) this.#frameStart = this.base + i;
      const need = this.#headerFilled < 4 || this.#header.readUInt32BE(0) !== ESCAPE ? 4 : 12;
      const take = Math.min(need - this.#headerFilled, n - i);
      chunk.copy(this.#header, this.#headerFilled, i, i + take);
      this.#headerFilled += take;
      i += take;
      if (this.#headerFilled < need) return i;
      const first = this.#header.readUInt32BE(0);
      if (need === 4 && first === ESCAPE) return i; // the u64 length follows
      this.#headerFilled = 0;
      escaped = need === 12;
      // Above 2^53 this is inexact but still above any maxMessageSize, which is all that matters.
      len = escaped ? this.#header.readUInt32BE(4) * TWO_32 + this.#header.readUInt32BE(8) : first;
    }
    if (!escaped && len > SHORT_MAX) {
      // A negative i32 other than -1 (the escape): Python itself cannot make one.
      throw new ProtocolError(`bad multiprocessing header: negative length ${len - TWO_32}`, {
        offset: this.#frameStart,
      });
    }
    // Decided from the header: nothing has been allocated for this frame.
    if (len > this.max) throw new MessageTooLargeError(len, this.max, 'recv');
    return this.body.start(chunk, i, len, 0, sink);
  }
}

/**
 * Python's multiprocessing.connection framing, optionally with its authkey handshake.
 * @example
 * // Python: Listener(('127.0.0.1', 6000), authkey=b'secret'); conn.send_bytes(b'hi')
 * const ch = await Channel.connect('127.0.0.1', 6000, { framing: pythonConnection({ authkey: 'secret' }) });
 * console.log(String(await ch.recv())); // hi
 */
export function pythonConnection(options: PythonConnectionOptions = {}): Framing {
  const { authkey, challenge = 'sha256' } = options;
  if (challenge !== 'sha256' && challenge !== 'legacy') {
    throw new RangeError(`Expected \`challenge\` to be 'sha256' or 'legacy', got ${String(challenge)}`);
  }
  let key: Buffer | undefined;
  if (authkey !== undefined) {
    if (typeof authkey === 'string') key = Buffer.from(authkey, 'utf8');
    else if (authkey instanceof Uint8Array) key = Buffer.from(authkey);
    else throw new TypeError(`Expected \`authkey\` to be a Uint8Array or a string, got ${typeof authkey}`);
  }
  const framing: Framing = {
    name: 'pythonConnection',
    maxHeaderLength: 12,
    hasType: false,
    maxType: 0,
    maxEncodableSize: Number.MAX_SAFE_INTEGER,
    writeHeader(target: Buffer, offset: number, bodyLength: number): number {
      if (bodyLength <= SHORT_MAX) {
        target.writeUInt32BE(bodyLength, offset);
        return offset + 4;
      }
      const hi = Math.floor(bodyLength / TWO_32);
      target.writeUInt32BE(ESCAPE, offset);
      target.writeUInt32BE(hi, offset + 4);
      target.writeUInt32BE(bodyLength - hi * TWO_32, offset + 8);
      return offset + 12;
    },
    createDecoder(limits: DecoderLimits): Decoder {
      return new PythonConnectionDecoder(limits);
    },
  };
  if (key !== undefined) {
    const secret = key;
    framing.handshake = (io: HandshakeIO) =>
      authenticate(rawMessageIO(io, MULTIPROCESSING_MESSAGES), secret, io.isServer, challenge);
  }
  return Object.freeze(framing);
}
