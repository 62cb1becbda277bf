import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  ChannelClosedError,
  HandshakeError,
  MessageTooLargeError,
  PACKETMQ_MAX_LENGTH,
  PacketmqSession,
  TimeoutError,
  msgpack,
  msgpackCodec,
  packetmqChannelOptions,
  packetmqFraming,
  packetmqProtocol,
  type Frame,
} from '../../channel.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** Golden bytes of packetmq's init and finish (wire format: docs/typed.md), as packetmq on Python 2 sends them (bin key). */
const GOLDEN_INIT = hex('00 00 00 0D 00 00 81 C4 07 76 65 72 73 69 6F 6E 01');
const GOLDEN_FINISH = hex('00 00 00 03 00 03 C0');

/** A packetmq frame, with map keys and strings packed as bin like Python 2's umsgpack. */
function frame(id: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32BE(payload.length + 2, 0);
  h.writeUInt16BE(id, 4);
  return Buffer.concat([h, payload]);
}
function bin(s: string): Buffer {
  return Buffer.concat([Buffer.from([0xc4, Buffer.byteLength(s)]), Buffer.from(s)]);
}
/** {b"adapt": <bool>, b"idmap": {b name: id}} with ids < 128 */
function py2Pubids(adapt: boolean, idmap: Record<string, number>): Buffer {
  const entries = Object.entries(idmap);
  return Buffer.concat([
    Buffer.from([0x82]),
    bin('adapt'),
    Buffer.from([adapt ? 0xc3 : 0xc2]),
    bin('idmap'),
    Buffer.from([0x80 | entries.length]),
    ...entries.map(([k, v]) => Buffer.concat([bin(k), Buffer.from([v])])),
  ]);
}
const RESERVED = {
  'packetmq:handshake_init': 0,
  'packetmq:softquit': 1,
  'packetmq:handshake_pubids': 2,
  'packetmq:handshake_finish': 3,
};

const chat = () =>
  packetmqProtocol().define('chat:say', 16, msgpack<{ text: string }>()).define('chat:join', 17, msgpack<string>());

test('packetmq golden bytes: a Python 2 peer (bin keys) handshakes with us; we send init, pubids and the golden finish', async () => {
  const listener = Channel.listen('127.0.0.1', 0, packetmqChannelOptions());
  const { port } = await listener.listening;
  const sock = net.connect(port, '127.0.0.1');
  let got = Buffer.alloc(0);
  sock.on('data', (c) => (got = Buffer.concat([got, c])));
  await new Promise((r) => sock.once('connect', r));
  const session = new PacketmqSession(chat(), (await listener.accept())!, { adaptive: false });
  // the peer is the adaptive client, as packetmq's docs set it up
  sock.write(GOLDEN_INIT);
  sock.write(frame(2, py2Pubids(true, { ...RESERVED, 'chat:say': 16, 'chat:join': 17 })));
  await session.ready;
  sock.write(GOLDEN_FINISH);
  sock.write(frame(16, Buffer.concat([Buffer.from([0x81]), bin('text'), Buffer.from([0xa2, 0x68, 0x69])])));
  const m = await session.recv();
  assert.equal([m.name, m.id, m.data], ['chat:say', 16, { text: 'hi' }]);
  assert.ok(session.peerFinished);
  // what we sent: init (str key), pubids, finish
  const init = hex('00 00 00 0C 00 00 81 A7 76 65 72 73 69 6F 6E 01'); // str key: one byte shorter than the golden bin key
  assert.is(got.subarray(0, init.length).toString('hex'), init.toString('hex'));
  const pubLen = got.readUInt32BE(init.length);
  assert.is(got.readUInt16BE(init.length + 4), 2);
  const pub = msgpackCodec.unpack(got.subarray(init.length + 6, init.length + 4 + pubLen));
  assert.equal(pub, { adapt: false, idmap: { ...RESERVED, 'chat:say': 16, 'chat:join': 17 } });
  assert.is(got.subarray(init.length + 4 + pubLen).toString('hex'), GOLDEN_FINISH.toString('hex'));
  sock.destroy();
  await session.closed;
  await listener.close();
});

function sessions(adaptiveA: boolean, adaptiveB: boolean, protoB = chat()) {
  const [a, b] = Channel.pair(packetmqChannelOptions());
  return {
    a: new PacketmqSession(chat(), a, { adaptive: adaptiveA }),
    b: new PacketmqSession(protoB, b, { adaptive: adaptiveB }),
  };
}

test('handshake with us as the adaptive side and as the non-adaptive side: ids adapt to the non-adaptive peer', async () => {
  // B numbers the same packets differently; A (adaptive) takes B's ids
  const protoB = packetmqProtocol()
    .define('chat:say', 300, msgpack<{ text: string }>())
    .define('chat:join', 16, msgpack<string>());
  const { a, b } = sessions(true, false, protoB);
  await Promise.all([a.ready, b.ready]);
  assert.is(a.state, 'active');
  assert.is(b.state, 'active');
  assert.equal(Object.fromEntries(a.wireIds), { 'chat:say': 300, 'chat:join': 16 });
  assert.equal(Object.fromEntries(b.wireIds), { 'chat:say': 300, 'chat:join': 16 });
  await a.send('chat:say', { text: 'from adaptive' });
  await b.send('chat:join', 'from fixed');
  const mb = await b.recv();
  assert.equal([mb.name, mb.id, mb.data], ['chat:say', 300, { text: 'from adaptive' }]);
  const ma = await a.recv();
  assert.equal([ma.name, ma.id, ma.data], ['chat:join', 16, 'from fixed']);
  await a.close();
  await b.closed;
});

test('send() before the handshake finishes waits for it, and nothing is dropped', async () => {
  const { a, b } = sessions(false, true);
  void a.send('chat:join', 'early'); // before ready
  const m = await b.recv();
  assert.equal(m.data, 'early');
  assert.is(b.sessionStats.droppedBeforeHandshake, 0);
  await b.close();
  await a.closed;
});

test('same adaptive policy on both sides: softquit reason.sameadaptivepolicy', async () => {
  for (const policy of [true, false]) {
    const { a, b } = sessions(policy, policy);
    for (const s of [a, b]) {
      const e = (await s.ready.catch((x: unknown) => x)) as HandshakeError | ChannelClosedError;
      assert.ok(e instanceof HandshakeError || e instanceof ChannelClosedError, String(e));
      assert.is(e.reason, 'reason.sameadaptivepolicy');
      const r = (await s.recv().catch((x: unknown) => x)) as ChannelClosedError | HandshakeError;
      assert.is(r.reason, 'reason.sameadaptivepolicy');
    }
    await Promise.all([a.closed, b.closed]);
  }
});

/** Our session against a raw packetmq Channel we drive by hand. */
async function rawPeer(adaptive: boolean, options: { onDropped?: (f: Frame) => void } = {}) {
  const [ours, theirs] = Channel.pair(packetmqChannelOptions());
  const session = new PacketmqSession(chat(), ours, { adaptive, ...options });
  const init = await theirs.recvFrame();
  assert.is(init.type, 0);
  assert.equal(msgpackCodec.unpack(init.data), { version: 1 });
  return { session, theirs };
}

test('version mismatch: we softquit reason.versionmismatch and ready rejects with HandshakeError', async () => {
  const { session, theirs } = await rawPeer(true);
  await theirs.send(msgpackCodec.pack({ version: 2 }), { type: 0 });
  const e = (await session.ready.catch((x: unknown) => x)) as HandshakeError;
  assert.instance(e, HandshakeError);
  assert.is(e.code, 'ERR_HANDSHAKE');
  assert.is(e.reason, 'reason.versionmismatch');
  const quit = await theirs.recvFrame();
  assert.is(quit.type, 1);
  assert.equal(msgpackCodec.unpack(quit.data), { reason: 'reason.versionmismatch' });
  await theirs.close();
  await session.closed;
});

test('the peer softquits during the handshake: ready and recv reject with its reason (bin-packed)', async () => {
  const { session, theirs } = await rawPeer(false);
  await theirs.send(Buffer.concat([Buffer.from([0x81]), bin('reason'), bin('reason.sameadaptivepolicy')]), { type: 1 });
  const e = (await session.ready.catch((x: unknown) => x)) as ChannelClosedError;
  assert.instance(e, ChannelClosedError);
  assert.is(e.code, 'ERR_CHANNEL_CLOSED');
  assert.is(e.reason, 'reason.sameadaptivepolicy');
  assert.is(session.quitBy, 'peer');
  await session.closed;
});

test('softquit after the handshake: the other side gets the reason on its ChannelClosedError; for await ends', async () => {
  const { a, b } = sessions(true, false);
  await Promise.all([a.ready, b.ready]);
  await a.send('chat:join', 'bye soon');
  await a.softquit('reason.userquit');
  const seen: unknown[] = [];
  for await (const m of b) seen.push(m.data);
  assert.equal(seen, ['bye soon']);
  const e = (await b.recv().catch((x: unknown) => x)) as ChannelClosedError;
  assert.instance(e, ChannelClosedError);
  assert.is(e.reason, 'reason.userquit');
  assert.is(b.quitReason, 'reason.userquit');
  assert.is(b.quitBy, 'peer');
  assert.is(a.quitBy, 'local');
  const ea = (await a.send('chat:join', 'x').catch((x: unknown) => x)) as ChannelClosedError;
  assert.is(ea.reason, 'reason.userquit');
  await Promise.all([a.closed, b.closed]);
});

test('application packets before finish are dropped per the protocol, but counted and reported', async () => {
  const dropped: number[] = [];
  const { session, theirs } = await rawPeer(true, { onDropped: (f) => dropped.push(f.type) });
  await theirs.send(msgpackCodec.pack({ version: 1 }), { type: 0 });
  await theirs.send(msgpackCodec.pack('too early'), { type: 17 });
  await theirs.send(msgpackCodec.pack({ adapt: false, idmap: { ...RESERVED, 'chat:say': 16, 'chat:join': 17 } }), {
    type: 2,
  });
  await session.ready;
  await theirs.send(msgpackCodec.pack(null), { type: 3 });
  await theirs.send(msgpackCodec.pack('on time'), { type: 17 });
  assert.equal((await session.recv()).data, 'on time');
  assert.equal(dropped, [17]);
  assert.is(session.sessionStats.droppedBeforeHandshake, 1);
  // stray handshake packets after finish are ignored, as packetmq does, and counted
  await theirs.send(msgpackCodec.pack({ version: 1 }), { type: 0 });
  await theirs.send(msgpackCodec.pack('after'), { type: 16 });
  const e = await session.recv().catch((x: unknown) => x); // 'after' is not {text}, but msgpack is untyped: it decodes
  assert.equal((e as { data: unknown }).data, 'after');
  assert.is(session.sessionStats.ignoredControl, 1);
  await theirs.close();
  await session.closed;
});

test('sides built from one shared base protocol handshake: define() on the base for another service does not leak into them', async () => {
  const makeBase = () => packetmqProtocol().define('chat:say', 16, msgpack<{ text: string }>());
  // The server's process builds two protocols from one base: its chat service's and an admin one's.
  const base = makeBase();
  const server = base.define('chat:join', 17, msgpack<string>());
  const admin = base.define('admin:kick', 18);
  // The client's process builds the chat protocol from its own base, as the server does.
  const client = makeBase().define('chat:join', 17, msgpack<string>());
  const [a, b] = Channel.pair(packetmqChannelOptions());
  const s = new PacketmqSession(server, a, { adaptive: false });
  const c = new PacketmqSession(client, b, { adaptive: true });
  await Promise.all([s.ready, c.ready]);
  assert.is(c.state, 'active');
  await c.send('chat:join', 'ann');
  const m = await s.recv();
  assert.equal([m.name, m.data], ['chat:join', 'ann']);
  assert.not.ok(server.has('admin:kick'));
  assert.ok(admin.has('admin:kick'));
  a.destroy();
  b.destroy();
});

test('adaptive side with a peer that defines other packets: softquit reason.nonequalpackets', async () => {
  const { session, theirs } = await rawPeer(true);
  await theirs.send(msgpackCodec.pack({ version: 1 }), { type: 0 });
  await theirs.send(msgpackCodec.pack({ adapt: false, idmap: { ...RESERVED, 'chat:say': 16, 'other:x': 20 } }), {
    type: 2,
  });
  const e = (await session.ready.catch((x: unknown) => x)) as HandshakeError;
  assert.is(e.reason, 'reason.nonequalpackets');
  assert.match(e.message, /other:x/);
  await theirs.close();
  await session.closed;
});

test("maxMessageSize defaults to Twisted's MAX_LENGTH 99999 (id included)", async () => {
  assert.is(PACKETMQ_MAX_LENGTH, 99999);
  assert.is(packetmqChannelOptions().maxMessageSize, 99997);
  const { a, b } = sessions(true, false);
  await Promise.all([a.ready, b.ready]);
  const big = 'x'.repeat(99_997); // msgpack str32 header makes it > 99997 bytes
  const e = await a.send('chat:join', big).catch((x: unknown) => x);
  assert.instance(e, MessageTooLargeError);
  await a.send('chat:join', 'x'.repeat(99_990)); // 99992 bytes of msgpack + 2 = 99994: fits
  assert.is(((await b.recv()).data as string).length, 99_990);
  await a.close();
  await b.closed;
});

test('a peer that never answers: ready rejects with TimeoutError and the channel is destroyed', async () => {
  const [ours, theirs] = Channel.pair(packetmqChannelOptions());
  const session = new PacketmqSession(chat(), ours, { adaptive: true, handshakeTimeout: 50 });
  const e = await session.ready.catch((x: unknown) => x);
  assert.instance(e, TimeoutError);
  assert.instance(await session.closed, TimeoutError);
  theirs.destroy();
});

test('options are validated', () => {
  const [a, b] = Channel.pair(packetmqChannelOptions());
  assert.throws(
    () => new PacketmqSession(chat(), a, {} as never),
    (e: unknown) => e instanceof TypeError && /adaptive/.test(e.message),
  );
  assert.throws(
    () => new PacketmqSession(chat(), a, { adaptive: true, maxMessageSize: 1 }),
    (e: unknown) => e instanceof RangeError,
  );
  const [c, d] = Channel.pair(); // msg framing: no type field
  assert.throws(
    () => new PacketmqSession(chat(), c, { adaptive: true }),
    (e: unknown) => e instanceof TypeError && /packetmqFraming/.test(e.message),
  );
  assert.is(packetmqFraming.maxType, 65535);
  for (const ch of [a, b, c, d]) ch.destroy();
});

test.run();
