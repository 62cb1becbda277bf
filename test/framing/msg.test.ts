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
  ['another byte where the space goes', '\r\nMSGX3\r\nabc', 5],
  ['a digit where the space goes', '\r\nMSG13\r\nabc', 5],
  ['two spaces', '\r\nMSG  3\r\nabc', 6],
  ['sign', '\r\nMSG +3\r\nabc', 6],
  ['negative', '\r\nMSG -3\r\nabc', 6],
  ['no digits', '\r\nMSG \r\nabc', 6],
  ['trailing space', '\r\nMSG 3 \r\nabc', 7],
  ['hex digits', '\r\nMSG 0x3\r\nabc', 7],
  ['LF without CR', '\r\nMSG 3\nabc', 7],
  ['CR without LF', '\r\nMSG 3\rXabc', 8],
];
/**
 * Decode `prefix` + `wire` whole, split at every point and at every pair of points, and one byte
 * at a time: each must deliver exactly the frames of `prefix`, then throw ProtocolError at the
 * bad byte (`offset` within `wire`).
 */
function assertRejectedAtEverySplit(wire: Buffer, offset: number, prefix: Buffer[] = []): void {
  const head = Buffer.concat(prefix.map(encode));
  const all = Buffer.concat([head, wire]);
  const splits: Buffer[][] = [[all], [...all].map((b) => Buffer.from([b]))];
  for (let i = 0; i <= all.length; i++) {
    for (let j = i; j <= all.length; j++) splits.push([all.subarray(0, i), all.subarray(i, j), all.subarray(j)]);
  }
  for (const chunks of splits) {
    const d = msg.createDecoder({ maxMessageSize: 1 << 20 });
    const got: Buffer[] = [];
    const where = `chunks of ${chunks.map((c) => c.length).join('+')}`;
    assert.throws(() => {
      for (const c of chunks) d.push(c, (b) => got.push(Buffer.from(b)));
    }, protocolError(head.length + offset), where);
    assert.equal(got, prefix, `${where}: nothing from the bad frame`);
  }
}

for (const [name, wire, offset] of malformed) {
  test(`rejects a malformed header: ${name}`, () => {
    assert.throws(() => decodeAll([Buffer.from(wire, 'latin1')]), protocolError(offset));
    // The same error whatever the chunking, and after a good frame in the same chunk.
    assertRejectedAtEverySplit(Buffer.from(wire, 'latin1'), offset);
    assertRejectedAtEverySplit(Buffer.from(wire, 'latin1'), offset, [Buffer.from('ok')]);
  });
}

test('strict header: any other byte at any place of CR LF M S G SP is refused, whole or split anywhere', () => {
  const good = Buffer.from('\r\nMSG 3\r\nabc', 'latin1');
  for (let at = 0; at < 6; at++) {
    for (const other of [0x00, 0x20, 0x30, 0x33, 0x58, 0x6d, 0x0a, 0x0d, 0xff]) {
      if (other === good[at]) continue;
      const wire = Buffer.from(good);
      wire[at] = other;
      assertRejectedAtEverySplit(wire, at);
      // Also where the header would otherwise be parsed in one go: a long body, more frames after.
      const long = Buffer.concat([wire.subarray(0, 6), Buffer.from('20\r\n'), Buffer.alloc(20, 1), encode(Buffer.from('next'))]);
      assertRejectedAtEverySplit(long, at, [Buffer.from('first')]);
    }
  }
});

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
