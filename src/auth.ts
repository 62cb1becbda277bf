/**
 * HMAC challenge/response authentication, as Python's multiprocessing.connection does it
 * (`deliver_challenge` / `answer_challenge`). It is written against a tiny message interface so any
 * framing's handshake (or a later generic auth feature) can run it. It authenticates both ends of
 * the connection when each side runs both steps; it does not encrypt anything.
 *
 * Challenger: sends `#CHALLENGE#` + message, reads the answer (at most 256 bytes), replies
 * `#WELCOME#` or `#FAILURE#`. The message is either
 *  - `{sha256}` + 40 random bytes (Python 3.12+, `challenge: 'sha256'`), answered with `{sha256}` +
 *    HMAC-SHA256(authkey, message) — the MAC covers the `{sha256}` prefix too; or
 *  - 20 random bytes (Python 3.11 and older, `challenge: 'legacy'`), answered with the raw 16-byte
 *    HMAC-MD5(authkey, message).
 * Like CPython 3.12, the challenger accepts a legacy raw HMAC-MD5 answer to either kind (that is
 * how a 3.11 client answers a `{sha256}` challenge) and a `{digest}`-prefixed answer to either kind.
 */
import { AuthenticationError } from './errors.js';
import { lazyModule } from './util.js';

/** node:crypto, loaded by the first authentication: a process without `auth` does not pay for it. */
const cryptoLib = lazyModule<typeof import('node:crypto')>('node:crypto');

/** Whole messages over some framing, for the handshake. */
export interface AuthMessageIO {
  send(message: Buffer): void;
  /** The next whole message; rejects if it is longer than `maxLength`. */
  recv(maxLength: number): Promise<Buffer>;
}

/** The challenge a challenger sends: Python 3.12+'s `{sha256}` one, or 3.11's legacy HMAC-MD5 one. */
export type ChallengeKind = 'sha256' | 'legacy';

export const CHALLENGE = Buffer.from('#CHALLENGE#');
export const WELCOME = Buffer.from('#WELCOME#');
export const FAILURE = Buffer.from('#FAILURE#');
/** Handshake messages are read with this limit, as CPython does. */
export const AUTH_MESSAGE_LIMIT = 256;

/** Python's digest names, mapped to node:crypto's. */
const DIGESTS: Record<string, string> = {
  md5: 'md5',
  sha256: 'sha256',
  sha384: 'sha384',
  sha3_256: 'sha3-256',
  sha3_384: 'sha3-384',
};
const MAX_DIGEST_NAME = 8;
const MESSAGE_LENGTH = 40;
const LEGACY_MESSAGE_LENGTH = 20;
const MD5_LENGTH = 16;

function hmac(digest: string, key: Buffer, message: Buffer): Buffer {
  return cryptoLib().createHmac(DIGESTS[digest]!, key).update(message).digest();
}

/** `{name}payload` -> [name, payload]; legacy lengths (16 or 20 bytes) -> ['', message]. */
function splitDigest(message: Buffer): [string, Buffer] {
  if (message.length === LEGACY_MESSAGE_LENGTH || message.length === MD5_LENGTH) return ['', message];
  if (message[0] === 0x7b /* { */) {
    const close = message.indexOf(0x7d /* } */, 1);
    if (close > 0 && close <= MAX_DIGEST_NAME + 1) {
      const name = message.subarray(1, close).toString('latin1');
      if (Object.hasOwn(DIGESTS, name)) return [name, message.subarray(close + 1)];
    }
  }
  throw new AuthenticationError(
    `unsupported message length, missing digest prefix, or unsupported digest (${message.length} bytes)`,
  );
}

/** The answer to a challenge `message` (what followed `#CHALLENGE#`). */
export function createResponse(authkey: Buffer, message: Buffer): Buffer {
  const [name] = splitDigest(message);
  if (name === '') return hmac('md5', authkey, message);
  return Buffer.concat([Buffer.from(`{${name}}`, 'latin1'), hmac(name, authkey, message)]);
}

/**
 * Throws AuthenticationError unless `response` is a valid answer to `message`. With `sha256Only`
 * (the channel `auth` option) only a `{sha256}` answer counts, whatever the challenge was.
 */
export function verifyResponse(authkey: Buffer, message: Buffer, response: Buffer, sha256Only = false): void {
  const [name, mac] = splitDigest(response);
  if (sha256Only && name !== 'sha256') throw new AuthenticationError('expected an HMAC-SHA256 answer');
  const expected = hmac(name || 'md5', authkey, message);
  if (expected.length !== mac.length || !cryptoLib().timingSafeEqual(expected, mac)) {
    throw new AuthenticationError('digest received was wrong (the peer has a different authkey)');
  }
}

/** Send a challenge, check the answer, tell the peer; throws AuthenticationError on a wrong answer. */
export async function deliverChallenge(
  io: AuthMessageIO,
  authkey: Buffer,
  kind: ChallengeKind = 'sha256',
  sha256Only = false,
): Promise<void> {
  const message =
    kind === 'legacy'
      ? cryptoLib().randomBytes(LEGACY_MESSAGE_LENGTH)
      : Buffer.concat([Buffer.from('{sha256}', 'latin1'), cryptoLib().randomBytes(MESSAGE_LENGTH)]);
  io.send(Buffer.concat([CHALLENGE, message]));
  const response = await io.recv(AUTH_MESSAGE_LIMIT);
  try {
    verifyResponse(authkey, message, response, sha256Only);
  } catch (error) {
    io.send(FAILURE);
    throw error;
  }
  io.send(WELCOME);
}

/** Answer the peer's challenge; throws AuthenticationError if it is malformed or our answer is rejected. */
export async function answerChallenge(io: AuthMessageIO, authkey: Buffer): Promise<void> {
  const challenge = await io.recv(AUTH_MESSAGE_LIMIT);
  if (!challenge.subarray(0, CHALLENGE.length).equals(CHALLENGE)) {
    throw new AuthenticationError('expected a #CHALLENGE# message (does the peer use an authkey?)');
  }
  const message = challenge.subarray(CHALLENGE.length);
  if (message.length < LEGACY_MESSAGE_LENGTH)
    throw new AuthenticationError(`challenge too short: ${message.length} bytes`);
  io.send(createResponse(authkey, message));
  const verdict = await io.recv(AUTH_MESSAGE_LIMIT);
  if (!verdict.equals(WELCOME)) {
    throw new AuthenticationError(
      verdict.equals(FAILURE)
        ? 'digest sent was rejected (the peer has a different authkey)'
        : 'expected #WELCOME# or #FAILURE#',
    );
  }
}

/**
 * Mutual authentication as multiprocessing.connection runs it: the accepting side challenges
 * first, then answers; the connecting side answers first, then challenges.
 */
export async function authenticate(
  io: AuthMessageIO,
  authkey: Buffer,
  isServer: boolean,
  kind: ChallengeKind = 'sha256',
  sha256Only = false,
): Promise<void> {
  if (isServer) {
    await deliverChallenge(io, authkey, kind, sha256Only);
    await answerChallenge(io, authkey);
  } else {
    await answerChallenge(io, authkey);
    await deliverChallenge(io, authkey, kind, sha256Only);
  }
}

/** The channel `auth` option: a shared secret both ends must prove they hold. */
export interface AuthOptions {
  /** The shared secret; strings are UTF-8. Must not be empty. */
  key: Uint8Array | string;
}

/** How rawMessageIO() reads lengths. */
export interface RawMessageOptions {
  /** multiprocessing's escape for long messages: a length of -1 (`FF FF FF FF`) is followed by a u64 length. */
  u64Escape?: boolean;
  /** The error for a length above the limit. @default AuthenticationError */
  tooLong?: (length: number, limit: number) => Error;
}

const TWO_32 = 2 ** 32;

/**
 * Raw handshake bytes as whole auth messages: `[u32 BE length][message]`, the layout of
 * multiprocessing.connection's short messages, so `auth` over `pythonConnection()` puts exactly
 * the bytes of Python's `authkey` exchange on the wire. A length above `maxLength` is refused
 * before anything is read or allocated.
 */
export function rawMessageIO(
  io: { write(bytes: Uint8Array): void; read(n: number): Promise<Buffer> },
  options: RawMessageOptions = {},
): AuthMessageIO {
  return {
    send(message: Buffer): void {
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32BE(message.length);
      io.write(Buffer.concat([header, message]));
    },
    async recv(maxLength: number): Promise<Buffer> {
      let len = (await io.read(4)).readUInt32BE(0);
      if (len === 0xffffffff && options.u64Escape === true) {
        const big = await io.read(8);
        len = big.readUInt32BE(0) * TWO_32 + big.readUInt32BE(4);
      }
      if (len > maxLength) {
        throw (
          options.tooLong?.(len, maxLength) ??
          new AuthenticationError(
            `auth handshake message of ${len} bytes, above the ${maxLength}-byte limit (does the peer use auth?)`,
          )
        );
      }
      return io.read(len);
    },
  };
}

/** Validate the `auth` option; returns the key as a Buffer. */
export function authKey(auth: AuthOptions): Buffer {
  const key = (auth as Partial<AuthOptions> | null)?.key;
  if (typeof key === 'string' && key.length > 0) return Buffer.from(key, 'utf8');
  if (key instanceof Uint8Array && key.length > 0) return Buffer.from(key);
  throw new TypeError(
    `Expected \`auth.key\` to be a non-empty Uint8Array or string, got ${key === undefined ? 'undefined' : typeof key}`,
  );
}

/**
 * Mutual shared-secret authentication on the raw connection, for any framing: each side sends a
 * `{sha256}` + 40-random-byte challenge and checks the peer's HMAC-SHA256 of it (constant-time),
 * the accepting side first; only SHA-256 answers count. Throws AuthenticationError on a wrong key.
 */
export function authHandshake(
  key: Buffer,
  isServer: boolean,
  io: { write(bytes: Uint8Array): void; read(n: number): Promise<Buffer> },
): Promise<void> {
  return authenticate(rawMessageIO(io), key, isServer, 'sha256', true);
}
