/**
 * Memory held by partial and unread bodies is budgeted per listener: 64 connections that each
 * start a 64 MiB message and send 16 MiB of it must not make the victim hold a gigabyte (the
 * default budget, 256 MiB, lets a few bodies in and keeps the others waiting with reading
 * paused), a good client is served throughout, and a body that stops making progress is cut by
 * bodyTimeout so nobody holds the budget for ever. The big test's victim runs as a child process.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, Server } from '../../channel.js';
import { echoServer, openHandles, resultWithin, sleep, unhandled } from '../helpers.js';
import { childKind, firstRss, peakRss, spawnChild, tell } from './child.js';

const MiB = 2 ** 20;
const header = (n: number): Buffer => Buffer.from(`\r\nMSG ${n}\r\n`);

if (childKind === 'listener-defaults') {
  // An echo server with every default, reporting its RSS.
  const { port } = await echoServer();
  tell({ port });
  setInterval(() => tell({ t: Date.now(), rss: process.memoryUsage().rss }), 100).unref();
}

/** Open a connection, send `bytes`, and leave it open (never reading). */
async function partial(port: number, bytes: Buffer[]): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((r) => socket.once('connect', () => r()));
  for (const b of bytes) socket.write(b); // what the kernel does not take waits in our buffer
  return socket;
}

if (childKind === undefined) {
  test('64 connections x 16 MiB of 64 MiB bodies add at most 300 MiB with the defaults; a good client is served', async () => {
    const child = spawnChild(import.meta.url, 'listener-defaults');
    const attackers: net.Socket[] = [];
    try {
      const { port } = await child.next();
      const base = await firstRss(child);
      const chunk = Buffer.alloc(MiB, 0x61);
      for (let i = 0; i < 64; i++)
        attackers.push(await partial(port, [header(64 * MiB), ...Array.from({ length: 16 }, () => chunk)]));
      // A good client: served while the attackers hold their connections.
      const good = await Channel.connect('127.0.0.1', port, { timeout: 5000 });
      for (let i = 0; i < 10; i++) {
        await good.send(`hello ${i}`);
        assert.is(String(await good.recv({ timeout: 5000 })), `hello ${i}`);
      }
      await sleep(1500); // let the victim read what it will
      const until = Date.now();
      const peak = await peakRss(child, until);
      const grown = (peak - base) / MiB;
      console.log(`  budget: 64 x 16 MiB partial 64 MiB bodies: victim RSS +${grown.toFixed(0)} MiB`);
      assert.ok(grown <= 300, `the victim grew by ${grown.toFixed(0)} MiB`);
      await good.close();
    } finally {
      for (const s of attackers) s.destroy();
      await child.kill();
    }
  });

  test('a connection whose next body does not fit the budget waits (reading paused) and goes on when memory is released', async () => {
    const listener = Channel.listen('127.0.0.1', 0, { memoryBudget: MiB });
    const { port } = await listener.listening;
    const body = Buffer.alloc(800 * 1024, 0x62);
    // A holds 800 KiB of the budget with a body half sent.
    const a = await partial(port, [header(body.length), body.subarray(0, 400 * 1024)]);
    const chA = (await listener.accept())!;
    await sleep(100);
    // B sends a whole 800 KiB message: it does not fit next to A's, so it waits.
    const b = await partial(port, [header(body.length), body]);
    const chB = (await listener.accept())!;
    const bRecv = chB.recv();
    assert.is(await resultWithin(bRecv, 300), 'pending', "B's body waits for memory");
    assert.ok(chB.isOpen);
    // A completes and its message is taken: B's goes on.
    a.write(body.subarray(400 * 1024));
    assert.is((await chA.recv({ timeout: 2000 })).length, body.length);
    const bGot = await resultWithin(bRecv, 2000);
    assert.is(bGot === 'pending' ? 'pending' : bGot.length, body.length);
    a.destroy();
    b.destroy();
    await Promise.all([chA.closed, chB.closed]);
    await listener.close();
  });

  test('a body that stops making progress is cut by bodyTimeout (TimeoutError), releasing its memory', async () => {
    const server = new Server({ bodyTimeout: 300, memoryBudget: MiB, onError: () => {} });
    const closes: unknown[] = [];
    server.onClose = (_c, reason) => void closes.push(reason);
    const { port } = await server.listen(0, '127.0.0.1');
    const started = Date.now();
    const stalled = await partial(port, [header(900 * 1024), Buffer.alloc(100 * 1024)]); // then nothing
    try {
      for (let i = 0; i < 300 && closes.length === 0; i++) await sleep(10);
      assert.is((closes[0] as { code?: string } | undefined)?.code, 'ERR_TIMEOUT');
      assert.ok(Date.now() - started < 2000, 'cut within the bound');
      // Its memory is free again: a body that needs the whole budget now goes through.
      const ch = await Channel.connect('127.0.0.1', port);
      const echoed = new Promise<number>((resolve) => {
        server.onMessage = (conn, m) => resolve((m as Buffer).length);
      });
      await ch.send(Buffer.alloc(900 * 1024));
      assert.is(await resultWithin(echoed, 2000), 900 * 1024);
      await ch.close();
    } finally {
      stalled.destroy();
      await server.close({ timeout: 1000 }).catch(() => {});
    }
  });

  test('no unhandled rejection, socket or timer left', async () => {
    for (let i = 0; i < 100 && openHandles().length > 0; i++) await sleep(10);
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
