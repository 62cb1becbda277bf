import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  int32,
  lengthPrefixed,
  ltprotocol,
  MessageTooLargeError,
  openflow,
  openflowType,
  ProtocolError,
} from '../../channel.js';
import { assertEverySplit, decodeAll, encode, hex, throwsCode } from './codec.js';

const numMsg = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

test('ltprotocol: golden vectors of its test program', () => {
  const lt = ltprotocol();
  assert.equal(encode(lt, numMsg(200), 1), hex('00 07 01 00 00 00 C8'));
  assert.equal(encode(lt, 'hello world!', 2), hex('00 0F 02 68 65 6C 6C 6F 20 77 6F 72 6C 64 21'));
  assert.equal(encode(lt, numMsg(7), 1), hex('00 07 01 00 00 00 07'));
  assert.equal(encode(lt, Buffer.alloc(0), 9), hex('00 03 09'));
});

test('ltprotocol: decodes its demo stream split at every point', () => {
  const wire = hex(
    '00 07 01 00 00 00 C8  00 0F 02 68 65 6C 6C 6F 20 77 6F 72 6C 64 21  00 07 01 00 00 00 07  00 03 05',
  );
  assertEverySplit(ltprotocol(), wire, [
    { type: 1, data: numMsg(200) },
    { type: 2, data: Buffer.from('hello world!') },
    { type: 1, data: numMsg(7) },
    { type: 5, data: Buffer.alloc(0) },
  ]);
});

test('ltprotocol: other struct codes', () => {
  assert.equal(encode(ltprotocol('I', 'H'), 'ab', 0x102), hex('00 00 00 08 01 02 61 62'));
  assert.equal(encode(ltprotocol('Q', 'B'), 'a', 7), hex('00 00 00 00 00 00 00 0A 07 61'));
  assert.equal(encode(ltprotocol('B', 'Q'), '', 3), hex('09 00 00 00 00 00 00 00 03'));
  const bb = ltprotocol('B', 'B');
  assert.is(bb.maxEncodableSize, 253);
  assert.is(bb.maxType, 255);
  assert.ok(bb.hasType);
  assert.is(ltprotocol().maxEncodableSize, 65535 - 3);
  assert.is(ltprotocol('I', 'I').maxType, 0xffffffff);
  assert.is(ltprotocol('Q', 'Q').maxType, Number.MAX_SAFE_INTEGER);
  assert.throws(
    () => ltprotocol('h' as 'H'),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => ltprotocol('H', 'x' as 'B'),
    (e: unknown) => e instanceof RangeError,
  );
});

test('ltprotocol: a length below the header size is a ProtocolError', () => {
  for (const wire of ['00 00 01', '00 02 01', '00 01']) {
    const bytes = hex(wire);
    if (bytes.length < 3) continue; // an incomplete header is not an error yet
    throwsCode(() => decodeAll(ltprotocol(), [bytes]), 'ERR_PROTOCOL', wire);
  }
  try {
    decodeAll(ltprotocol(), [hex('00 07 01 00 00 00 C8 00 02 01')]);
    assert.unreachable('accepted a length of 2');
  } catch (error) {
    assert.instance(error, ProtocolError);
    assert.is((error as ProtocolError).offset, 7, 'offset of the bad length field');
  }
});

test('int32: [u32 BE len][body]', () => {
  assert.equal(encode(int32, 'Hello World'), hex('00 00 00 0B 48 65 6C 6C 6F 20 57 6F 72 6C 64'));
  assert.equal(encode(int32, ''), hex('00 00 00 00'));
  assert.is(int32.hasType, false);
  assert.is(int32.maxType, 0);
  assert.is(int32.maxEncodableSize, 0xffffffff);
  assertEverySplit(int32, hex('00 00 00 02 68 69 00 00 00 00 00 00 00 01 21'), [
    { type: 0, data: Buffer.from('hi') },
    { type: 0, data: Buffer.alloc(0) },
    { type: 0, data: Buffer.from('!') },
  ]);
});

test('packetmq layout: lengthPrefixed({ lengthSize: 4, typeSize: 2, lengthAdjustment: 2 })', () => {
  const pmq = lengthPrefixed({ lengthSize: 4, typeSize: 2, lengthAdjustment: 2 });
  const init = hex('00 00 00 0D 00 00 81 C4 07 76 65 72 73 69 6F 6E 01');
  const finish = hex('00 00 00 03 00 03 C0');
  assert.equal(encode(pmq, init.subarray(6), 0), init);
  assert.equal(encode(pmq, hex('C0'), 3), finish);
  assert.is(pmq.maxType, 65535);
  assert.is(pmq.maxEncodableSize, 0xffffffff - 2);
  assertEverySplit(pmq, Buffer.concat([init, finish]), [
    { type: 0, data: init.subarray(6) },
    { type: 3, data: hex('C0') },
  ]);
  throwsCode(() => decodeAll(pmq, [hex('00 00 00 01 00 00')]), 'ERR_PROTOCOL', 'length below the type field');
});

test('openflow: type is version<<8|ofType, body is xid + payload', () => {
  const hello = hex('04 00 00 08 00 00 00 2A'); // OFPT_HELLO, OpenFlow 1.3, xid 42
  const echo = hex('01 02 00 0B 00 00 00 07 61 62 63'); // OFPT_ECHO_REQUEST v1.0, xid 7, "abc"
  assert.equal(encode(openflow, hex('00 00 00 2A'), openflowType(4, 0)), hello);
  assert.equal(encode(openflow, hex('00 00 00 07 61 62 63'), openflowType(1, 2)), echo);
  assert.is(openflow.headerSize, 4);
  assert.is(openflow.maxType, 0xffff);
  assert.is(openflow.maxEncodableSize, 0xffff - 4);
  assertEverySplit(openflow, Buffer.concat([hello, echo]), [
    { type: 0x0400, data: hex('00 00 00 2A') },
    { type: 0x0102, data: hex('00 00 00 07 61 62 63') },
  ]);
  throwsCode(() => decodeAll(openflow, [hex('04 00 00 03')]), 'ERR_PROTOCOL', 'length below the header');
  assert.throws(
    () => openflowType(256, 0),
    (e: unknown) => e instanceof RangeError,
  );
});

test('little-endian fields and a length offset', () => {
  const le = lengthPrefixed({ lengthSize: 2, littleEndian: true, typeSize: 4 });
  assert.equal(encode(le, 'abc', 0x01020304), hex('03 00 04 03 02 01 61 62 63'));
  assertEverySplit(le, hex('03 00 04 03 02 01 61 62 63'), [{ type: 0x01020304, data: Buffer.from('abc') }]);
  // One unused byte before the length: written as zero, ignored when reading.
  const off = lengthPrefixed({ lengthOffset: 1, lengthSize: 1 });
  assert.is(off.headerSize, 2);
  assert.equal(encode(off, 'ab'), hex('00 02 61 62'));
  assertEverySplit(off, hex('FF 02 61 62 00 00'), [
    { type: 0, data: Buffer.from('ab') },
    { type: 0, data: Buffer.alloc(0) },
  ]);
  // Type before the length, at an explicit offset.
  const tf = lengthPrefixed({ lengthSize: 1, lengthOffset: 1, typeSize: 1, typeOffset: 0, lengthCounts: 'frame' });
  assert.equal(encode(tf, 'x', 9), hex('09 03 78'));
});

test('8-byte lengths: above MAX_SAFE_INTEGER or maxMessageSize is rejected from the header', () => {
  const f = lengthPrefixed({ lengthSize: 8 });
  assert.is(f.maxEncodableSize, Number.MAX_SAFE_INTEGER);
  for (const wire of [
    'FF FF FF FF FF FF FF FF',
    '00 20 00 00 00 00 00 00',
    '00 00 00 01 00 00 00 00',
    '00 00 00 00 00 10 00 01',
  ]) {
    assert.throws(
      () => decodeAll(f, [hex(wire)], 1 << 20),
      (e: unknown) => e instanceof MessageTooLargeError,
      wire,
    );
  }
  const le = lengthPrefixed({ lengthSize: 8, littleEndian: true });
  assert.throws(
    () => decodeAll(le, [hex('00 00 00 00 00 00 20 00')]),
    (e: unknown) => e instanceof MessageTooLargeError,
  );
  assert.equal(encode(le, 'a'), hex('01 00 00 00 00 00 00 00 61'));
  assertEverySplit(f, hex('00 00 00 00 00 00 00 01 61'), [{ type: 0, data: Buffer.from('a') }]);
  // Exact header arithmetic at the safe limit.
  const h = Buffer.alloc(8);
  f.writeHeader(h, 0, Number.MAX_SAFE_INTEGER, 0);
  assert.equal(h, hex('00 1F FF FF FF FF FF FF'));
  le.writeHeader(h, 0, Number.MAX_SAFE_INTEGER, 0);
  assert.equal(h, hex('FF FF FF FF FF FF 1F 00'));
});

test('8-byte types: up to MAX_SAFE_INTEGER, larger is a ProtocolError', () => {
  const f = lengthPrefixed({ lengthSize: 1, typeSize: 8 });
  assert.is(f.maxType, Number.MAX_SAFE_INTEGER);
  const wire = encode(f, 'z', Number.MAX_SAFE_INTEGER);
  assert.equal(wire, hex('01 00 1F FF FF FF FF FF FF 7A'));
  assertEverySplit(f, wire, [{ type: Number.MAX_SAFE_INTEGER, data: Buffer.from('z') }]);
  throwsCode(() => decodeAll(f, [hex('00 00 20 00 00 00 00 00 00')]), 'ERR_PROTOCOL');
});

test('checks maxMessageSize from the header, before the body arrives', () => {
  throwsCode(() => decodeAll(int32, [hex('00 00 04 01')], 1024), 'ERR_MESSAGE_TOO_LARGE');
  assert.equal(decodeAll(int32, [hex('00 00 04 00')], 1024), []);
  throwsCode(() => decodeAll(ltprotocol(), [hex('00 0A 01')], 6), 'ERR_MESSAGE_TOO_LARGE');
});

test('writeHeader rejects what the fields cannot hold', () => {
  const bb = ltprotocol('B', 'B');
  const h = Buffer.alloc(8);
  assert.throws(
    () => bb.writeHeader(h, 0, 254, 0),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => bb.writeHeader(h, 0, 1, 256),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => bb.writeHeader(h, 0, 1, -1),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => int32.writeHeader(h, 0, 2 ** 32, 0),
    (e: unknown) => e instanceof RangeError,
  );
  assert.is(bb.writeHeader(h, 0, 253, 255), 2);
  assert.equal(h.subarray(0, 2), hex('FF FF'));
});

test('bad options throw RangeError/TypeError saying what was expected', () => {
  assert.throws(
    () => lengthPrefixed({ lengthSize: 3 as 4 }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => lengthPrefixed({ typeSize: 3 as 2 }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => lengthPrefixed({ lengthCounts: 'all' as 'body' }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => lengthPrefixed({ lengthOffset: -1 }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => lengthPrefixed({ lengthOffset: 1.5 }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(() => lengthPrefixed({ typeSize: 2, typeOffset: 3 }), /overlap/);
  assert.throws(
    () => lengthPrefixed({ lengthAdjustment: -1 }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => lengthPrefixed({ lengthSize: 1, lengthAdjustment: 256 }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => lengthPrefixed({ littleEndian: 'yes' as unknown as boolean }),
    (e: unknown) => e instanceof TypeError,
  );
  // A negative adjustment is fine when the frame counting covers it.
  const f = lengthPrefixed({ lengthSize: 2, lengthCounts: 'frame', lengthAdjustment: -2 });
  assert.equal(encode(f, 'ab'), hex('00 02 61 62'));
});

test('Channel.pair carries types with ltprotocol and enforces its limits', async () => {
  const [a, b] = Channel.pair({ framing: ltprotocol('B', 'B') });
  try {
    await a.send(numMsg(200), { type: 1 });
    await a.send('hello world!', { type: 2 });
    await a.send('');
    assert.equal(await b.recvFrame(), { type: 1, data: numMsg(200) });
    assert.equal(await b.recvFrame(), { type: 2, data: Buffer.from('hello world!') });
    assert.equal(await b.recvFrame(), { type: 0, data: Buffer.alloc(0) });
    await a.send(Buffer.alloc(253, 1), { type: 255 });
    assert.is((await b.recvFrame()).data.length, 253);
    await a.send(Buffer.alloc(254)).then(
      () => assert.unreachable('sent a body the length field cannot hold'),
      (e: unknown) => assert.instance(e, MessageTooLargeError),
    );
    await a.send('x', { type: 256 }).then(
      () => assert.unreachable('sent a type the type field cannot hold'),
      (e: unknown) => assert.instance(e, RangeError),
    );
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('names: the presets and the default, for errors and diagnostics', () => {
  assert.is(lengthPrefixed().name, 'lengthPrefixed');
  assert.is(int32.name, 'int32');
  assert.is(ltprotocol().name, 'ltprotocol');
  assert.is(openflow.name, 'openflow');
  assert.is(lengthPrefixed({ name: 'mine' }).name, 'mine');
});

test('each bad option is named in its error', () => {
  const named: [() => unknown, RegExp][] = [
    [() => lengthPrefixed(null as never), /`options`/],
    [() => lengthPrefixed('x' as never), /`options`/],
    [() => lengthPrefixed({ lengthSize: 3 as 4 }), /`lengthSize`/],
    [() => lengthPrefixed({ typeSize: 3 as 2 }), /`typeSize`/],
    [() => lengthPrefixed({ littleEndian: 'yes' as unknown as boolean }), /`littleEndian`/],
    [() => lengthPrefixed({ lengthCounts: 'all' as 'body' }), /`lengthCounts`/],
    [() => lengthPrefixed({ lengthOffset: -1 }), /`lengthOffset`/],
    [() => lengthPrefixed({ lengthAdjustment: -1 }), /`lengthAdjustment`/],
    [() => lengthPrefixed({ typeSize: 1, typeOffset: -1 }), /`typeOffset`/],
    [() => lengthPrefixed({ name: 5 as unknown as string }), /`name`/],
    [() => ltprotocol('h' as 'H'), /`lenType`/],
    [() => ltprotocol('H', 'x' as 'B'), /`typeType`/],
    [() => openflowType(256, 0), /`version`/],
    [() => openflowType(1, 256), /`ofType`/],
  ];
  for (const [fn, pattern] of named) assert.throws(fn, pattern, String(pattern));
  // The overlap error gives both fields' byte ranges.
  assert.throws(
    () => lengthPrefixed({ lengthSize: 4, typeSize: 2, typeOffset: 3 }),
    (e: unknown) =>
      e instanceof RangeError &&
      e.message === 'Expected the type field (bytes 3..4) not to overlap the length field (bytes 0..3)',
  );
  // A type field that starts before the length field and runs into it overlaps too.
  assert.throws(
    () => lengthPrefixed({ lengthOffset: 1, lengthSize: 2, typeSize: 2, typeOffset: 0 }),
    (e: unknown) =>
      e instanceof RangeError &&
      e.message === 'Expected the type field (bytes 0..1) not to overlap the length field (bytes 1..2)',
  );
  // Without a type field its offset means nothing: no overlap (even inside the length field), and no room for it in the header.
  assert.is(lengthPrefixed({ typeOffset: 0 }).headerSize, 4);
  assert.is(lengthPrefixed({ typeOffset: 2 }).headerSize, 4);
  assert.is(lengthPrefixed({ typeOffset: 10 }).headerSize, 4);
});

test("lengthAdjustment ranges from what makes an empty body's field 0 to what makes it the largest the field holds", () => {
  // The length counts the frame and the header is the 1-byte length field: an empty body's field is 1 + lengthAdjustment.
  const counted = (lengthAdjustment: number) =>
    lengthPrefixed({ lengthSize: 1, lengthCounts: 'frame', lengthAdjustment });
  for (const bad of [-2, 255]) {
    assert.throws(
      () => counted(bad),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message === `Expected \`lengthAdjustment\` to be an integer from -1 to 254, got ${bad}`,
      String(bad),
    );
  }
  const top = counted(254);
  assert.is(top.maxEncodableSize, 0, 'only the empty body fits');
  assert.equal(encode(top, ''), hex('FF'));
  assert.equal(decodeAll(top, [hex('FF FF')]), [
    { type: 0, data: Buffer.alloc(0) },
    { type: 0, data: Buffer.alloc(0) },
  ]);
  assert.throws(
    () => top.writeHeader(Buffer.alloc(1), 0, 1, 0),
    (e: unknown) => e instanceof RangeError,
  );
  const bottom = counted(-1);
  assert.is(bottom.maxEncodableSize, 255);
  assert.equal(encode(bottom, 'a'), hex('01 61'));
  // Counting the body only: from 0 to the field's maximum.
  assert.throws(() => lengthPrefixed({ lengthSize: 1, lengthAdjustment: 256 }), /from 0 to 255, got 256/);
  assert.is(lengthPrefixed({ lengthSize: 1, lengthAdjustment: 255 }).maxEncodableSize, 0);
});

test('writeHeader: a negative length or a bad type is a RangeError saying so; bytes of neither field are zeroed', () => {
  const h = Buffer.alloc(8, 0xee);
  assert.throws(
    () => int32.writeHeader(h, 0, -1, 0),
    (e: unknown) => e instanceof RangeError && /-1-byte body does not fit/.test(e.message),
  );
  assert.throws(
    () => ltprotocol().writeHeader(h, 0, 1, 256),
    (e: unknown) => e instanceof RangeError && /expected a type from 0 to 255, got 256/.test(e.message),
  );
  // [2 spare bytes][u16 length][u8 type][1 spare byte] written over a dirty buffer.
  const f = lengthPrefixed({ lengthOffset: 2, lengthSize: 2, typeSize: 1, typeOffset: 5 });
  assert.is(f.writeHeader(h, 1, 3, 7), 7);
  assert.equal(h, hex('EE 00 00 00 03 00 07 EE'));
});

test('header errors give the stream offset of the bad field, however the header is split', () => {
  // [2 bytes][u16 length counting the frame]: a field of 1 is below the header's 4.
  const f = lengthPrefixed({ lengthOffset: 2, lengthSize: 2, lengthCounts: 'frame' });
  const good = encode(f, 'ok');
  const wire = Buffer.concat([good, hex('AA BB 00 01')]);
  for (let i = good.length; i <= wire.length; i++) {
    for (const chunks of [[wire.subarray(0, i), wire.subarray(i)], [...wire].map((b) => Buffer.from([b]))]) {
      try {
        decodeAll(f, chunks);
        assert.unreachable('accepted a length of 1');
      } catch (error) {
        assert.instance(error, ProtocolError);
        assert.is((error as ProtocolError).offset, good.length + 2, `split at ${i}`);
        assert.match((error as Error).message, /length field 1 is below the minimum 4/);
      }
    }
  }
  // An 8-byte type above MAX_SAFE_INTEGER: the offset of the type field.
  const t = lengthPrefixed({ lengthSize: 1, typeSize: 8 });
  try {
    decodeAll(t, [Buffer.concat([encode(t, 'a'), hex('00 00 20 00 00 00 00 00 00')])]);
    assert.unreachable('accepted the type');
  } catch (error) {
    assert.instance(error, ProtocolError);
    assert.is((error as ProtocolError).offset, 11);
    assert.match((error as Error).message, /type field is above Number.MAX_SAFE_INTEGER/);
  }
  // An 8-byte length above MAX_SAFE_INTEGER is the receive side's MessageTooLargeError.
  assert.throws(
    () => decodeAll(lengthPrefixed({ lengthSize: 8 }), [hex('00 20 00 00 00 00 00 00')]),
    (e: unknown) => e instanceof MessageTooLargeError && e.message.startsWith('peer announced'),
  );
});

test.run();
