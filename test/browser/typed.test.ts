/**
 * The browser build's framings and typed layer (src/browser/lengthPrefixed.ts, msg.ts, and
 * Node's TypedChannel, Protocol and codecs over the browser Channel), run here on `ws`'s WebSocket
 * class (test/browser/chromium.test.ts runs the bundle in chromium): the length-prefixed framings
 * write the bytes Node's write and decode any chunking, refusing bad headers with typed errors;
 * send({ type, signal }) and recv({ timeout, signal }) behave as in Node; a TypedChannel in the
 * page talks to a typed Server over ws:// with every built-in codec, and an unknown type id is a
 * typed error that leaves the channel open.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import {
  Channel as NodeChannel,
  Server,
  lengthPrefixed as nodeLengthPrefixed,
  ltprotocol as nodeLtprotocol,
  int32 as nodeInt32,
  type Framing,
} from '../../channel.js';
import {
  Channel,
  MessageTooLargeError,
  ProtocolError,
  Protocol,
  TypedChannel,
  UnknownMessageTypeError,
  int32,
  json,
  lengthPrefixed,
  ltprotocol,
  msg,
  msgpack,
  raw,
  uint32,
  utf8String,
  type BrowserFraming,
} from '../../src/browser/index.js';

const Impl = WebSocket as unknown as new (url: string) => globalThis.WebSocket;

/** The same framing in Node and in the browser build, by name. */
const pairs: [string, Framing, BrowserFraming][] = [
  ["ltprotocol('H', 'B')", nodeLtprotocol(), ltprotocol()],
  ["ltprotocol('I', 'H')", nodeLtprotocol('I', 'H'), ltprotocol('I', 'H')],
  ['int32', nodeInt32, int32],
  [
    'packetmq-like: [u32 len of type+body][u16 type]',
    nodeLengthPrefixed({ lengthSize: 4, typeSize: 2, lengthAdjustment: 2 }),
    lengthPrefixed({ lengthSize: 4, typeSize: 2, lengthAdjustment: 2 }),
  ],
  [
    'little-endian u64 length after 2 pad bytes, u32 type',
    nodeLengthPrefixed({ lengthSize: 8, littleEndian: true, lengthOffset: 2, typeSize: 4 }),
    lengthPrefixed({ lengthSize: 8, littleEndian: true, lengthOffset: 2, typeSize: 4 }),
  ],
];

test("the length-prefixed framings write the headers Node's write, and decode them cut anywhere", () => {
  for (const [name, node, browser] of pairs) {
    const frames = [0, 1, 300, Math.min(70_000, browser.maxEncodableSize)].map((length, i) => ({
      type: browser.hasType ? [0, 7, browser.maxType, 1][i]! : 0,
      data: new Uint8Array(length).map((_, j) => (j * 7 + i) & 0xff),
    }));
    const parts: Uint8Array[] = [];
    for (const f of frames) {
      const header = browser.header(f.data.length, f.type);
      const nodeHeader = Buffer.alloc(node.maxHeaderLength);
      const end = node.writeHeader(nodeHeader, 0, f.data.length, f.type);
      assert.equal([...header], [...nodeHeader.subarray(0, end)], `${name}: header of ${f.data.length} bytes`);
      parts.push(header, f.data);
    }
    const stream = Buffer.concat(parts);
    for (const step of [1, 5, 4096, stream.length]) {
      const got: { type: number; data: Uint8Array }[] = [];
      const decoder = browser.createDecoder(1 << 20);
      for (let at = 0; at < stream.length; at += step) {
        decoder.push(stream.subarray(at, at + step), (data, type) => got.push({ type, data: Uint8Array.from(data) }));
      }
      assert.ok(decoder.atBoundary, `${name}: at a boundary after the last frame`);
      assert.is(decoder.offset, stream.length);
      assert.equal(got, frames, `${name}, chunks of ${step}`);
    }
  }
});

test('bad headers: a body above maxMessageSize is refused from its header, a length below the header a ProtocolError', () => {
  const big = ltprotocol('I', 'H');
  const decoder = big.createDecoder(1000);
  assert.throws(
    () => decoder.push(big.header(1001, 1), () => assert.unreachable('no frame')),
    (e: unknown) => e instanceof MessageTooLargeError,
  );
  const short = ltprotocol();
  assert.throws(
    () => short.createDecoder(1000).push(Uint8Array.of(0, 2, 1), () => assert.unreachable('no frame')),
    (e: unknown) => e instanceof ProtocolError && (e as ProtocolError).offset === 0,
  );
  assert.throws(() => short.header(70_000, 1), RangeError);
  assert.throws(() => short.header(1, 256), RangeError);
  assert.throws(() => lengthPrefixed({ lengthSize: 3 as never }), RangeError);
});

test('the MSG decoder hands out the same frames one byte at a time as in one chunk', () => {
  const stream = Buffer.from('\r\nMSG 3\r\nabc\r\nMSG 0\r\n\r\nMSG 2\r\nde', 'latin1');
  for (const step of [1, 2, stream.length]) {
    const got: string[] = [];
    const decoder = msg.createDecoder(100);
    for (let at = 0; at < stream.length; at += step)
      decoder.push(stream.subarray(at, at + step), (data, type) => got.push(`${type}:${Buffer.from(data).toString()}`));
    assert.equal(got, ['0:abc', '0:', '0:de']);
    assert.ok(decoder.atBoundary);
  }
});

test('send({ type }) on a typed framing, checked as in Node; an aborted send never goes out; recv() times out or aborts taking nothing', async () => {
  const listener = NodeChannel.listen({ host: '127.0.0.1', port: 0, ws: true, framing: nodeLtprotocol() });
  const { port } = await listener.listening;
  const page = await Channel.connect(`ws://127.0.0.1:${port}/`, { WebSocket: Impl, framing: ltprotocol() });
  const server = (await listener.accept())!;
  await page.send('hi', { type: 7 });
  const frame = await server.recvFrame();
  assert.equal([frame.type, frame.data.toString()], [7, 'hi']);
  const refused = await page.send('x', { type: 256 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(refused, RangeError);
  const aborted = new AbortController();
  aborted.abort(new Error('never mind'));
  const abortedSend = await page.send('y', { type: 1, signal: aborted.signal }).catch((e: Error) => e.message);
  assert.is(abortedSend, 'never mind');
  const timedOut = await page.recv({ timeout: 20 }).catch((e: Error & { code?: string }) => e.code);
  assert.is(timedOut, 'ERR_TIMEOUT');
  const stop = new AbortController();
  const stopped = page.recvFrame({ signal: stop.signal }).catch((e: Error) => e.message);
  stop.abort(new Error('stopped'));
  assert.is(await stopped, 'stopped');
  await server.send(Buffer.from('after'), { type: 3 });
  const next = await page.recvFrame();
  assert.equal([next.type, Buffer.from(next.data).toString()], [3, 'after']); // neither waiter took it
  await page.send('z', { type: 2 });
  assert.is((await server.recvFrame()).data.toString(), 'z'); // the aborted 'y' never went out
  await page.close();
  await listener.close();
});

test('a TypedChannel in the page talks to a typed Server over ws:// with every built-in codec; an unknown type leaves it open', async () => {
  const proto = new Protocol({ maxId: 255 })
    .define('text', 1, utf8String)
    .define('count', 2, uint32)
    .define('bytes', 3, raw)
    .define('doc', 4, json<{ a: number[] }>())
    .define('packed', 5, msgpack<{ name: string; at: number }>());
  const server = new Server({
    framing: nodeLtprotocol('I', 'B'),
    protocol: proto,
    onMessage: async (conn, message) => {
      if (message.name === 'text' && message.data === 'unknown, please') {
        await conn.channel.send(Buffer.from('?'), { type: 99 }); // a type the protocol lacks
      } else await conn.send(message.name, message.data as never); // echo it, re-packed by Node
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0, ws: { path: '/typed' } });
  const channel = await Channel.connect(`ws://127.0.0.1:${port}/typed`, {
    WebSocket: Impl,
    framing: ltprotocol('I', 'B'),
  });
  const page = new TypedChannel(proto, channel);
  await page.send('text', 'héllo');
  await page.send('count', 4_000_000_000);
  await page.send('bytes', Uint8Array.of(1, 2, 3));
  await page.send('doc', { a: [1, 2] });
  await page.send('packed', { name: 'x', at: 1.5 });
  const got = [];
  for (let i = 0; i < 5; i++) got.push(await page.recv());
  assert.equal(
    got.map((m) => [m.name, m.id]),
    [
      ['text', 1],
      ['count', 2],
      ['bytes', 3],
      ['doc', 4],
      ['packed', 5],
    ],
  );
  assert.is(got[0]!.data, 'héllo');
  assert.is(got[1]!.data, 4_000_000_000);
  assert.equal([...(got[2]!.data as Uint8Array)], [1, 2, 3]);
  assert.equal(got[3]!.data, { a: [1, 2] });
  assert.equal(got[4]!.data, { name: 'x', at: 1.5 });
  await page.send('text', 'unknown, please');
  const unknown = await page.recv().catch((e: unknown) => e);
  assert.instance(unknown, UnknownMessageTypeError);
  assert.is((unknown as UnknownMessageTypeError).id, 99);
  assert.is(page.stats.unknownType, 1);
  const seen: string[] = [];
  page.on('text', (text) => void seen.push(text)); // the dispatcher, as in Node
  await page.send('text', 'still open');
  while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(seen, ['still open']);
  await page.close();
  assert.is(await page.dispatching, undefined);
  await server.close();
});

test.run();
