/**
 * The HMAC challenge/response on its own (src/auth.ts), between two in-memory message queues: what
 * each step sends, which answers it accepts, how it fails (AuthenticationError, ERR_AUTH, the peer
 * told #FAILURE#), the `[u32 BE length][message]` layer and the `auth.key` check. The same
 * handshake over real connections and every framing is in hardening/auth.test.ts, CPython's exact
 * answers in framing/pythonConnection.test.ts.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuthenticationError } from '../channel.js';
import {
  AUTH_MESSAGE_LIMIT,
  answerChallenge,
  authenticate,
  authKey,
  type AuthMessageIO,
  createResponse,
  deliverChallenge,
  rawMessageIO,
  verifyResponse,
} from '../src/auth.js';

/** One end of an in-memory message pipe: what it sent, and the limit of each of its reads. */
interface End extends AuthMessageIO {
  readonly sent: string[];
  readonly limits: number[];
}

/**
 * Two connected ends. `run` plays each side; when a side's function settles, its end closes, and a
 * read that can never be answered rejects instead of waiting for ever.
 */
function pipe(): {
  a: End;
  b: End;
  run<T, U>(
    fa: (io: End) => Promise<T>,
    fb: (io: End) => Promise<U>,
  ): Promise<[PromiseSettledResult<T>, PromiseSettledResult<U>]>;
} {
  const inbox = [[] as Buffer[], [] as Buffer[]];
  const wake: ((() => void) | undefined)[] = [undefined, undefined];
  const closed = [false, false];
  const notify = (side: number): void => {
    const w = wake[side];
    wake[side] = undefined;
    w?.();
  };
  const end = (me: number): End => {
    const other = 1 - me;
    const sent: string[] = [];
    const limits: number[] = [];
    return {
      sent,
      limits,
      send(message) {
        sent.push(Buffer.from(message).toString('latin1'));
        inbox[other]!.push(Buffer.from(message));
        notify(other);
      },
      async recv(maxLength) {
        limits.push(maxLength);
        while (inbox[me]!.length === 0) {
          if (closed[0] || closed[1]) throw new Error('the other side has ended');
          await new Promise<void>((r) => (wake[me] = r));
        }
        const m = inbox[me]!.shift()!;
        if (m.length > maxLength) throw new Error(`a ${m.length}-byte message, above the ${maxLength}-byte limit`);
        return m;
      },
    };
  };
  const a = end(0);
  const b = end(1);
  const close = (side: number): void => {
    closed[side] = true;
    notify(0);
    notify(1);
  };
  return {
    a,
    b,
    run: (fa, fb) => Promise.allSettled([fa(a).finally(() => close(0)), fb(b).finally(() => close(1))]),
  };
}

const key = Buffer.from('the shared secret');
const CHALLENGE = '#CHALLENGE#';
const mac = (digest: string, k: Buffer, message: Buffer | string): Buffer =>
  createHmac(digest, k).update(message).digest();
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const isAuthError = (e: unknown): boolean => e instanceof AuthenticationError;

/** Assert a settled result is a rejection with AuthenticationError (ERR_AUTH) whose message matches `pattern`. */
function refused(result: PromiseSettledResult<unknown>, pattern: RegExp): void {
  assert.is(result.status, 'rejected', 'expected the handshake step to fail');
  const e = (result as PromiseRejectedResult).reason as AuthenticationError;
  assert.instance(e, AuthenticationError, String(e));
  assert.is(e.code, 'ERR_AUTH');
  assert.match(e.message, pattern);
}

test('mutual authentication with one key: the accepting side challenges first, in both challenge kinds', async () => {
  for (const kind of ['sha256', 'legacy'] as const) {
    const { a: server, b: client, run } = pipe();
    const [s, c] = await run(
      (io) => authenticate(io, key, true, kind),
      (io) => authenticate(io, key, false, kind),
    );
    assert.equal([s.status, c.status], ['fulfilled', 'fulfilled'], kind);
    // The server: its challenge, its verdict, then its answer to the client's challenge.
    const challengeLength = kind === 'sha256' ? CHALLENGE.length + '{sha256}'.length + 40 : CHALLENGE.length + 20;
    assert.is(server.sent.length, 3, kind);
    assert.is(server.sent[0]!.length, challengeLength, kind);
    assert.ok(server.sent[0]!.startsWith(kind === 'sha256' ? `${CHALLENGE}{sha256}` : CHALLENGE), kind);
    assert.is(server.sent[1], '#WELCOME#');
    // The client: its answer, its challenge, its verdict.
    assert.is(client.sent.length, 3, kind);
    const answer = latin1(client.sent[0]!);
    const message = latin1(server.sent[0]!.slice(CHALLENGE.length));
    if (kind === 'sha256') assert.equal(answer, Buffer.concat([latin1('{sha256}'), mac('sha256', key, message)]));
    else assert.equal(answer, mac('md5', key, message));
    assert.is(client.sent[1]!.length, challengeLength, kind);
    assert.is(client.sent[2], '#WELCOME#');
    assert.is(server.sent[2], createResponse(key, latin1(client.sent[1]!.slice(CHALLENGE.length))).toString('latin1'));
    // Every handshake message is read with CPython's limit.
    assert.is(AUTH_MESSAGE_LIMIT, 256);
    assert.equal([...new Set([...server.limits, ...client.limits])], [256]);
    // Each challenge is fresh.
    assert.is.not(server.sent[0], client.sent[1]);
  }
});

test('different keys: each side refuses the other with ERR_AUTH and says #FAILURE#', async () => {
  const { a: server, run } = pipe();
  const [s, c] = await run(
    (io) => authenticate(io, key, true),
    (io) => authenticate(io, Buffer.from('another key'), false),
  );
  refused(s, /different authkey/);
  refused(c, /different authkey/);
  assert.is(server.sent[1], '#FAILURE#');
});

test('every digest CPython 3.12 allows is answered and checked: md5, sha256, sha384, sha3_256, sha3_384', () => {
  const names = { md5: 'md5', sha256: 'sha256', sha384: 'sha384', sha3_256: 'sha3-256', sha3_384: 'sha3-384' };
  for (const [python, node] of Object.entries(names)) {
    const message = Buffer.concat([latin1(`{${python}}`), randomBytes(40)]);
    const answer = createResponse(key, message);
    assert.equal(answer, Buffer.concat([latin1(`{${python}}`), mac(node, key, message)]), python);
    verifyResponse(key, message, answer);
    assert.throws(() => verifyResponse(Buffer.from('another key'), message, answer), isAuthError, python);
  }
  // A legacy challenge (20 bytes, no prefix) is answered with the raw HMAC-MD5.
  const legacy = randomBytes(20);
  assert.equal(createResponse(key, legacy), mac('md5', key, legacy));
});

test('a challenge without a well-formed, known digest prefix is refused', () => {
  const malformed = [
    Buffer.concat([latin1('Xsha256}'), randomBytes(40)]), // no opening brace
    latin1('{md5x'), // no closing brace
    Buffer.concat([latin1('{sha1}'), randomBytes(40)]), // not a digest CPython allows
    Buffer.concat([latin1('{toString}'), randomBytes(40)]), // nor a property of every object
    Buffer.concat([latin1('{}'), randomBytes(40)]),
    randomBytes(30).fill(0x41), // neither a legacy length nor a prefix
  ];
  for (const message of malformed) {
    const what = message.toString('latin1');
    try {
      createResponse(key, message);
      assert.unreachable(what);
    } catch (error) {
      assert.instance(error, AuthenticationError, what);
      assert.match((error as Error).message, /unsupported/, what);
    }
    assert.throws(() => verifyResponse(key, randomBytes(20), message), isAuthError, what);
  }
});

/** The challenger against a hand-played peer that answers with `answer(message)`; returns the outcome and what the challenger sent. */
async function challengeAnsweredWith(
  answer: (message: Buffer) => Buffer,
  deliver: (io: End) => Promise<void> = (io) => deliverChallenge(io, key),
): Promise<{ outcome: PromiseSettledResult<void>; sent: string[] }> {
  const { a, run } = pipe();
  const [outcome] = await run(deliver, async (io) => {
    const challenge = await io.recv(256);
    io.send(answer(challenge.subarray(CHALLENGE.length)));
    await io.recv(256); // the verdict
  });
  return { outcome, sent: a.sent };
}

test('the challenger accepts a raw HMAC-MD5 answer by default (Python 3.11), and refuses it when only SHA-256 counts', async () => {
  const md5 = (message: Buffer): Buffer => mac('md5', key, message);
  for (const kind of ['sha256', 'legacy'] as const) {
    const byDefault = await challengeAnsweredWith(md5, (io) => deliverChallenge(io, key, kind));
    assert.is(byDefault.outcome.status, 'fulfilled', kind);
    assert.is(byDefault.sent[1], '#WELCOME#');
  }
  const strict = await challengeAnsweredWith(md5, (io) => deliverChallenge(io, key, 'sha256', true));
  refused(strict.outcome, /SHA-?256/);
  assert.is(strict.sent[1], '#FAILURE#');
  // The right {sha256} answer passes the strict check.
  const right = await challengeAnsweredWith(
    (m) => createResponse(key, m),
    (io) => deliverChallenge(io, key, 'sha256', true),
  );
  assert.is(right.outcome.status, 'fulfilled');
});

test('a wrong answer is ERR_AUTH, and the peer is told #FAILURE#', async () => {
  const wrong: [string, (message: Buffer) => Buffer][] = [
    ['another key', (m) => createResponse(Buffer.from('another key'), m)],
    ['a short digest', (m) => createResponse(key, m).subarray(0, 39)],
    ['a long digest', (m) => Buffer.concat([createResponse(key, m), Buffer.from([0])])],
    ['an MD5 answer of another key', (m) => mac('md5', Buffer.from('another key'), m)],
    ['no answer at all', () => Buffer.alloc(0)],
  ];
  for (const [what, answer] of wrong) {
    const { outcome, sent } = await challengeAnsweredWith(answer);
    assert.is(outcome.status, 'rejected', what);
    const e = (outcome as PromiseRejectedResult).reason as AuthenticationError;
    assert.instance(e, AuthenticationError, `${what}: ${String(e)}`);
    assert.is(e.code, 'ERR_AUTH', what);
    assert.equal(sent.slice(1), ['#FAILURE#'], what);
  }
});

/** The answering side against a hand-played challenger that sends `challenge`, then `verdict`. */
async function answerTo(
  challenge: Buffer,
  verdict = '#WELCOME#',
): Promise<{ outcome: PromiseSettledResult<void>; sent: string[] }> {
  const { a, run } = pipe();
  const [outcome] = await run(
    (io) => answerChallenge(io, key),
    async (io) => {
      io.send(challenge);
      await io.recv(256);
      io.send(Buffer.from(verdict));
    },
  );
  return { outcome, sent: a.sent };
}

test('the answering side: a message that is not a challenge, or too short to be one, gets no answer', async () => {
  const valid = Buffer.concat([latin1('{sha256}'), randomBytes(40)]);
  const notAChallenge = await answerTo(Buffer.concat([latin1('#CHALLENGX#'), valid]));
  refused(notAChallenge.outcome, /#CHALLENGE#/);
  assert.equal(notAChallenge.sent, []);
  const tooShort = await answerTo(Buffer.concat([latin1(CHALLENGE), latin1('{md5}abc')]));
  refused(tooShort.outcome, /too short/);
  assert.equal(tooShort.sent, []);
  const ok = await answerTo(Buffer.concat([latin1(CHALLENGE), valid]));
  assert.is(ok.outcome.status, 'fulfilled');
  assert.equal(ok.sent, [createResponse(key, valid).toString('latin1')]);
});

test('the answering side: #FAILURE# means our key was refused; any other verdict is an error too', async () => {
  const challenge = Buffer.concat([latin1(`${CHALLENGE}{sha256}`), randomBytes(40)]);
  refused((await answerTo(challenge, '#FAILURE#')).outcome, /different authkey/);
  refused((await answerTo(challenge, '#WELCOME')).outcome, /#WELCOME#/);
});

/** rawMessageIO over bytes: `wire` is what the peer sent; returns the io and the sizes of its reads. */
function rawOver(
  wire: Buffer,
  options?: Parameters<typeof rawMessageIO>[1],
): { io: AuthMessageIO; reads: number[]; written: Buffer[] } {
  let at = 0;
  const reads: number[] = [];
  const written: Buffer[] = [];
  const io = rawMessageIO(
    {
      write: (bytes) => void written.push(Buffer.from(bytes)),
      read: async (n) => {
        reads.push(n);
        if (at + n > wire.length) throw new Error(`read(${n}) past the end of the wire`);
        at += n;
        return wire.subarray(at - n, at);
      },
    },
    options,
  );
  return { io, reads, written };
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

test('raw messages are [u32 BE length][message]; a length above the limit is refused before the body is read', async () => {
  const { io, written } = rawOver(Buffer.alloc(0));
  io.send(latin1('#WELCOME#'));
  assert.equal(written, [Buffer.concat([u32(9), latin1('#WELCOME#')])]);
  // Exactly the limit is read; one byte more is refused from the header.
  const full = Buffer.alloc(256, 7);
  assert.equal(await rawOver(Buffer.concat([u32(256), full])).io.recv(256), full);
  const over = rawOver(Buffer.concat([u32(257), full, Buffer.from([7])]));
  const e = await over.io.recv(256).then(
    () => undefined,
    (error: unknown) => error as AuthenticationError,
  );
  assert.instance(e, AuthenticationError);
  assert.match(e!.message, /257 bytes.*256-byte limit/);
  assert.equal(over.reads, [4]);
});

test("raw messages with multiprocessing's u64 escape: FF FF FF FF, then a u64 BE length", async () => {
  const tooLong = (len: number, limit: number): Error => new RangeError(`${len} > ${limit}`);
  const escaped = (hi: number, lo: number, body: Buffer): Buffer =>
    Buffer.concat([u32(0xffffffff), u32(hi), u32(lo), body]);
  assert.equal(await rawOver(escaped(0, 5, latin1('hello')), { u64Escape: true }).io.recv(256), latin1('hello'));
  // The u64 length is the whole 64 bits, checked against the limit before the body is read.
  const big = rawOver(escaped(1, 5, Buffer.alloc(0)), { u64Escape: true, tooLong });
  const e = await big.io.recv(256).then(
    () => undefined,
    (error: unknown) => error as Error,
  );
  assert.instance(e, RangeError);
  assert.is(e!.message, `${2 ** 32 + 5} > 256`);
  assert.equal(big.reads, [4, 8]);
  // Without the escape, FF FF FF FF is a length like any other: far above the limit.
  const plain = rawOver(escaped(0, 5, latin1('hello')), { tooLong });
  const e2 = await plain.io.recv(256).then(
    () => undefined,
    (error: unknown) => error as Error,
  );
  assert.is(e2?.message, `${0xffffffff} > 256`);
  assert.equal(plain.reads, [4]);
});

test('authKey: a non-empty string (UTF-8) or Uint8Array (copied); anything else is a TypeError naming auth.key', () => {
  assert.equal(authKey({ key: 'clé' }), Buffer.from('clé', 'utf8'));
  const bytes = new Uint8Array([1, 2, 3]);
  const k = authKey({ key: bytes });
  assert.equal(k, Buffer.from([1, 2, 3]));
  bytes[0] = 9;
  assert.is(k[0], 1, 'the key is a copy');
  const bad: [unknown, string][] = [
    [{ key: '' }, 'string'],
    [{ key: new Uint8Array(0) }, 'object'],
    [{ key: [1, 2] }, 'object'],
    [{ key: 5 }, 'number'],
    [{}, 'undefined'],
    [null, 'undefined'],
  ];
  for (const [auth, type] of bad) {
    try {
      authKey(auth as never);
      assert.unreachable(JSON.stringify(auth));
    } catch (error) {
      assert.instance(error, TypeError, JSON.stringify(auth));
      assert.match((error as Error).message, /`auth\.key`/, JSON.stringify(auth));
      assert.match((error as Error).message, new RegExp(`got ${type}$`), JSON.stringify(auth));
    }
  }
});

test.run();
