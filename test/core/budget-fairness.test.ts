/**
 * The memory budget is fair and bounded in time (issue 22 items 3 and 9), scaled down: a 256 KiB
 * budget, bodyTimeout 1 s, raw TCP peers on 127.0.0.1 that announce big bodies and send one byte.
 * - A connection waiting for budget still times out (its wait is its own announcement's doing).
 * - A small message is not held behind idle announcers: waiters are served smallest first, and
 *   while anyone waits, a holder whose body does not come gives its memory up sooner.
 * - Closing, or the peer's end, never allocates a body that is not wholly in hand.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, type Listener } from '../../channel.js';
import { openHandles, resultWithin, sleep, unhandled } from '../helpers.js';

const KiB = 1024;
const header = (length: number): Buffer => Buffer.from(`\r\nMSG ${length}\r\n`);
const frame = (body: Buffer): Buffer => Buffer.concat([header(body.length), body]);
const patterned = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};

/** A listener whose accepted channels are all kept (and each read by a recv() loop when `read`). */
async function server(memoryBudget: number, bodyTimeout: number) {
  const listener: Listener = Channel.listen('127.0.0.1', 0, { memoryBudget, bodyTimeout });
  const { port } = await listener.listening;
  const sockets: net.Socket[] = [];
  const channels: Channel[] = [];
  const connect = async (first: Buffer): Promise<{ socket: net.Socket; ch: Channel }> => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(first);
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
  return { connect, end };
}

test('20 idle announcers neither starve a smaller message nor outlive their timeouts', async () => {
  const { connect, end } = await server(256 * KiB, 1000);
  try {
    const announcers: Channel[] = [];
    for (let i = 0; i < 20; i++) {
      // 256 KiB announced, one byte sent: the first holds the whole budget, the others wait.
      const { ch } = await connect(Buffer.concat([header(256 * KiB), Buffer.from([i])]));
      ch.recv().catch(() => {}); // the application reads: nothing is unread
      announcers.push(ch);
    }
    await sleep(50);
    const good = patterned(128 * KiB, 7);
    const { ch } = await connect(frame(good));
    const got = await resultWithin(ch.recv(), 3000);
    assert.ok(got !== 'pending', 'the 128 KiB message arrived while idle announcers held and waited for the budget');
    assert.equal(got, good);
    // Every announcer is closed by a timeout, waiting or holding, within a few bodyTimeouts.
    const ends = await resultWithin(Promise.all(announcers.map((a) => a.closed)), 4000);
    assert.ok(ends !== 'pending', `${announcers.filter((a) => a.isOpen).length} of 20 announcers still open`);
    for (const error of ends as (Error | undefined)[]) assert.is((error as { code?: string }).code, 'ERR_TIMEOUT');
  } finally {
    await end();
  }
});

/** Record every allocation of at least `min` bytes made through Buffer while `fn` runs. */
async function allocations(min: number, fn: () => Promise<void>): Promise<number[]> {
  const seen: number[] = [];
  const slow = Buffer.allocUnsafeSlow;
  const fast = Buffer.allocUnsafe;
  Buffer.allocUnsafeSlow = (n: number) => {
    if (n >= min) seen.push(n);
    return slow(n);
  };
  Buffer.allocUnsafe = (n: number) => {
    if (n >= min) seen.push(n);
    return fast(n);
  };
  try {
    await fn();
  } finally {
    Buffer.allocUnsafeSlow = slow;
    Buffer.allocUnsafe = fast;
  }
  return seen;
}

test('closing connections whose announced bodies wait for memory allocates none of those bodies', async () => {
  const { connect, end } = await server(256 * KiB, 0);
  try {
    const waiting: Channel[] = [];
    for (let i = 0; i < 6; i++) {
      const { ch } = await connect(Buffer.concat([header(1024 * KiB), Buffer.from([i])]));
      waiting.push(ch);
    }
    await sleep(50);
    const seen = await allocations(1024 * KiB, async () => {
      await Promise.all(waiting.map((ch) => ch.close({ timeout: 200 }).catch(() => {})));
    });
    assert.equal(seen, [], 'no 1 MiB body allocated to be thrown away');
  } finally {
    await end();
  }
});

test('peers whose announced bodies wait for memory and then disconnect together: nothing allocated, each end noticed', async () => {
  const { connect, end } = await server(256 * KiB, 0);
  try {
    const peers: { socket: net.Socket; ch: Channel }[] = [];
    for (let i = 0; i < 6; i++) peers.push(await connect(Buffer.concat([header(1024 * KiB), Buffer.from([i])])));
    await sleep(50);
    const seen = await allocations(1024 * KiB, async () => {
      for (const p of peers) p.socket.end();
      const ends = await resultWithin(Promise.all(peers.map((p) => p.ch.closed)), 2000);
      assert.ok(ends !== 'pending', 'every end noticed');
      // The first one's body was allocated before (it fit alone); each end is a frame cut short.
      for (const error of ends as (Error | undefined)[])
        assert.is((error as { code?: string }).code, 'ERR_UNEXPECTED_EOF');
    });
    assert.equal(seen, [], 'no announced body allocated for a peer that has left');
  } finally {
    await end();
  }
});

test('no unhandled rejection, socket or timer left', async () => {
  for (let i = 0; i < 100 && openHandles().length > 0; i++) await sleep(10);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
