import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageTooLargeError, ProtocolError, msg } from '../../channel.js';

function encode(body: Buffer): Buffer {
  const header = Buffer.alloc(msg.maxHeaderLength);
  const end = msg.writeHeader(header, 0, body.length, 0);
  return Buffer.concat([header.subarray(0, end), body]);
}

function decodeAll(chunks: Buffer[], max = 1 << 20): Buffer[] {
  const d = msg.createDecoder({ maxMessageSize: max });
  const out: Buffer[] = [];
  for (const c of chunks) d.push(c, (b) => out.push(Buffer.from(b)));
  return out;
}

function protocolError(offset?: number) {
  return (e: unknown) => e instanceof ProtocolError && e.code === 'ERR_PROTOCOL' && (offset === undefined || e.offset === offset);
}

test('encodes the gist golden vectors', () => {
  assert.equal(encode(Buffer.from('Hello World')).toString('latin1'), '\r\nMSG 11\r\nHello World');
  assert.equal(encode(Buffer.alloc(0)).toString('latin1'), '\r\nMSG 0\r\n');
  assert.equal(encode(Buffer.alloc(1234567)).subarray(0, 15).toString('latin1'), '\r\nMSG 1234567\r\n');
});

test('writes every length exactly as decimal without leading zeros', () => {
  for (const n of [0, 1, 9, 10, 99, 100, 65535, 1e6, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    const h = Buffer.alloc(msg.maxHeaderLength);
    const end = msg.writeHeader(h, 0, n, 0);
    assert.equal(h.subarray(0, end).toString('latin1'), `\r\nMSG ${n}\r\n`);
  }
});

test('decodes frames split at every pair of points', () => {
  const wire = Buffer.concat([encode(Buffer.from('Hello World')), encode(Buffer.alloc(0)), encode(Buffer.from('x'))]);
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const got = decodeAll([wire.subarray(0, i), wire.subarray(i, j), wire.subarray(j)]);
      assert.equal(got.map((b) => b.toString()), ['Hello World', '', 'x'], `split at ${i},${j}`);
    }
  }
});

test('decodes one byte at a time and many frames in one chunk alike', () => {
  const bodies = Array.from({ length: 50 }, (_, i) => Buffer.alloc(i * 7, i));
  const wire = Buffer.concat(bodies.map(encode));
  const oneByOne = decodeAll([...wire].map((b) => Buffer.from([b])));
  const whole = decodeAll([wire]);
  assert.equal(oneByOne, bodies);
  assert.equal(whole, bodies);
});

test('hands out a view of the chunk when the frame lies within it', () => {
  const wire = encode(Buffer.from('abc'));
  const d = msg.createDecoder({ maxMessageSize: 100 });
  let body: Buffer | undefined;
  d.push(wire, (b) => (body = b));
  assert.is(body!.buffer, wire.buffer);
});

test('allocates once at the announced length when a body spans chunks', () => {
  const d = msg.createDecoder({ maxMessageSize: 100 });
  const out: Buffer[] = [];
  d.push(Buffer.from('\r\nMSG 6\r\nab'), (b) => out.push(b));
  d.push(Buffer.from('cd'), (b) => out.push(b));
  assert.is(d.atBoundary, false);
  d.push(Buffer.from('ef'), (b) => out.push(b));
  assert.is(out.length, 1);
  assert.is(out[0]!.toString(), 'abcdef');
  assert.is(out[0]!.length, 6);
  assert.is(d.atBoundary, true);
});

const malformed: [string, string, number][] = [
  ['missing leading CRLF', 'MSG 3\r\nabc', 0],
  ['bare LF', '\nMSG 3\r\nabc', 0],
  ['lowercase word', '\r\nmsg 3\r\nabc', 2],
  ['other word', '\r\nMSX 3\r\nabc', 4],
  ['no space', '\r\nMSG3\r\nabc', 5],
  ['two spaces', '\r\nMSG  3\r\nabc', 6],
  ['sign', '\r\nMSG +3\r\nabc', 6],
  ['negative', '\r\nMSG -3\r\nabc', 6],
  ['no digits', '\r\nMSG \r\nabc', 6],
  ['trailing space', '\r\nMSG 3 \r\nabc', 7],
  ['hex digits', '\r\nMSG 0x3\r\nabc', 7],
  ['LF without CR', '\r\nMSG 3\nabc', 7],
  ['CR without LF', '\r\nMSG 3\rXabc', 8],
];
for (const [name, wire, offset] of malformed) {
  test(`rejects a malformed header: ${name}`, () => {
    assert.throws(() => decodeAll([Buffer.from(wire, 'latin1')]), protocolError(offset));
    // The same error whatever the chunking.
    assert.throws(() => decodeAll([...Buffer.from(wire, 'latin1')].map((b) => Buffer.from([b]))), protocolError(offset));
  });
}

test('reports the stream offset of a bad byte after earlier frames', () => {
  const good = encode(Buffer.from('hello'));
  assert.throws(() => decodeAll([good, Buffer.from('\r\nMSG x')]), protocolError(good.length + 6));
});

test('rejects more digits than a length can have, without buffering the header', () => {
  // 17 zeros: the value is small but no length needs that many digits.
  assert.throws(() => decodeAll([Buffer.from('\r\nMSG 00000000000000000')], Number.MAX_SAFE_INTEGER), protocolError(22));
  // A header that never ends is cut off at the 17th digit, however it is chunked.
  const d = msg.createDecoder({ maxMessageSize: Number.MAX_SAFE_INTEGER });
  d.push(Buffer.from('\r\nMSG '), () => {});
  assert.throws(() => {
    for (let i = 0; i < 1000; i++) d.push(Buffer.from('0'), () => {});
  }, protocolError());
});

test('rejects a too-large length from the header, before the body arrives', () => {
  assert.throws(
    () => decodeAll([Buffer.from('\r\nMSG 1025')], 1024),
    (e: unknown) => e instanceof MessageTooLargeError && e.code === 'ERR_MESSAGE_TOO_LARGE' && e.size === 1025 && e.limit === 1024,
  );
  assert.throws(() => decodeAll([Buffer.from('\r\nMSG 1000000000000000000\r\n')], 1024), (e: unknown) => e instanceof MessageTooLargeError);
  // Exactly at the limit is fine.
  assert.equal(decodeAll([encode(Buffer.alloc(1024, 1))], 1024), [Buffer.alloc(1024, 1)]);
});

test('a limit of zero accepts only empty messages', () => {
  assert.equal(decodeAll([encode(Buffer.alloc(0))], 0), [Buffer.alloc(0)]);
  assert.throws(() => decodeAll([encode(Buffer.alloc(1))], 0), (e: unknown) => e instanceof MessageTooLargeError);
});

test.run();
