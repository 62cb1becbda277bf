/**
 * The request/reply envelope, byte by byte: the golden vectors of docs/request-reply.md, every
 * malformed envelope the doc lists, and fast-check properties (round trip; random bytes decode or
 * throw a ProtocolError, nothing else).
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtocolError, decodeEnvelope, encodeEnvelope, type Envelope, type EnvelopeInput } from '../../channel.js';
import { MAX_ID, idLength, readId, utf8Prefix, writeId } from '../../src/rpc/envelope.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** The golden vectors, exactly as docs/request-reply.md lists them. */
const GOLDEN: [string, EnvelopeInput, string][] = [
  ['one-way "hi"', { kind: 'oneway', payload: 'hi' }, '00 68 69'],
  ['one-way, empty', { kind: 'oneway', payload: '' }, '00'],
  ['request id 1 "hello"', { kind: 'request', id: 1, payload: 'hello' }, '01 01 68 65 6c 6c 6f'],
  ['reply id 1 "HELLO"', { kind: 'reply', id: 1, payload: 'HELLO' }, '02 01 48 45 4c 4c 4f'],
  ['request id 127, empty', { kind: 'request', id: 127, payload: '' }, '01 7f'],
  ['request id 128, bytes 00 ff', { kind: 'request', id: 128, payload: Buffer.from([0, 255]) }, '01 80 01 00 ff'],
  ['reply id 300, empty', { kind: 'reply', id: 300, payload: '' }, '02 ac 02'],
  ['request id 2^53 - 1', { kind: 'request', id: MAX_ID, payload: '' }, '01 ff ff ff ff ff ff ff 0f'],
  [
    'error id 2, code EBOOM, "kaboom"',
    { kind: 'error', id: 2, code: 'EBOOM', message: 'kaboom' },
    '03 02 05 45 42 4f 4f 4d 6b 61 62 6f 6f 6d',
  ],
  ['error id 3, no code, "no"', { kind: 'error', id: 3, message: 'no' }, '03 03 00 6e 6f'],
  ['ping', { kind: 'ping' }, '04'],
  ['pong', { kind: 'pong' }, '05'],
];

/** Malformed envelopes and the error each must give, as the doc lists them. */
const HOSTILE: [string, string, RegExp][] = [
  ['empty body', '', /empty message/],
  ['unknown kind 06', '06', /unknown envelope kind 0x06/],
  ['unknown kind ff', 'ff 01 02', /unknown envelope kind 0xff/],
  ['request without id', '01', /id is missing/],
  ['id cut after a continuation byte', '01 80', /ends early/],
  ['id not in its shortest form', '01 80 00', /shortest form/],
  ['id of 8 bytes above 2^53 - 1', '01 ff ff ff ff ff ff ff 10', /above 2\^53 - 1/],
  ['id of 9 bytes', '02 80 80 80 80 80 80 80 80 01', /above 2\^53 - 1/],
  ['ping with a byte more', '04 00', /ping envelope of 2 bytes/],
  ['pong with a byte more', '05 05', /pong envelope of 2 bytes/],
  ['error without code length', '03 01', /code length is missing/],
  ['error code length 65', '03 01 41', /code of 65 bytes, above 64/],
  ['error code cut short', '03 01 05 41 42', /code ends early/],
  ['error message of 1025 bytes', `03 01 00 ${'61'.repeat(1025)}`, /message of 1025 bytes, above 1024/],
];

for (const [name, input, bytes] of GOLDEN) {
  test(`golden vector: ${name}`, () => {
    const wire = hex(bytes);
    assert.equal(encodeEnvelope(input).toString('hex'), wire.toString('hex'));
    const decoded = decodeEnvelope(wire);
    assert.is(decoded.kind, input.kind);
    if ('id' in input) assert.is((decoded as { id: number }).id, input.id);
    if ('payload' in input)
      assert.equal((decoded as { payload: Buffer }).payload, Buffer.from(input.payload as string | Uint8Array));
    if (input.kind === 'error') {
      const e = decoded as Extract<Envelope, { kind: 'error' }>;
      assert.is(e.code, input.code);
      assert.is(e.message, input.message);
    }
  });
}

for (const [name, bytes, message] of HOSTILE) {
  test(`malformed envelope: ${name} -> ProtocolError`, () => {
    try {
      decodeEnvelope(hex(bytes));
      assert.unreachable('expected a ProtocolError');
    } catch (error) {
      assert.instance(error, ProtocolError);
      assert.is((error as ProtocolError).code, 'ERR_PROTOCOL');
      assert.match((error as Error).message, message);
    }
  });
}

test('the golden vectors in docs/request-reply.md are the ones tested here', () => {
  const doc = readFileSync('docs/request-reply.md', 'utf8');
  for (const [name, , bytes] of GOLDEN)
    assert.ok(doc.includes(`| ${name} | \`${bytes}\``), `docs/request-reply.md lacks the row for ${name}: ${bytes}`);
  for (const [name, bytes] of HOSTILE) {
    const shown = bytes === '' ? '(0 bytes)' : `\`${bytes.length > 40 ? bytes.slice(0, 8) : bytes}`;
    assert.ok(doc.includes(`| ${name} | ${shown}`), `docs/request-reply.md lacks the malformed row for ${name}`);
  }
});

test('an error message is cut to 1024 bytes at a character boundary, a code over 64 bytes is left out', () => {
  const long = 'é'.repeat(600); // 1200 bytes of 2-byte characters
  const wire = encodeEnvelope({ kind: 'error', id: 9, code: 'X'.repeat(65), message: long });
  const e = decodeEnvelope(wire) as Extract<Envelope, { kind: 'error' }>;
  assert.is(e.code, undefined);
  assert.is(Buffer.byteLength(e.message), 1024);
  assert.is(e.message, 'é'.repeat(512));
  assert.is(utf8Prefix('aé', 2).toString(), 'a'); // never half a character
});

test('encodeEnvelope refuses ids outside 0..2^53 - 1 and unknown kinds', () => {
  for (const id of [-1, 1.5, MAX_ID + 1, Number.NaN]) {
    assert.throws(() => encodeEnvelope({ kind: 'request', id, payload: '' }), RangeError);
  }
  assert.throws(() => encodeEnvelope({ kind: 'nope' } as unknown as EnvelopeInput), TypeError);
});

test('property: every id round-trips through its shortest varint, whose length idLength() predicts', () => {
  fc.assert(
    fc.property(fc.oneof(fc.integer({ min: 0, max: 2 ** 31 }), fc.maxSafeNat()), (id) => {
      const buf = Buffer.alloc(9, 0xee);
      const end = writeId(buf, 0, id);
      assert.is(end, idLength(id));
      assert.is(readId(buf, 0), id);
      if (end > 1) assert.ok(buf[end - 1] !== 0, 'shortest form');
    }),
    { numRuns: 2000 },
  );
});

test('property: any envelope round-trips', () => {
  const id = fc.maxSafeNat();
  const payload = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.string({ maxLength: 32 }));
  const input: fc.Arbitrary<EnvelopeInput> = fc.oneof(
    fc.record({ kind: fc.constant('oneway' as const), payload }),
    fc.record({ kind: fc.constantFrom('request' as const, 'reply' as const), id, payload }),
    fc.record({
      kind: fc.constant('error' as const),
      id,
      code: fc.option(fc.string({ maxLength: 64 }), { nil: undefined }),
      message: fc.string({ maxLength: 100 }),
    }),
    fc.record({ kind: fc.constantFrom('ping' as const, 'pong' as const) }),
  );
  fc.assert(
    fc.property(input, (e) => {
      const wire = encodeEnvelope(e);
      const d = decodeEnvelope(wire);
      assert.is(d.kind, e.kind);
      if ('payload' in e)
        assert.equal((d as { payload: Buffer }).payload, Buffer.from(e.payload as string | Uint8Array));
      if ('id' in e) assert.is((d as { id: number }).id, e.id);
      if (e.kind === 'error') {
        const de = d as Extract<Envelope, { kind: 'error' }>;
        assert.is(de.code, e.code === '' || Buffer.byteLength(e.code ?? '') > 64 ? undefined : e.code);
        assert.is(de.message, e.message);
      }
      // Re-encoding the decoded envelope gives the same bytes: one encoding per envelope.
      assert.equal(encodeEnvelope(d as EnvelopeInput), wire);
    }),
    { numRuns: 2000 },
  );
});

test('property: random bytes decode to an envelope or throw a ProtocolError, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      try {
        const e = decodeEnvelope(Buffer.from(bytes));
        // Whatever decodes re-encodes to the same bytes: one encoding per envelope (error texts
        // excepted, where invalid UTF-8 decodes to U+FFFD).
        if (e.kind !== 'error') assert.equal(encodeEnvelope(e as EnvelopeInput), Buffer.from(bytes));
      } catch (error) {
        assert.instance(error, ProtocolError, String(error));
      }
    }),
    { numRuns: 5000 },
  );
});

test.run();
