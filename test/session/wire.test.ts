/**
 * The session wire format's golden vectors (the same bytes as docs/sessions.md) and its parser:
 * hellos, DATA, ACK, PING, FIN, ABORT, any split of the bytes across chunks, and the errors.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as net from 'node:net';
import { Channel, ProtocolError } from '../../channel.js';
import { ReplayBuffer } from '../../src/session/replay.js';
import {
  ABORT_SEGMENT,
  FIN_SEGMENT,
  PING_SEGMENT,
  SegmentParser,
  decodeClientHello,
  decodeServerHello,
  encodeAck,
  encodeClientHello,
  encodeDataHeader,
  encodeServerHello,
} from '../../src/session/wire.js';
import { chunkAt } from '../helpers.js';

const TOKEN = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const hex = (b: Buffer): string => b.toString('hex');

test('golden: the client hello', () => {
  const bytes = encodeClientHello({ token: TOKEN, received: 0x1234, messages: 3, window: 0x100000 });
  assert.is(
    hex(bytes),
    '4d435352' + '01' + '00112233445566778899aabbccddeeff' + '000000001234' + '000000000003' + '00100000',
  );
  assert.equal(decodeClientHello(bytes), { token: TOKEN, received: 0x1234, messages: 3, window: 0x100000 });
});

test('golden: the server hello (resumed; refused)', () => {
  const ok = encodeServerHello({ status: 0, token: TOKEN, received: 5, messages: 1, window: 0x4000 });
  assert.is(
    hex(ok),
    '4d435352' + '01' + '00' + '00112233445566778899aabbccddeeff' + '000000000005' + '000000000001' + '00004000',
  );
  assert.equal(decodeServerHello(ok), { status: 0, token: TOKEN, received: 5, messages: 1, window: 0x4000 });
  const unknown = encodeServerHello({ status: 1, token: Buffer.alloc(16), received: 0, messages: 0, window: 1 });
  assert.is(hex(unknown), '4d43535201' + '01' + '00'.repeat(16) + '00'.repeat(12) + '00000001');
});

test('golden: the segments', () => {
  assert.is(hex(Buffer.concat([encodeDataHeader(3), Buffer.from('abc')])), '0100000003616263');
  assert.is(hex(encodeAck(0x0102030405, 7)), '02' + '000102030405' + '000000000007');
  assert.is(hex(PING_SEGMENT), '03');
  assert.is(hex(FIN_SEGMENT), '04');
  assert.is(hex(ABORT_SEGMENT), '05');
});

test('bad hellos: another magic, another version, a window of 0, an unknown status', () => {
  const good = encodeClientHello({ token: TOKEN, received: 0, messages: 0, window: 1024 });
  for (const [at, value] of [
    [0, 0x4e],
    [4, 2],
  ] as const) {
    const bad = Buffer.from(good);
    bad[at] = value;
    assert.throws(
      () => decodeClientHello(bad),
      (e: unknown) => e instanceof ProtocolError,
    );
  }
  const zeroWindow = Buffer.from(good);
  zeroWindow.writeUInt32BE(0, 33);
  assert.throws(() => decodeClientHello(zeroWindow), /window of 0/);
  zeroWindow.writeUInt32BE(1023, 33);
  assert.throws(() => decodeClientHello(zeroWindow), /window of 1023 \(at least 1024\)/);
  const server = encodeServerHello({ status: 0, token: TOKEN, received: 0, messages: 0, window: 1024 });
  server[5] = 9;
  assert.throws(() => decodeServerHello(server), /unknown session status 9/);
});

function parseAll(chunks: Buffer[]): string[] {
  const parser = new SegmentParser();
  const out: string[] = [];
  let data: Buffer[] = [];
  const flush = (): void => {
    if (data.length > 0) out.push(`data:${Buffer.concat(data).toString()}`);
    data = [];
  };
  const sink = {
    data: (b: Buffer) => data.push(Buffer.from(b)),
    ack: (r: number, m: number) => (flush(), out.push(`ack:${r}:${m}`)),
    ping: () => (flush(), out.push('ping')),
    fin: () => (flush(), out.push('fin')),
    abort: () => (flush(), out.push('abort')),
  };
  for (const c of chunks) parser.push(c, sink);
  flush();
  return out;
}

test('the parser gives the same segments however the bytes are split', () => {
  const stream = Buffer.concat([
    encodeDataHeader(5),
    Buffer.from('hello'),
    encodeAck(99, 2),
    PING_SEGMENT,
    encodeDataHeader(2),
    Buffer.from('!!'),
    FIN_SEGMENT,
    ABORT_SEGMENT,
  ]);
  const expected = ['data:hello', 'ack:99:2', 'ping', 'data:!!', 'fin', 'abort'];
  assert.equal(parseAll([stream]), expected);
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }), (cuts) => {
      assert.equal(parseAll(chunkAt(stream, cuts)), expected);
    }),
    { numRuns: 200 },
  );
});

test('the parser refuses an unknown segment type and an empty DATA segment', () => {
  assert.throws(() => parseAll([Buffer.from([9])]), /unknown session segment type 9/);
  assert.throws(() => parseAll([encodeDataHeader(0)]), /empty session DATA/);
});

test('the replay buffer: a ring bounded by its limit; appends, trims and seeks in any order read back every byte', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 16, max: 200 }),
      fc.array(fc.tuple(fc.integer({ min: 1, max: 90 }), fc.nat(), fc.nat()), { minLength: 1, maxLength: 30 }),
      (limit, steps) => {
        const r = new ReplayBuffer(limit);
        let all = Buffer.alloc(0); // every byte appended, by stream offset
        let acked = 0;
        for (const [k, [n, ackSeed, seekSeed]] of steps.entries()) {
          const chunk = Buffer.from(Array.from({ length: n }, (_, i) => (k * 31 + i) & 0xff));
          const taken = r.append(chunk, 0, n);
          assert.is(taken, Math.min(n, limit - (all.length - acked)), 'takes what there is room for');
          all = Buffer.concat([all, chunk.subarray(0, taken)]);
          assert.ok(r.bytes <= limit);
          const from = acked + (seekSeed % (all.length - acked + 1));
          r.seek(from);
          const read: Buffer[] = [];
          for (let piece = r.next(7); piece !== undefined; piece = r.next(7)) read.push(piece);
          assert.equal(Buffer.concat(read), all.subarray(from), 'every byte from the cursor on');
          const ack = acked + (ackSeed % (all.length - acked + 1));
          assert.is(r.trim(ack), ack - acked);
          acked = ack;
          assert.is(r.bytes, all.length - acked);
          assert.is(r.room, limit - r.bytes);
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('golden: a new session over MSG sending "hi", byte for byte as the client writes it', async () => {
  const token = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const seen = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      let got = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length === 37)
          socket.write(encodeServerHello({ status: 0, token, received: 0, messages: 0, window: 0x100000 }));
        if (got.length >= 37 + 13 + 16) resolve(got);
      });
    });
  });
  const ch = await Channel.connect('127.0.0.1', (server.address() as net.AddressInfo).port, { resume: true });
  await ch.send('hi');
  assert.is(
    hex(await seen),
    '4d43535201' +
      '00'.repeat(16) +
      '000000000000' +
      '000000000000' +
      '00100000' +
      '02' +
      '00'.repeat(12) +
      '010000000b0d0a4d534720320d0a6869',
  );
  ch.destroy();
  server.close();
});

test.run();
