import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  ChannelClosedError,
  MessageDecodeError,
  Protocol,
  TypedChannel,
  UnknownMessageTypeError,
  lengthPrefixed,
  ltprotocol,
  msg,
  msgpack,
  raw,
  uint32,
  utf8String,
} from '../../channel.js';

/** ltprotocol's test program: NumMsg type 1 packs '>I', StrMsg type 2 is the raw bytes. */
const LT = new Protocol({ maxId: 255 }).define('num', 1, uint32).define('str', 2, raw);

const APP = new Protocol({ minId: 16, maxId: 65535 })
  .define('chat:say', 16, msgpack<{ text: string; n?: number }>())
  .define('chat:count', 17, uint32)
  .define('chat:name', 18, utf8String);

const packetmqFraming = lengthPrefixed({ lengthSize: 4, typeSize: 2, lengthAdjustment: 2 });

/** A typed pair in memory plus the raw channel of the far side, for byte-level checks. */
function pair<M extends Record<string, unknown>>(proto: Protocol<M>, framing = packetmqFraming) {
  const [a, b] = Channel.pair({ framing });
  return { a: new TypedChannel(proto, a), b: new TypedChannel(proto, b), rawA: a, rawB: b };
}

/** Everything written to a channel's peer, as bytes: a plain pair with the msg framing would re-frame, so read a raw Duplex. */
async function wireBytesOf(
  proto: Protocol<any>,
  framing: typeof packetmqFraming,
  send: (t: TypedChannel<any>) => Promise<void>,
): Promise<Buffer> {
  const listener = Channel.listen('127.0.0.1', 0, { framing });
  const { port } = await listener.listening;
  const net = await import('node:net');
  const got: Buffer[] = [];
  const sock = net.connect(port, '127.0.0.1');
  sock.on('data', (c) => got.push(c));
  const ended = new Promise((r) => sock.on('close', r));
  const server = (await listener.accept())!;
  const typed = new TypedChannel(proto, server);
  await send(typed);
  await typed.close();
  await ended;
  await listener.close();
  return Buffer.concat(got);
}

test('ltprotocol golden vectors: NumMsg(200), StrMsg("hello world!"), NumMsg(7) over TCP', async () => {
  const wire = await wireBytesOf(LT, ltprotocol(), async (t) => {
    await t.send('num', 200);
    await t.send('str', Buffer.from('hello world!'));
    await t.send('num', 7);
  });
  assert.is(wire.toString('hex'), '000701000000c8' + '000f0268656c6c6f20776f726c6421' + '00070100000007');
});

test('ltprotocol golden vectors decode to typed messages', async () => {
  const [a, b] = Channel.pair({ framing: ltprotocol() });
  const typed = new TypedChannel(LT, b);
  // hand-written bytes, as ltprotocol's server would send them
  await a.send(Buffer.from([0, 0, 0, 200]), { type: 1 });
  await a.send(Buffer.from('hello world!'), { type: 2 });
  await a.send(Buffer.from([0, 0, 0, 7]), { type: 1 });
  const got = [await typed.recv(), await typed.recv(), await typed.recv()];
  assert.equal(
    got.map((m) => [m.name, m.id]),
    [
      ['num', 1],
      ['str', 2],
      ['num', 1],
    ],
  );
  assert.is(got[0]!.data, 200);
  assert.is(Buffer.from(got[1]!.data as Uint8Array).toString(), 'hello world!');
  assert.is(got[2]!.data, 7);
  await a.close();
  await typed.closed;
});

test('send(name, data) / recv() round trip over Channel.pair with msgpack, u32 and utf-8', async () => {
  const { a, b } = pair(APP);
  await a.send('chat:say', { text: 'hi', n: 3 });
  await a.send('chat:count', 42);
  await a.send('chat:name', 'zoë');
  const m1 = await b.recv();
  assert.equal(m1, { name: 'chat:say', id: 16, data: { text: 'hi', n: 3 } });
  const m2 = await b.recv();
  assert.equal(m2, { name: 'chat:count', id: 17, data: 42 });
  if (m2.name === 'chat:count') assert.is(m2.data.toFixed(0), '42'); // narrowed to number
  assert.equal(await b.recv(), { name: 'chat:name', id: 18, data: 'zoë' });
  assert.is(b.stats.received, 3);
  await a.close();
  await b.closed;
});

test('the type id travels in the framing type field: [u32 len][u16 id][msgpack]', async () => {
  const wire = await wireBytesOf(APP, packetmqFraming, (t) => t.send('chat:say', { text: 'x' }));
  // 81 A4 'text' A1 'x' = 8 bytes of msgpack; len counts id + body = 10
  assert.is(wire.toString('hex'), '0000000a' + '0010' + '81a474657874a178');
});

test('for await yields typed messages until the peer closes', async () => {
  const { a, b } = pair(APP);
  for (let i = 0; i < 5; i++) await a.send('chat:count', i);
  await a.close();
  const seen: number[] = [];
  for await (const m of b) if (m.name === 'chat:count') seen.push(m.data);
  assert.equal(seen, [0, 1, 2, 3, 4]);
});

test('on(name, handler) dispatches in wire order; unsubscribe; unhandled counted', async () => {
  const { a, b } = pair(APP);
  const got: string[] = [];
  const off = b.on('chat:name', async (name, m) => {
    await new Promise((r) => setTimeout(r, 1)); // slow handler: order must hold anyway
    got.push(`${m.id}:${name}`);
  });
  b.on('chat:count', (n) => {
    got.push(`count:${n}`);
  });
  await a.send('chat:name', 'ann');
  await a.send('chat:count', 1);
  await a.send('chat:name', 'bob');
  await a.send('chat:say', { text: 'nobody listens' });
  await a.close();
  assert.is(await b.dispatching, undefined, 'ends cleanly at the peer close');
  assert.equal(got, ['18:ann', 'count:1', '18:bob']);
  assert.is(b.stats.unhandled, 1);
  off();
  assert.throws(
    () => b.on('nope' as 'chat:name', () => {}),
    (e: unknown) => e instanceof UnknownMessageTypeError,
  );
});

test('an unknown type id: recv() rejects with ERR_UNKNOWN_TYPE for that frame and the channel goes on', async () => {
  const { b, rawA } = pair(APP);
  await rawA.send(Buffer.from('??'), { type: 999 });
  await rawA.send(Buffer.from([0, 0, 0, 5]), { type: 17 });
  const error = await b.recv().then(
    () => assert.unreachable('should reject'),
    (e: unknown) => e,
  );
  assert.instance(error, UnknownMessageTypeError);
  const e = error as UnknownMessageTypeError;
  assert.is(e.code, 'ERR_UNKNOWN_TYPE');
  assert.is(e.id, 999);
  assert.is(e.body?.toString(), '??');
  assert.equal(await b.recv(), { name: 'chat:count', id: 17, data: 5 });
  assert.is(b.stats.unknownType, 1);
  await rawA.close();
  await b.closed;
});

test('a body the codec cannot unpack: MessageDecodeError (ERR_DECODE), the channel goes on', async () => {
  const { b, rawA } = pair(APP);
  await rawA.send(Buffer.from([1, 2]), { type: 17 }); // not 4 bytes
  await rawA.send(Buffer.from([0xc1]), { type: 16 }); // 0xC1 is never valid msgpack
  await rawA.send(Buffer.from([0, 0, 0, 9]), { type: 17 });
  for (const type of ['chat:count', 'chat:say']) {
    const e = (await b.recv().catch((x: unknown) => x)) as MessageDecodeError;
    assert.instance(e, MessageDecodeError);
    assert.is(e.code, 'ERR_DECODE');
    assert.is(e.type, type);
    assert.ok(e.cause instanceof Error);
  }
  assert.is((await b.recv()).data, 9);
  assert.is(b.stats.decodeErrors, 2);
  await rawA.close();
  await b.closed;
});

test('the on() dispatcher reports unknown types and handler errors to onError and goes on', async () => {
  const { b, rawA } = pair(APP);
  const errors: string[] = [];
  const counts: number[] = [];
  b.onError((e) => {
    errors.push((e as Error & { code?: string }).code ?? e.message);
  });
  b.on('chat:count', (n) => {
    if (n === 2) throw new Error('boom');
    counts.push(n);
  });
  await rawA.send(Buffer.from([0, 0, 0, 1]), { type: 17 });
  await rawA.send(Buffer.alloc(0), { type: 4242 });
  await rawA.send(Buffer.from([0, 0, 0, 2]), { type: 17 });
  await rawA.send(Buffer.from([0, 0, 0, 3]), { type: 17 });
  await rawA.close();
  await b.dispatching;
  assert.equal(counts, [1, 3]);
  assert.equal(errors, ['ERR_UNKNOWN_TYPE', 'boom']);
});

test('for await throws an unknown type (ending the loop, not the channel)', async () => {
  const { b, rawA } = pair(APP);
  await rawA.send(Buffer.alloc(0), { type: 3000 });
  await rawA.send(Buffer.from([0, 0, 0, 1]), { type: 17 });
  let thrown: unknown;
  try {
    for await (const _ of b) assert.unreachable();
  } catch (e) {
    thrown = e;
  }
  assert.instance(thrown, UnknownMessageTypeError);
  assert.equal(await b.recv(), { name: 'chat:count', id: 17, data: 1 });
  await rawA.close();
  await b.closed;
});

test('send() rejects bad data before writing and unknown names; the channel stays usable', async () => {
  const { a, b } = pair(APP);
  assert.instance(await a.send('chat:count', -1).catch((x: unknown) => x), RangeError);
  const e = await a.send('chat:nope' as 'chat:count', 1).catch((x: unknown) => x);
  assert.instance(e, UnknownMessageTypeError);
  await a.send('chat:count', 8);
  assert.is((await b.recv()).data, 8);
  await a.close();
  await b.closed;
});

test('construction checks the framing: a type field that holds every id', () => {
  const [a, b] = Channel.pair({ framing: msg });
  assert.throws(
    () => new TypedChannel(APP, a),
    (e: unknown) => e instanceof TypeError && /type field/.test(e.message),
  );
  const [c, d] = Channel.pair({ framing: ltprotocol() }); // u8 type field
  const wide = new Protocol().define('big', 300);
  assert.throws(
    () => new TypedChannel(wide, c),
    (e: unknown) => e instanceof RangeError && /300/.test(e.message),
  );
  for (const ch of [a, b, c, d]) ch.destroy();
});

test('typed send/recv/on over TCP on 127.0.0.1', async () => {
  const listener = Channel.listen('127.0.0.1', 0, { framing: packetmqFraming });
  const { port } = await listener.listening;
  const server = (async () => {
    const ch = new TypedChannel(APP, (await listener.accept())!);
    // echo server: says back what it hears, counting
    let n = 0;
    ch.on('chat:say', async (d) => {
      await ch.send('chat:say', { text: d.text.toUpperCase(), n: ++n });
    });
    ch.on('chat:count', (c) => ch.send('chat:count', c + 1));
    return ch.dispatching;
  })();
  const client = new TypedChannel(APP, await Channel.connect('127.0.0.1', port, { framing: packetmqFraming }));
  await client.send('chat:say', { text: 'hello' });
  await client.send('chat:count', 41);
  assert.equal(await client.recv(), { name: 'chat:say', id: 16, data: { text: 'HELLO', n: 1 } });
  assert.equal(await client.recv(), { name: 'chat:count', id: 17, data: 42 });
  await client.close();
  assert.is(await server, undefined); // the dispatch loop ended cleanly
  await listener.close();
});

test('recv() after the peer closed rejects with ChannelClosedError', async () => {
  const { a, b } = pair(APP);
  await a.close();
  const e = await b.recv().catch((x: unknown) => x);
  assert.instance(e, ChannelClosedError);
});

test.run();
