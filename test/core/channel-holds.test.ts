/**
 * The one decision about reading (Channel.#holds, #readOn) and its bounded read-ahead: while
 * decoding is held for a reason of ours, the channel still reads READ_AHEAD bytes ahead, undecoded,
 * so a peer that leaves (FIN or reset) is noticed; the transport pauses once that is full. A peer
 * that half-closes after sending loses nothing: recv() delivers every message, then reports the end.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, ChannelClosedError, type Listener } from '../../channel.js';
import { READ_AHEAD } from '../../src/core/channel.js';
import { openHandles, resultWithin, sleep, unhandled } from '../helpers.js';
import { ManualStream, turn } from './transport.js';

const frame = (body: Buffer): Buffer => Buffer.concat([Buffer.from(`\r\nMSG ${body.length}\r\n`), body]);
/** `n` numbered messages of `size` bytes, as the bodies and as one stream of frames. */
function numbered(n: number, size: number): { bodies: Buffer[]; wire: Buffer } {
  const bodies = Array.from({ length: n }, (_, i) => Buffer.alloc(size, i & 0xff));
  return { bodies, wire: Buffer.concat(bodies.map(frame)) };
}

/** A listener with a small highWaterMark and a raw TCP peer whose bytes the test writes. */
async function rawPeer(options: { highWaterMark?: number; idleTimeout?: number } = {}) {
  const listener: Listener = Channel.listen('127.0.0.1', 0, { highWaterMark: 4096, ...options });
  const { port } = await listener.listening;
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const ch = (await listener.accept())!;
  const end = async (): Promise<void> => {
    socket.destroy();
    ch.destroy();
    await ch.closed;
    await listener.close();
  };
  return { socket, ch, end };
}

test('while decoding is held, what arrives is read ahead in order, the transport pauses at READ_AHEAD, and all of it is decoded once recv() drains', async () => {
  const s = new ManualStream();
  const ch = new Channel(s, { highWaterMark: 1000 });
  const { bodies, wire } = numbered(400, 500); // 200 KiB, far more than highWaterMark + READ_AHEAD
  for (let at = 0; at < wire.length; at += 4096) s.feed(wire.subarray(at, at + 4096));
  await turn();
  assert.ok(ch.holdsReading, 'more than highWaterMark unread: decoding held');
  assert.ok(ch.bufferedMessages <= 1 + 4096 / 500, `${ch.bufferedMessages} decoded: at most one chunk past the mark`);
  assert.ok(ch.readAheadBytes >= READ_AHEAD, 'read ahead up to the bound');
  assert.ok(ch.readAheadBytes < READ_AHEAD + 4096, `${ch.readAheadBytes} read ahead: no more than one chunk over it`);
  assert.ok(s.isPaused(), 'the transport is paused once the read-ahead is full');
  assert.ok(ch.peerBlocked, 'the peer cannot reach us now');
  for (const body of bodies) assert.equal(ch.tryRecv() ?? (await ch.recv({ timeout: 2000 })), body);
  assert.not.ok(ch.holdsReading);
  assert.not.ok(s.isPaused(), 'everything read: reading on');
  ch.destroy();
});

test("a peer's FIN while decoding is held is noticed at once, and recv() still delivers every message it sent before the end", async () => {
  const { socket, ch, end } = await rawPeer();
  try {
    const { bodies, wire } = numbered(40, 200); // 8 KiB: twice highWaterMark, well within the read-ahead
    socket.end(wire);
    // Nobody reads: decoding is held above highWaterMark. The end must still be seen.
    assert.is(await resultWithin(ch.closed, 2000), undefined, 'closed resolved: a clean end');
    assert.not.ok(ch.isOpen);
    for (const body of bodies) assert.equal(ch.tryRecv() ?? (await ch.recv({ timeout: 2000 })), body);
    const error = await ch.recv().catch((e: unknown) => e);
    assert.instance(error, ChannelClosedError, 'then the end');
  } finally {
    await end();
  }
});

test('a peer that resets while decoding is held is noticed at once: closed reports the reset', async () => {
  const { socket, ch, end } = await rawPeer();
  try {
    const { wire } = numbered(40, 200);
    socket.write(wire);
    for (let i = 0; i < 200 && ch.bufferedMessages < 20; i++) await sleep(5);
    assert.ok(ch.bufferedMessages >= 20, 'more than highWaterMark unread');
    socket.resetAndDestroy();
    const closed = await resultWithin(ch.closed, 2000);
    assert.is((closed as { code?: string } | undefined)?.code, 'ECONNRESET');
    assert.not.ok(ch.isOpen);
  } finally {
    await end();
  }
});

test('a peer that goes silent while decoding is held (read-ahead not full) still meets idleTimeout', async () => {
  const { socket, ch, end } = await rawPeer({ idleTimeout: 200 });
  try {
    socket.write(numbered(40, 200).wire);
    for (let i = 0; i < 200 && ch.bufferedMessages < 20; i++) await sleep(5);
    assert.ok(ch.bufferedMessages >= 20, 'more than highWaterMark unread');
    assert.not.ok(ch.peerBlocked, 'but the peer can reach us');
    const closed = await resultWithin(ch.closed, 2000);
    assert.is((closed as { code?: string } | undefined)?.code, 'ERR_TIMEOUT');
  } finally {
    await end();
  }
});

test('bytesRead moves as bytes arrive, read-ahead included (what a heartbeat above watches)', async () => {
  const s = new ManualStream();
  const ch = new Channel(s, { highWaterMark: 100 });
  const { wire } = numbered(3, 100);
  s.feed(wire);
  await turn();
  assert.ok(ch.holdsReading);
  const before = ch.bytesRead;
  assert.is(before, wire.length);
  s.feed(frame(Buffer.from('pong')));
  await turn();
  assert.is(ch.bytesRead, before + frame(Buffer.from('pong')).length);
  assert.is(ch.bufferedMessages, 3, 'read ahead, not decoded');
  ch.destroy();
});

test('a trickle of tiny reads while decoding is held counts each read: the read-ahead pauses after about 1,000 of them, not 64 Ki', async () => {
  const s = new ManualStream();
  const ch = new Channel(s, { highWaterMark: 100 });
  s.feed(numbered(2, 100).wire);
  await turn();
  assert.ok(ch.holdsReading);
  let fed = 0;
  for (; fed < 64 * 1024 && !s.isPaused(); fed++) {
    s.feed(Buffer.from([0x0d])); // one byte per read
    if (fed % 256 === 0) await turn();
  }
  await turn();
  assert.ok(s.isPaused(), 'paused');
  assert.ok(fed <= READ_AHEAD / 64 + 256, `paused after ${fed} one-byte reads`);
  ch.destroy();
});

test('no unhandled rejection, socket or timer left', async () => {
  for (let i = 0; i < 100 && openHandles().length > 0; i++) await sleep(10);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
