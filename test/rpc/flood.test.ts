/**
 * Floods that used to kill a request/reply peer (issue 22, item 1): a peer that never reads sends
 * pings, or empty requests, as fast as it can. Every answer waits in the victim's send queue, and
 * each one used to cost a few hundred bytes of objects that `maxQueuedBytes` (body bytes only) did
 * not count. The victim runs in a child process with a small heap and reports its heap; the test
 * floods it for a bounded time and checks it is alive, with its heap within a bound. The other
 * envelope kinds (one-way, stray replies and pongs, unknown kinds) are flooded the same way.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Server } from '../../channel.js';
import { childKind, spawnChild, tell, type Child } from '../hardening/child.js';

const MiB = 2 ** 20;
/** The victim's V8 heap cap: before the fixes, either flood passed it within a second or two. */
const HEAP_CAP_MIB = 96;
/** How long each flood lasts: the two that used to kill the victim, and the other message kinds. */
const FLOOD_MS = 2500;
const OTHER_FLOOD_MS = 1500;
/** The most the victim's heap may grow over its idle baseline while flooded. */
const HEAP_BOUND_MIB = 40;

if (childKind === 'rpc-victim') {
  // A Server answering requests (an echo), every other option left at its default.
  const server = new Server({ onRequest: (_conn, body) => body });
  const { port } = await server.listen(0, '127.0.0.1');
  tell({ port });
  setInterval(() => tell({ t: Date.now(), heap: process.memoryUsage().heapUsed }), 50).unref();
}

/** `count` MSG frames of `body`, back to back. */
function frames(body: Buffer, count: number): Buffer {
  const one = Buffer.concat([Buffer.from(`\r\nMSG ${body.length}\r\n`), body]);
  return Buffer.concat(Array.from({ length: count }, () => one));
}

/** Wait for 'drain', at most `ms`. */
function drainedWithin(socket: net.Socket, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      socket.off('drain', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    socket.once('drain', done);
  });
}

/** Write `block` over and over for `ms` (as fast as the victim reads), never reading anything. */
async function flood(port: number, block: Buffer, ms: number): Promise<number> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.pause(); // never read: the victim's answers fill the kernel's buffers, then its own queue
  const end = Date.now() + ms;
  let written = 0;
  while (Date.now() < end && !socket.destroyed) {
    written += block.length;
    if (!socket.write(block)) await drainedWithin(socket, 50);
  }
  socket.destroy();
  return written;
}

/** The highest heap the child reported from now until `ms` have passed. */
async function peakHeap(child: Child, ms: number): Promise<number> {
  const until = Date.now() + ms;
  let peak = 0;
  for (;;) {
    const m = await child.next(5000);
    if (typeof m.heap === 'number') peak = Math.max(peak, m.heap as number);
    if (typeof m.t === 'number' && m.t >= until) return peak;
  }
}

async function floodVictim(what: string, body: Buffer, floodMs = FLOOD_MS): Promise<void> {
  const child = spawnChild(import.meta.url, 'rpc-victim', [`--max-old-space-size=${HEAP_CAP_MIB}`]);
  try {
    const { port } = await child.next();
    let base = Infinity;
    for (let i = 0; i < 5; i++) {
      const m = await child.next();
      if (typeof m.heap === 'number') base = Math.min(base, m.heap as number);
    }
    const [written, peak] = await Promise.all([
      flood(port, frames(body, 8192), floodMs),
      peakHeap(child, floodMs + 300),
    ]);
    const grown = (peak - base) / MiB;
    console.log(`  ${what}: ${(written / MiB).toFixed(0)} MiB sent, victim heap +${grown.toFixed(1)} MiB`);
    assert.ok(grown < HEAP_BOUND_MIB, `the victim's heap grew by ${grown.toFixed(1)} MiB`);
    // Still alive and serving.
    const m = await child.next(5000);
    assert.ok(m.heap > 0);
  } finally {
    await child.kill();
  }
}

if (childKind === undefined) {
  test('child: a ping flood from a peer that never reads leaves an onRequest Server alive, its heap bounded', async () => {
    await floodVictim('ping flood', Buffer.from([0x04]));
  });

  test('child: a flood of empty requests from a peer that never reads leaves an onRequest Server alive, its heap bounded', async () => {
    await floodVictim('empty-request flood', Buffer.from([0x01, 0x00]));
  });

  // Every other kind of envelope a peer may send (the red team's variants): none may grow memory either.
  const kinds: [string, Buffer][] = [
    ['empty one-way messages', Buffer.from([0x00])],
    ['replies to a request id never sent', Buffer.from([0x02, 0x05])],
    ['error replies to a request id never sent', Buffer.from([0x03, 0x05, 0x00])],
    ['pongs never asked for', Buffer.from([0x05])],
    ['envelopes of an unknown kind', Buffer.from([0x09])],
  ];
  for (const [what, body] of kinds) {
    test(`child: a flood of ${what} from a peer that never reads leaves an onRequest Server alive, its heap bounded`, async () => {
      await floodVictim(what, body, OTHER_FLOOD_MS);
    });
  }

  test.run();
}
