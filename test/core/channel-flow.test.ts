/**
 * Backpressure both ways and the send queue's limits, to the byte, on a stream driven by hand
 * (transport.ts): `highWaterMark` (reading pauses while more than it is unread, resumes once
 * recv() has drained half), `sendHighWaterMark` (sends resolve at once below it and wait for
 * 'drain' from it on, in call order), `maxQueuedBytes` (a send that would queue more is refused,
 * the channel stays open; a single message alone is always taken), tinyproto's answers (reading
 * stops while the peer leaves a send high-water mark of them unread, and resumes on 'drain'), and
 * what send() does on a channel that is closing. README "Channel API" and "FAQ: What bounds
 * memory?"; docs/framings.md for tinyproto.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, msg, tinyproto } from '../../channel.js';
import { encode } from '../framing/codec.js';
import { intactWhileUnreadOver, rejectsWith, slabsToSend16MiB } from '../helpers.js';
import { ManualStream, state, tinyprotoOver, turn, within } from './transport.js';

/**
 * How the receive high-water mark counts: each unread message is its body plus 64 bytes of the
 * channel's bookkeeping, so that empty messages count too (src/core/channel.ts MESSAGE_OVERHEAD).
 */
const PER_MESSAGE = 64;
/** A message whose unread size (body + PER_MESSAGE) is `counted` bytes. */
const counting = (counted: number): Buffer => Buffer.alloc(counted - PER_MESSAGE, counted & 0xff);
/** A msg frame: `\r\nMSG <length>\r\n` (10 bytes for a 2-digit length), then the body. */
const msgFrame = (body: Buffer): Buffer => encode(msg, body);

test('highWaterMark: reading pauses once more than it is unread, and resumes once recv() has drained it to half', async () => {
  const s = new ManualStream();
  const ch = new Channel(s, { highWaterMark: 1000 });
  const messages = [counting(64), counting(500), counting(436), counting(64), counting(200)];
  for (const m of messages.slice(0, 3)) s.feed(msgFrame(m));
  await turn();
  assert.is(ch.bufferedMessages, 3);
  assert.not.ok(ch.holdsReading, 'exactly highWaterMark unread (1000): still reading');
  s.feed(msgFrame(messages[3]!)); // 1064 unread
  await turn();
  assert.ok(ch.holdsReading, 'more than highWaterMark unread: reading paused');
  s.feed(msgFrame(messages[4]!)); // arrives, but is not read while paused
  await turn();
  assert.is(ch.bufferedMessages, 4, 'nothing read while paused');
  assert.equal(await ch.recv(), messages[0]); // 1000 unread
  await turn();
  assert.ok(ch.holdsReading, 'still above half of highWaterMark');
  assert.equal(await ch.recv(), messages[1]); // 500 unread: half
  await turn();
  assert.not.ok(ch.holdsReading, 'drained to half: reading again');
  assert.is(ch.bufferedMessages, 3, 'what waited in the stream is read now');
  for (const m of messages.slice(2)) assert.equal(await ch.recv(), m);
  ch.destroy();
});

test('highWaterMark: a message taken by a waiting recv() is never counted as unread', async () => {
  const s = new ManualStream();
  const ch = new Channel(s, { highWaterMark: 100 });
  const big = Buffer.alloc(5000, 7);
  const waiting = ch.recv();
  s.feed(msgFrame(big));
  assert.equal(await waiting, big);
  await turn();
  assert.not.ok(ch.holdsReading);
  assert.is(ch.bufferedMessages, 0);
  // Unread, the same message pauses reading; taken, reading resumes.
  s.feed(msgFrame(big));
  await turn();
  assert.ok(ch.holdsReading);
  assert.equal(await ch.recv(), big);
  await turn();
  assert.not.ok(ch.holdsReading);
  ch.destroy();
});

test('sendHighWaterMark: sends resolve at once while the transport holds less than the mark; from the mark on they wait for drain, in call order', async () => {
  const s = new ManualStream({ hold: true, writableHighWaterMark: 1 });
  const ch = new Channel(s, { sendHighWaterMark: 100 });
  const body = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);
  // Frames of 50 bytes: a 10-byte header and 40 bytes of body.
  const first = ch.send(body(40, 1));
  const second = ch.send(body(40, 2)); // 50 held: under the mark
  assert.is(ch.queuedBytes, 100);
  assert.is(await state(first), 'resolved');
  assert.is(await state(second), 'resolved');
  // Now the transport holds exactly the mark (the two frames, batched in one write).
  assert.is(s.writableLength, 100);
  const third = ch.send(body(40, 3));
  const fourth = ch.send(body(40, 4));
  assert.is(await state(third), 'pending', 'at the mark: waits for drain');
  assert.is(await state(fourth), 'pending');
  assert.is(s.written.length, 1, 'nothing more written before drain');
  s.release(); // the peer reads: 'drain'
  await within(Promise.all([third, fourth]));
  await turn();
  s.release();
  assert.equal(s.wire(), Buffer.concat([1, 2, 3, 4].map((f) => msgFrame(body(40, f)))), 'every frame, in call order');
  assert.is(s.written.length, 2, 'the frames that waited are batched too: one write');
  assert.is(ch.queuedBytes, 0);
  // The same again, once the queue is empty.
  const again = [5, 6, 7, 8].map((f) => ch.send(body(40, f)));
  assert.is(await state(again[3]!), 'pending');
  for (let i = 0; i < 5 && (await state(Promise.all(again))) === 'pending'; i++) s.release();
  await within(Promise.all(again));
  await turn();
  s.release();
  assert.equal(s.wire(), Buffer.concat([1, 2, 3, 4, 5, 6, 7, 8].map((f) => msgFrame(body(40, f)))));
  ch.destroy();
});

test('a send waiting for drain writes nothing until the transport has room: many queued sends go out in order, each after its turn', async () => {
  const s = new ManualStream({ hold: true, writableHighWaterMark: 1 });
  const ch = new Channel(s, { sendHighWaterMark: 64 });
  const bodies = Array.from({ length: 12 }, (_, i) => Buffer.alloc(30 + i, i));
  const sends = bodies.map((b) => ch.send(b));
  const expected = Buffer.concat(bodies.map(msgFrame));
  for (let round = 0; round < 20 && s.wire().length < expected.length; round++) {
    await turn();
    // While writes are held, never more than about the mark (plus one frame) sits in the transport.
    assert.ok(s.writableLength <= 64 + 60, `held ${s.writableLength}`);
    s.release();
  }
  await within(Promise.all(sends));
  assert.equal(s.wire(), expected);
  ch.destroy();
});

test('maxQueuedBytes: a send that would queue more than it is refused (SendQueueFullError), one that reaches it exactly is taken; the channel stays open', async () => {
  const s = new ManualStream({ hold: true, writableHighWaterMark: 1 });
  const ch = new Channel(s, { sendHighWaterMark: 100, maxQueuedBytes: 1000 });
  const first = ch.send(Buffer.alloc(90, 1)); // a 100-byte frame, under sendHighWaterMark
  await turn();
  const queued = ch.queuedBytes;
  assert.is(queued, 100);
  const fill = ch.send(Buffer.alloc(1000 - queued, 2)); // queued + size = maxQueuedBytes exactly: taken
  assert.is(ch.queuedBytes, 1000);
  const empty = ch.send(Buffer.alloc(0)); // adds nothing: taken
  const refused = await rejectsWith(ch.send(Buffer.alloc(1)), 'ERR_SEND_QUEUE_FULL');
  assert.equal(
    [
      (refused as { size?: number }).size,
      (refused as { queued?: number }).queued,
      (refused as { limit?: number }).limit,
    ],
    [1, 1000, 1000],
  );
  assert.ok(ch.isOpen, 'a refused send leaves the channel open');
  for (let i = 0; i < 10 && (await state(Promise.all([first, fill, empty]))) === 'pending'; i++) s.release();
  await within(Promise.all([first, fill, empty]));
  s.release();
  assert.equal(
    s.wire(),
    Buffer.concat([
      encode(ch.framing, Buffer.alloc(90, 1)),
      encode(ch.framing, Buffer.alloc(900, 2)),
      encode(ch.framing, Buffer.alloc(0)),
    ]),
  );
  assert.is(ch.queuedBytes, 0);
  ch.destroy();
});

test('maxQueuedBytes: a single message larger than the cap is taken when nothing else is queued, on the queued path too', async () => {
  // tinyproto sends always queue (each waits for its answer); a handshake makes early sends queue.
  for (const options of [{ framing: tinyproto }, { auth: { key: 'k' } }]) {
    const [a, b] = Channel.pair({ ...options, maxQueuedBytes: 10 });
    const big = Buffer.alloc(100, 9);
    const sent = a.send(big);
    const refused = a.send(Buffer.alloc(1)); // 100 queued now
    await rejectsWith(refused, 'ERR_SEND_QUEUE_FULL');
    await within(sent);
    assert.equal(await within(b.recv()), big);
    a.destroy();
    b.destroy();
  }
});

test('over TCP, every message arrives intact while the socket holds queued writes (write slabs are refilled only once written)', async () => {
  await intactWhileUnreadOver(Channel.listen('127.0.0.1', 0), (port) =>
    Channel.connect('127.0.0.1', port, { highWaterMark: 16 * 1024 }),
  );
});

test('over TCP, both ends refill their write slabs: 16 MiB of 1 KiB messages take a few 64 KiB slabs, not one per 64 KiB', async () => {
  // The other end is a plain socket reading with 'data' events (Node reads into memory of its
  // own), so every 64 KiB Buffer.allocUnsafeSlow is a write slab of the sending Channel.
  const frames = 16 * 1024 * (1024 + 12);
  let received = 0;
  const server = net.createServer((s) => s.on('data', (d: Buffer) => void (received += d.length)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  const client = net.connect(port, '127.0.0.1');
  let read = 0;
  client.on('data', (d: Buffer) => void (read += d.length));
  try {
    const connected = await Channel.connect('127.0.0.1', (server.address() as net.AddressInfo).port);
    const fromConnect = await slabsToSend16MiB(connected);
    const fromAccept = await slabsToSend16MiB((await listener.accept())!);
    for (let i = 0; i < 200 && (received < frames || read < frames); i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(received, frames, 'every frame arrived (from the connecting side)');
    assert.is(read, frames, 'every frame arrived (from the accepting side)');
    // One per 64 KiB would be 260 each; refilled, at most the send high-water mark's worth (1 MiB,
    // 16) are in flight at once, fewer when the process's spare slabs serve.
    assert.ok(fromConnect <= 40, `connecting side: ${fromConnect} slabs allocated`);
    assert.ok(fromAccept <= 40, `accepting side: ${fromAccept} slabs allocated`);
  } finally {
    client.destroy();
    server.close();
    await listener.close();
  }
});

test('a send() made after close() rejects with ChannelClosedError and never reaches the peer; what was sent before does', async () => {
  const [a, b] = Channel.pair();
  await a.send('before');
  const closing = a.close();
  const late = rejectsWith(a.send('late'), 'ERR_CHANNEL_CLOSED');
  const lateBig = rejectsWith(a.send(Buffer.alloc(100_000)), 'ERR_CHANNEL_CLOSED');
  await Promise.all([late, lateBig, closing]);
  assert.is(String(await b.recv()), 'before');
  await rejectsWith(b.recv(), 'ERR_CHANNEL_CLOSED');
  assert.equal(b.stats.messagesReceived, 1);
  b.destroy();
});

test('bodies over 16 KiB are handed to the transport without a copy (a Buffer or any Uint8Array view)', async () => {
  const s = new ManualStream();
  const ch = new Channel(s);
  const backing = new Uint8Array(64 * 1024 + 10);
  const asBuffer = Buffer.from(backing.buffer, 5, 20_000);
  const asView = backing.subarray(30_000, 50_000);
  for (const body of [asBuffer, asView]) {
    await ch.send(body);
    const same = s.written.find(
      (c) => c.buffer === body.buffer && c.byteOffset === body.byteOffset && c.length === body.length,
    );
    assert.ok(same, 'the body itself was written');
  }
  // A string is sent as its UTF-8 bytes.
  await ch.send('héllo');
  await turn();
  assert.equal(s.written.at(-1), encode(ch.framing, Buffer.from('héllo', 'utf8')));
  ch.destroy();
});

// ---------------------------------------------------------------- tinyproto answers

/** A tinyproto channel on a ManualStream, past its handshake, with nothing written or held. */
async function tinyChannel(options: {
  sendHighWaterMark: number;
  highWaterMark?: number;
}): Promise<{ s: ManualStream; ch: Channel }> {
  const s = new ManualStream({ hold: true, writableHighWaterMark: 1 });
  const ch = await tinyprotoOver(s, options);
  await turn();
  s.release(); // our init byte
  s.written.length = 0;
  assert.is(ch.queuedBytes, 0);
  return { s, ch };
}

/** An empty tinyproto message: its 4-byte size (the body follows our answer; it has none). */
const EMPTY = Buffer.from([0, 0, 0, 0]);

test('tinyproto: reading stops once a send high-water mark of our answers is unread by the peer, and resumes on drain', async () => {
  const { s, ch } = await tinyChannel({ sendHighWaterMark: 3 });
  s.feed(EMPTY);
  await turn();
  s.feed(EMPTY);
  await turn();
  assert.not.ok(ch.holdsReading, 'two answers unread: under the mark');
  s.feed(EMPTY); // the third answer reaches the mark
  await turn();
  assert.ok(ch.holdsReading, 'three answers unread: reading stops');
  assert.is(ch.queuedBytes, 3);
  s.feed(EMPTY);
  await turn();
  assert.is(ch.bufferedMessages, 3, 'the fourth header waits unread');
  s.release(); // the peer reads its answers: 'drain'
  await turn();
  assert.not.ok(ch.holdsReading, 'reading again');
  assert.is(ch.bufferedMessages, 4);
  s.release();
  assert.equal(s.wire(), Buffer.alloc(4, 0xff), 'one FF answer per header');
  ch.destroy();
});

test("tinyproto: close() while reading is paused for unread answers reads on, so the peer's end arrives and close() resolves", async () => {
  const { s, ch } = await tinyChannel({ sendHighWaterMark: 3 });
  for (let i = 0; i < 3; i++) {
    s.feed(EMPTY);
    await turn();
  }
  assert.ok(ch.holdsReading, 'three answers unread: reading stops');
  const closing = ch.close({ timeout: 1000 });
  await turn();
  s.release(); // the peer reads its answers...
  s.feed(null as unknown as Uint8Array); // ...and ends
  await within(closing);
  assert.is(await ch.closed, undefined);
  assert.is(ch.bufferedMessages, 0);
});

test('tinyproto: with unread messages above highWaterMark too, drain alone does not resume reading; recv() does once both allow it', async () => {
  // Each empty message counts 64 bytes unread: the third one passes highWaterMark 150 as its
  // answer reaches sendHighWaterMark 3, so both pause reading at once.
  {
    const { s, ch } = await tinyChannel({ sendHighWaterMark: 3, highWaterMark: 150 });
    for (let i = 0; i < 3; i++) {
      s.feed(EMPTY);
      await turn();
    }
    assert.ok(ch.holdsReading);
    s.release(); // answers read, messages still unread
    await turn();
    assert.ok(ch.holdsReading, 'drain does not resume while messages are unread');
    await ch.recv();
    await turn();
    assert.ok(ch.holdsReading, '128 bytes unread: above half of highWaterMark');
    await ch.recv();
    await turn();
    assert.not.ok(ch.holdsReading, 'drained to half, answers read: reading again');
    ch.destroy();
  }
  {
    const { s, ch } = await tinyChannel({ sendHighWaterMark: 3, highWaterMark: 150 });
    for (let i = 0; i < 3; i++) {
      s.feed(EMPTY);
      await turn();
    }
    await ch.recv();
    await ch.recv();
    await turn();
    assert.ok(ch.holdsReading, 'messages drained, but our answers are still unread');
    s.release();
    await turn();
    assert.not.ok(ch.holdsReading, 'answers read too: reading again');
    ch.destroy();
  }
});

test.run();
