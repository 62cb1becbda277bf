/**
 * A listener's `memoryBudget` as its channels see it (README "Listener options"): bodies of
 * 64 KiB and up hold budget from their header until recv() takes them (a waiting recv() takes one
 * at once); smaller ones never count. A connection whose next body does not fit waits with
 * reading paused, keeps every byte in order, and goes on when memory is released; closing it
 * meanwhile is clean. Raw sockets on 127.0.0.1 play the peers, so what each sends is exact; the
 * budgets are small (100 KiB) so each case takes milliseconds. The heavy version, 64 connections
 * against the default budget in a child process, is hardening/budget.test.ts.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, type ChannelOptions, type Framing, type Listener, tinyproto } from '../../channel.js';
import { openHandles, resultWithin, sleep, unhandled } from '../helpers.js';
import { MemoryBudget } from '../../src/core/budget.js';
import { ManualStream, tinyprotoOver, turn } from './transport.js';

const KiB = 1024;
const MiB = KiB * KiB;
/** The smallest body the budget counts (BODY_BUDGET_MIN). */
const BIG = 64 * KiB;

const frame = (body: Buffer): Buffer => Buffer.concat([Buffer.from(`\r\nMSG ${body.length}\r\n`), body]);
/** A body whose bytes say where they are, so any reordering or loss shows. */
const patterned = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};

/**
 * A listener with a small budget, a way to open raw peers (their first bytes written at once) and
 * get each one's accepted channel, and end(), which destroys every peer and channel and closes the
 * listener, so a failing test leaves nothing open.
 */
async function budgeted(
  memoryBudget: number,
  options: { highWaterMark?: number; framing?: Framing; maxMessageSize?: number } = {},
) {
  const listener: Listener = Channel.listen('127.0.0.1', 0, { memoryBudget, ...options });
  const { port } = await listener.listening;
  const sockets: net.Socket[] = [];
  const channels: Channel[] = [];
  const peer = async (first?: Buffer): Promise<{ socket: net.Socket; ch: Channel }> => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.on('data', () => {}); // tinyproto's answers, unread otherwise
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    if (first !== undefined) socket.write(first);
    const ch = (await listener.accept())!;
    channels.push(ch);
    return { socket, ch };
  };
  const end = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    for (const c of channels) c.destroy();
    await Promise.all(channels.map((c) => c.closed));
    await listener.close();
  };
  /** A connection whose one unread message of BIG bytes holds the budget (MSG framing). */
  const holder = async (): Promise<{ a: { socket: net.Socket; ch: Channel }; held: Buffer }> => {
    const a = await peer();
    const held = patterned(BIG, 1);
    a.socket.write(frame(held));
    await buffered(a.ch, 1);
    return { a, held };
  };
  return { peer, holder, end };
}

/** A tinyproto length: 4 bytes, big-endian. */
const u32 = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);

/** Wait until `ch` has `n` unread messages (bounded). */
async function buffered(ch: Channel, n: number): Promise<void> {
  for (let i = 0; i < 200 && ch.bufferedMessages < n; i++) await sleep(5);
  assert.is(ch.bufferedMessages, n, `${n} unread messages`);
}

test('an unread 64 KiB message holds the budget: the next body that does not fit waits, intact, until recv() takes it', async () => {
  const { peer, holder, end } = await budgeted(100 * KiB);
  try {
    const { a, held } = await holder();
    const b = await peer();
    const hello = Buffer.from('hello');
    b.socket.write(frame(hello)); // some bytes of the stream before the big body's
    await buffered(b.ch, 1);
    const first = patterned(BIG, 2);
    const second = patterned(100, 3);
    b.socket.write(Buffer.concat([frame(first), frame(second)]));
    assert.equal(await b.ch.recv(), hello);
    const waiting = b.ch.recv();
    assert.is(await resultWithin(waiting, 100), 'pending', '64 + 64 KiB do not fit in 100 KiB');
    assert.ok(b.ch.isOpen);
    assert.equal(await a.ch.recv(), held); // taken: its 64 KiB are released
    assert.equal(await resultWithin(waiting, 2000), first, 'every byte, in order');
    assert.equal(await b.ch.recv({ timeout: 2000 }), second, 'and what followed it');
  } finally {
    await end();
  }
});

test('a message taken by a waiting recv() releases its memory at once', async () => {
  const { peer, end } = await budgeted(100 * KiB);
  try {
    const a = await peer();
    const b = await peer();
    for (let i = 0; i < 3; i++) {
      const waiting = a.ch.recv();
      const body = patterned(BIG, i);
      a.socket.write(frame(body));
      assert.equal(await resultWithin(waiting, 2000), body);
    }
    // Nothing is held now: another connection's body fits.
    const body = patterned(BIG + 10, 9);
    b.socket.write(frame(body));
    assert.equal(await b.ch.recv({ timeout: 2000 }), body);
  } finally {
    await end();
  }
});

test('messages under 64 KiB neither count nor release: taking many of them frees nothing another connection could use', async () => {
  const { peer, holder, end } = await budgeted(100 * KiB);
  try {
    const { a, held } = await holder(); // 64 KiB held
    // 120 KiB of small messages on another connection: half taken by waiting recvs, half read from the buffer.
    const c = await peer();
    const small = patterned(30 * KiB, 5);
    for (let i = 0; i < 2; i++) {
      const waiting = c.ch.recv();
      c.socket.write(frame(small));
      assert.equal(await resultWithin(waiting, 2000), small);
    }
    c.socket.write(Buffer.concat([frame(small), frame(small)]));
    await buffered(c.ch, 2);
    for (let i = 0; i < 2; i++) assert.equal(c.ch.tryRecv(), small);
    // The budget still holds a's 64 KiB: b's body waits.
    const b = await peer();
    const body = patterned(BIG, 2);
    b.socket.write(frame(body));
    const waiting = b.ch.recv();
    assert.is(await resultWithin(waiting, 100), 'pending');
    assert.equal(await a.ch.recv(), held);
    assert.equal(await resultWithin(waiting, 2000), body);
  } finally {
    await end();
  }
});

test('a connection waiting for memory and for its reader at once reads on only when both allow it', async () => {
  // b's small message passes its highWaterMark (1 byte) and, in the same read, its big body's
  // header finds the budget held: reading pauses for both reasons.
  const { peer, holder, end } = await budgeted(100 * KiB, { highWaterMark: 1 });
  try {
    const { a, held } = await holder();
    const b = await peer();
    const small = patterned(100, 7);
    const big = patterned(BIG, 8);
    const wire = Buffer.concat([frame(small), frame(big)]);
    b.socket.write(wire.subarray(0, 4 * KiB));
    await buffered(b.ch, 1);
    assert.equal(await a.ch.recv(), held); // memory released: b's body may start...
    b.socket.write(wire.subarray(4 * KiB));
    await sleep(100);
    // ...but b's reader has not taken its message: b must not read on.
    assert.ok(b.ch.stats.bytesReceived <= small.length, `b read on: ${b.ch.stats.bytesReceived} bytes decoded`);
    assert.equal(await b.ch.recv(), small);
    assert.equal(await b.ch.recv({ timeout: 2000 }), big);
  } finally {
    await end();
  }
});

test('a reader that drains its messages while its next body waits for memory does not make it read on', async () => {
  const { peer, holder, end } = await budgeted(100 * KiB, { highWaterMark: 1 });
  try {
    const { a, held } = await holder();
    const b = await peer();
    const small = patterned(100, 7);
    const big = patterned(BIG, 8);
    const filler = Buffer.alloc(60 * KiB, 9); // under 64 KiB: not budgeted
    const wire = Buffer.concat([frame(small), frame(big)]);
    b.socket.write(wire.subarray(0, 4 * KiB));
    await buffered(b.ch, 1);
    b.socket.write(wire.subarray(4 * KiB));
    for (let i = 0; i < 64; i++) b.socket.write(frame(filler)); // 4 MiB more, which b must not read yet
    assert.equal(await b.ch.recv(), small); // drained below highWaterMark: but the body still waits for memory
    await sleep(50);
    assert.equal(a.ch.tryRecv(), held); // now it may go on
    assert.equal(await b.ch.recv({ timeout: 2000 }), big);
    await sleep(50);
    assert.ok(b.ch.bufferedMessages <= 2, `${b.ch.bufferedMessages} messages read ahead of a highWaterMark of 1 byte`);
    for (let i = 0; i < 64; i++) assert.equal(await b.ch.recv({ timeout: 2000 }), filler);
  } finally {
    await end();
  }
});

test('a connection waiting for memory stays paused while what it sends drains', async () => {
  const { peer, holder, end } = await budgeted(100 * KiB);
  try {
    const { a, held } = await holder();
    const b = await peer();
    const big = patterned(BIG, 2);
    const filler = Buffer.alloc(60 * KiB, 3); // under 64 KiB: not budgeted
    b.socket.write(frame(big).subarray(0, 1000));
    await sleep(20);
    b.socket.write(frame(big).subarray(1000));
    for (let i = 0; i < 64; i++) b.socket.write(frame(filler)); // 4 MiB more, which b must not read yet
    const waiting = b.ch.recv();
    assert.is(await resultWithin(waiting, 50), 'pending');
    // Meanwhile b sends its peer 1 MiB, which the peer reads: b's socket drains.
    await b.ch.send(Buffer.alloc(1024 * KiB));
    await b.ch.send('and drained');
    await sleep(50);
    assert.equal(a.ch.tryRecv(), held);
    assert.equal(await resultWithin(waiting, 2000), big);
    await sleep(50);
    // Reading resumed only now: up to highWaterMark (1 MiB) of fillers, plus one read.
    assert.ok(b.ch.bufferedMessages <= 2 + Math.ceil((1024 + 64) / 60), `${b.ch.bufferedMessages} messages read ahead`);
  } finally {
    await end();
  }
});

test('memory released that is still not enough for the waiting body: it keeps waiting, reading paused, and goes on once enough is free', async () => {
  const { peer, end } = await budgeted(150 * KiB);
  try {
    const a = await peer();
    const c = await peer();
    const heldA = patterned(70 * KiB, 1);
    const heldC = patterned(70 * KiB, 2);
    a.socket.write(frame(heldA));
    c.socket.write(frame(heldC));
    await buffered(a.ch, 1);
    await buffered(c.ch, 1); // 140 KiB held
    const b = await peer();
    const body = patterned(90 * KiB, 3);
    const next = patterned(100, 4);
    b.socket.write(frame(body).subarray(0, 1000));
    await sleep(20);
    // Then the rest, and 4 MiB of smaller messages (not budgeted) that b must not read meanwhile.
    b.socket.write(Buffer.concat([frame(body).subarray(1000), frame(next)]));
    const filler = Buffer.alloc(60 * KiB, 5);
    for (let i = 0; i < 64; i++) b.socket.write(frame(filler));
    const waiting = b.ch.recv();
    assert.is(await resultWithin(waiting, 50), 'pending');
    assert.equal(c.ch.tryRecv(), heldC); // 70 KiB released: 70 + 90 still do not fit in 150
    assert.is(await resultWithin(waiting, 50), 'pending');
    assert.equal(a.ch.tryRecv(), heldA);
    assert.equal(await resultWithin(waiting, 2000), body);
    // b reads on now, until its highWaterMark (1 MiB) of messages is unread, overshooting by at
    // most one 64 KiB read: had it read on while it waited, it would hold what it read then, too.
    await sleep(50);
    const unread = b.ch.bufferedMessages;
    assert.ok(unread >= 2 && unread <= 2 + Math.ceil((1024 + 64) / 60), `${unread} messages unread`);
    assert.equal(await b.ch.recv(), next);
    for (let i = 0; i < 64; i++) assert.equal(await b.ch.recv({ timeout: 2000 }), filler);
  } finally {
    await end();
  }
});

test('a big body whose header comes in the same read as the handshake waits for memory like any other, and arrives intact', async () => {
  // tinyproto's handshake is one init byte each way: a raw peer sends its init byte, a header and
  // part of the body at once (it need not read our answers first), then the rest.
  const { peer, end } = await budgeted(100 * KiB, { framing: tinyproto });
  try {
    const held = patterned(BIG, 1);
    const a = await peer(Buffer.concat([Buffer.from([0xff]), u32(held.length), held]));
    await buffered(a.ch, 1);
    const body = patterned(BIG, 2);
    const next = patterned(1000, 3);
    const b = await peer(Buffer.concat([Buffer.from([0xff]), u32(body.length), body.subarray(0, 1000)]));
    const waiting = b.ch.recv();
    assert.is(await resultWithin(waiting, 50), 'pending');
    b.socket.write(body.subarray(1000, 30_000));
    await sleep(20);
    b.socket.write(Buffer.concat([body.subarray(30_000), u32(next.length), next]));
    assert.is(await resultWithin(waiting, 50), 'pending');
    assert.equal(await a.ch.recv(), held);
    assert.equal(await resultWithin(waiting, 2000), body);
    assert.equal(await b.ch.recv({ timeout: 2000 }), next);
  } finally {
    await end();
  }
});

test('a body that waits for memory from the read that ended the handshake stops reading: the peer keeps the rest', async () => {
  // Reading must stay paused while the body waits (it resumed after the handshake, reading the
  // whole 16 MiB into the stash, before the fix).
  const { peer, end } = await budgeted(100 * KiB, { framing: tinyproto, maxMessageSize: 32 * MiB });
  try {
    const held = patterned(BIG, 1);
    const a = await peer(Buffer.concat([Buffer.from([0xff]), u32(held.length), held]));
    await buffered(a.ch, 1);
    const body = patterned(16 * MiB, 2);
    const b = await peer(Buffer.concat([Buffer.from([0xff]), u32(body.length), body.subarray(0, 1000)]));
    const waiting = b.ch.recv();
    await sleep(50);
    b.socket.write(body.subarray(1000));
    await sleep(300); // the kernel's buffers fill; then nothing moves while the body waits
    const before = b.socket.writableLength;
    await sleep(300);
    assert.is(await resultWithin(waiting, 10), 'pending');
    assert.is(b.socket.writableLength, before, 'no byte read while it waits');
    assert.ok(before > 8 * MiB, `the peer still holds ${before} of ${body.length} bytes`);
    assert.is(b.ch.stats.bytesReceived, 0);
    assert.equal(await a.ch.recv(), held);
    const got = await resultWithin(waiting, 5000);
    assert.ok(got !== 'pending' && body.equals(got), 'it arrives, intact, once memory is released');
  } finally {
    await end();
  }
});

test('closing a connection while its body waits for memory is clean, and memory released later does not disturb it', async () => {
  const { peer, holder, end } = await budgeted(100 * KiB);
  try {
    const { a, held } = await holder();
    const b = await peer();
    b.socket.write(frame(patterned(BIG, 2)));
    const waiting = b.ch.recv();
    assert.is(await resultWithin(waiting, 100), 'pending');
    const closing = b.ch.close();
    assert.equal(a.ch.tryRecv(), held); // releases memory while b is closing
    await closing;
    assert.is(await b.ch.closed, undefined, 'a clean close');
    assert.is(
      (
        await waiting.then(
          () => undefined,
          (error: { code?: string }) => error,
        )
      )?.code,
      'ERR_CHANNEL_CLOSED',
    );
  } finally {
    await end();
  }
});

test("tinyproto: 'drain' of our answers does not resume reading while a body waits for memory", async () => {
  // Reading is paused for two reasons at once: the peer leaves our answers unread (sendHighWaterMark
  // 3) and the big body's header found the budget held. When the peer reads its answers, the
  // second reason still holds: reading stays paused until memory is released.
  const budget = new MemoryBudget(100 * KiB);
  assert.ok(budget.reserve(BIG, true), 'another connection holds 64 KiB');
  const s = new ManualStream({ hold: true, writableHighWaterMark: 1 });
  const ch = await tinyprotoOver(s, { sendHighWaterMark: 3, budget } as ChannelOptions);
  await turn();
  s.release();
  const body = patterned(80 * KiB, 5);
  const empty = u32(0);
  s.feed(Buffer.concat([empty, empty, empty, u32(body.length), body.subarray(0, 10)]));
  await turn();
  assert.ok(ch.holdsReading, 'paused: answers unread, and the body waits for memory');
  s.release(); // the peer reads its answers: 'drain'
  await turn();
  assert.ok(ch.holdsReading, 'still paused: the body still waits for memory');
  budget.release(BIG);
  await turn();
  assert.not.ok(ch.holdsReading, 'memory released: reading again');
  s.feed(body.subarray(10));
  for (let i = 0; i < 3; i++) assert.equal(await ch.recv({ timeout: 1000 }), Buffer.alloc(0));
  assert.equal(await ch.recv({ timeout: 1000 }), body);
  ch.destroy();
});

test('no unhandled rejection, socket or timer left', async () => {
  for (let i = 0; i < 100 && openHandles().length > 0; i++) await sleep(10);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
