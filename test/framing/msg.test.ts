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
  return (e: unknown) =>
    e instanceof ProtocolError && e.code === 'ERR_PROTOCOL' && (offset === undefined || e.offset === offset);
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
      assert.equal(
        got.map((b) => b.toString()),
        ['Hello World', '', 'x'],
        `split at ${i},${j}`,
      );
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
  ['another byte, then LF, after the length', '\r\nMSG 3X\nabc', 7],
  ['a header cut short, then a whole one', '\r\n\r\nMSG 3\r\nabc', 2],
  ['17 digits, the last one a CR LF away', '\r\nMSG 00000000000000003\r\nabc', 22],
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
    assert.throws(
      () => {
        for (const c of chunks) d.push(c, (b) => got.push(Buffer.from(b)));
      },
      protocolError(head.length + offset),
      where,
    );
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
      const long = Buffer.concat([
        wire.subarray(0, 6),
        Buffer.from('20\r\n'),
        Buffer.alloc(20, 1),
        encode(Buffer.from('next')),
      ]);
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
  assert.throws(
    () => decodeAll([Buffer.from('\r\nMSG 00000000000000000')], Number.MAX_SAFE_INTEGER),
    protocolError(22),
  );
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
    (e: unknown) =>
      e instanceof MessageTooLargeError && e.code === 'ERR_MESSAGE_TOO_LARGE' && e.size === 1025 && e.limit === 1024,
  );
  assert.throws(
    () => decodeAll([Buffer.from('\r\nMSG 1000000000000000000\r\n')], 1024),
    (e: unknown) => e instanceof MessageTooLargeError,
  );
  // Exactly at the limit is fine.
  assert.equal(decodeAll([encode(Buffer.alloc(1024, 1))], 1024), [Buffer.alloc(1024, 1)]);
});

test('a limit of zero accepts only empty messages', () => {
  assert.equal(decodeAll([encode(Buffer.alloc(0))], 0), [Buffer.alloc(0)]);
  assert.throws(
    () => decodeAll([encode(Buffer.alloc(1))], 0),
    (e: unknown) => e instanceof MessageTooLargeError,
  );
});

test('error messages name the byte expected and the byte found, printable ones quoted (as the README shows)', () => {
  const message = (wire: string): string => {
    try {
      decodeAll([Buffer.from(wire, 'latin1')], Number.MAX_SAFE_INTEGER);
    } catch (error) {
      return (error as Error).message;
    }
    return 'no error';
  };
  assert.is(message('\r\nMSX 3\r\nabc'), "bad frame header: expected 'G' (0x47) at header byte 4, got 'X' (0x58)");
  assert.is(message('\x00'), 'bad frame header: expected 0x0d at header byte 0, got 0x00');
  assert.is(message('\r\nMSG \x1f'), 'bad frame header: expected a decimal length, got 0x1f');
  assert.is(message('\r\nMSG  '), "bad frame header: expected a decimal length, got ' ' (0x20)");
  assert.is(message('\r\nMSG 3~'), "bad frame header: expected a digit or CR after the length, got '~' (0x7e)");
  assert.is(message('\r\nMSG 3\x7f'), 'bad frame header: expected a digit or CR after the length, got 0x7f');
  assert.is(message('\r\nMSG 3\r\xff'), 'bad frame header: expected LF after the length, got 0xff');
  assert.is(message('\r\nMSG 00000000000000000'), 'bad frame header: length has more than 16 digits');
  assert.is(msg.name, 'msg');
  assert.is(msg.hasType, false);
});

test('a header is checked byte for byte even where the bytes before it look like a header', () => {
  // The body before ends in ' GS\r\n': header bytes 5, 4, 3 and 1 counted back from the next
  // header; or in ' GSM\n': header bytes 5, 4, 3, 2 and 1.
  for (const before of ['body GS\r\n', 'body GSM\n']) {
    const first = encode(Buffer.from(before, 'latin1'));
    for (let at = 0; at < 6; at++) {
      const wire = Buffer.from('\r\nMSG 20\r\n' + 'x'.repeat(20), 'latin1');
      wire[at] = 0x21;
      assert.throws(
        () => decodeAll([Buffer.concat([first, wire])]),
        protocolError(first.length + at),
        `${JSON.stringify(before)}, byte ${at}`,
      );
    }
  }
});

test('a length of 1 to 16 digits with leading zeros, then a body that starts with CR LF, whole or split anywhere', () => {
  // The body's CR LF lies where a longer length's CR LF would: only the header's own ends it.
  for (let digits = 1; digits <= 16; digits++) {
    const wire = Buffer.from(`\r\nMSG ${'5'.padStart(digits, '0')}\r\n\r\nabc\r\nMSG 1\r\nz`, 'latin1');
    const want = [Buffer.from('\r\nabc', 'latin1'), Buffer.from('z')];
    assert.equal(decodeAll([wire]), want, `${digits} digits, one chunk`);
    assert.equal(decodeAll([...wire].map((b) => Buffer.from([b]))), want, `${digits} digits, one byte at a time`);
    for (let i = 0; i <= wire.length; i++) {
      assert.equal(decodeAll([wire.subarray(0, i), wire.subarray(i)]), want, `${digits} digits, split at ${i}`);
    }
  }
});

test('any mix of frames and header-like bytes decodes the same in one chunk and one byte at a time', () => {
  // Bodies and garbage from the header's own alphabet, so that the in-chunk header parsing meets
  // every near miss; compared with the byte-wise state machine: same frames, same error.
  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const alphabet = ['\r', '\n', 'M', 'S', 'G', ' ', '0', '1', '9', 'x', '\r\nMSG ', '\r\n'];
  const text = (len: number): string => Array.from({ length: len }, () => alphabet[random(alphabet.length)]).join('');
  const outcome = (chunks: Buffer[], max: number): string => {
    const d = msg.createDecoder({ maxMessageSize: max });
    const out: string[] = [];
    try {
      for (const c of chunks) d.push(c, (b) => out.push(b.toString('latin1')));
    } catch (error) {
      out.push(`${(error as Error).name} at ${(error as ProtocolError).offset}: ${(error as Error).message}`);
    }
    return JSON.stringify(out);
  };
  for (let run = 0; run < 300; run++) {
    const parts: Buffer[] = [];
    for (let k = random(4) + 1; k > 0; k--) {
      const body = Buffer.from(text(random(24)), 'latin1');
      parts.push(random(5) === 0 ? Buffer.from(text(random(12) + 1), 'latin1') : encode(body));
    }
    const wire = Buffer.concat(parts);
    for (const max of [12, Number.MAX_SAFE_INTEGER]) {
      const whole = outcome([wire], max);
      assert.is(
        outcome(
          [...wire].map((b) => Buffer.from([b])),
          max,
        ),
        whole,
        JSON.stringify(wire.toString('latin1')),
      );
    }
  }
});

test.run();
