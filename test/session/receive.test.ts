/**
 * The receive path of a session: over plain TCP and Unix sockets a DATA segment's bytes are read
 * straight into the Channel's body in progress (stats.bytesReadDirect), cut to the segment and to
 * the window, every byte intact, also across reconnects in the middle of a body; what a paused
 * Channel does not take waits in PendingBytes, whose objects stay few whatever the peer's
 * segments look like.
 */
import * as net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, type SessionListener } from '../../channel.js';
import { DIRECT_READS } from '../../src/core/reader.js';
import { PendingBytes } from '../../src/session/pending.js';
import { DATA, SERVER_HELLO_LENGTH, encodeClientHello } from '../../src/session/wire.js';
import { bothWays, openHandles, pattern, sleep, unhandled, until } from '../helpers.js';
import { ChaosProxy } from './chaos.js';

const MiB = 1024 * 1024;

async function sessionPair(
  listener: SessionListener,
  where: object,
  resume: object | true,
): Promise<[Channel, Channel]> {
  const accepted = listener.accept();
  const client = await Channel.connect({ ...where, resume, maxMessageSize: 16 * MiB });
  return [client, (await accepted)!];
}

if (DIRECT_READS) {
  test('TCP: both ends read large bodies straight from the socket into the message, every byte intact', async () => {
    const listener = Channel.listen('127.0.0.1', 0, { resume: true, maxMessageSize: 16 * MiB });
    const { port } = await listener.listening;
    const [client, server] = await sessionPair(listener, { host: '127.0.0.1', port }, true);
    await bothWays(client, server, [4 * MiB, 1, 200_000, 0, MiB + 3, 70_000, 3 * MiB]);
    for (const ch of [client, server]) {
      const s = ch.stats;
      assert.ok(s.bytesReadDirect > 4 * MiB, `read directly: ${s.bytesReadDirect} of ${s.bytesReceived}`);
      assert.ok(s.bytesReadDirect <= s.bytesReceived);
    }
    await client.close();
    await server.closed;
    await listener.close();
  });

  test('after a large DATA segment the next header is read alone: a body spanning many segments is read almost all directly', async () => {
    const listener = Channel.listen('127.0.0.1', 0, { resume: true, maxMessageSize: 16 * MiB });
    const { port } = await listener.listening;
    const [client, server] = await sessionPair(listener, { host: '127.0.0.1', port }, true);
    // 8 MiB through a 1 MiB window: segments of about a quarter window, as the ACKs open it.
    const body = pattern(7, 8 * MiB);
    void client.send(body);
    assert.equal(await server.recv(), body);
    const direct = server.stats.bytesReadDirect;
    // Before, each segment's header came in a 64 KiB slab read with the DATA after it, copied:
    // about a quarter of the bytes at a quarter-window segment.
    assert.ok(direct >= 0.97 * body.length, `read directly: ${direct} of ${body.length}`);
    await client.close();
    await server.closed;
    await listener.close();
  });

  test('a Unix socket session reads directly too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'msgchannel-session-'));
    const path = join(dir, 's.sock');
    const listener = Channel.listen({ path, resume: true, maxMessageSize: 16 * MiB });
    await listener.listening;
    try {
      const [client, server] = await sessionPair(listener, { path }, true);
      await bothWays(client, server, [3 * MiB, 5, 2 * MiB]);
      assert.ok(server.stats.bytesReadDirect > 2 * MiB);
      assert.ok(client.stats.bytesReadDirect > 2 * MiB);
      await client.close();
      await server.closed;
    } finally {
      await listener.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('connections reset in the middle of large bodies: every body arrives once, intact, in order', async () => {
  const resume = { heartbeat: 500, window: 256 * 1024 };
  const listener = Channel.listen('127.0.0.1', 0, { resume, maxMessageSize: 16 * MiB });
  const { port } = await listener.listening;
  const proxy = await ChaosProxy.start(port);
  const [client, server] = await sessionPair(listener, { host: '127.0.0.1', port: proxy.port }, resume);
  const sizes = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? 2 * MiB + i : 300_000 + i * 1000));
  const sent = sizes.map((n, i) => pattern(i, n));
  const received = (async () => {
    for (const m of sent) assert.equal(await server.recv(), m);
  })();
  // After every other send resolves, the last window of that body is still on its way: cut there.
  let cuts = 0;
  for (let i = 0; i < sent.length; i++) {
    await client.send(sent[i]!);
    if (i % 2 === 0) {
      await proxy.cutConnected();
      cuts++;
    }
  }
  await received;
  await until(() => client.stats.session!.resumes >= cuts, 5000, `a resume for each of ${cuts} cuts`);
  if (DIRECT_READS) assert.ok(server.stats.bytesReadDirect > 0);
  await client.close();
  await server.closed;
  await proxy.close();
  await listener.close();
});

test('a peer sending one-byte DATA segments to a Channel that does not read: held in few objects, then all delivered in order', async () => {
  const listener = Channel.listen('127.0.0.1', 0, { resume: { heartbeat: 5000 }, highWaterMark: 1024 });
  const socket = net.connect((await listener.listening).port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(encodeClientHello({ token: Buffer.alloc(16), received: 0, messages: 0, window: MiB }));
  await new Promise<void>((resolve) => {
    let got = 0;
    const onData = (d: Buffer): void => {
      got += d.length;
      if (got < SERVER_HELLO_LENGTH) return;
      socket.off('data', onData);
      socket.resume(); // read and drop the server's ACKs
      resolve();
    };
    socket.on('data', onData);
  });
  const server = (await listener.accept())!;
  // MSG frames of 100 bytes each, every byte of the stream in a DATA segment of its own: 6 wire bytes per byte.
  const COUNT = 5000;
  const stream = Buffer.concat(
    Array.from({ length: COUNT }, (_, i) => Buffer.concat([Buffer.from('\r\nMSG 100\r\n'), pattern(i, 100)])),
  );
  const heapBefore = process.memoryUsage().heapUsed;
  const wire = Buffer.allocUnsafe(stream.length * 6);
  for (let i = 0; i < stream.length; i++) {
    wire[i * 6] = DATA;
    wire.writeUInt32BE(1, i * 6 + 1);
    wire[i * 6 + 5] = stream[i]!;
  }
  socket.write(wire);
  await until(() => server.readAheadBytes > 0 || server.stats.messagesReceived > 0, 5000, 'the server reading');
  await sleep(300); // all of it arrives while the server's application reads nothing
  const heapGrowth = process.memoryUsage().heapUsed - heapBefore; // the wire bytes are outside the heap
  // One object per byte (555,000 views) would be tens of MiB; coalesced, it is the bytes and a few blocks.
  assert.ok(heapGrowth < 16 * MiB, `heap grew ${(heapGrowth / MiB).toFixed(1)} MiB holding ${stream.length} bytes`);
  for (let i = 0; i < COUNT; i++) assert.equal(await server.recv(), pattern(i, 100));
  socket.destroy();
  server.destroy(); // the session would otherwise wait `keep` for its peer to come back
  await listener.close();
});

test('PendingBytes: small pieces share blocks, large ones are kept as they are, order and bytes kept', () => {
  const pending = new PendingBytes();
  const pieces: Buffer[] = [];
  for (let i = 0; i < 200_000; i++) pieces.push(Buffer.from([i & 0xff]));
  pieces.splice(100_000, 0, pattern(1, 10_000)); // a large piece in the middle
  for (const p of pieces) pending.push(p);
  const all = Buffer.concat(pieces);
  assert.is(pending.length, all.length);
  const out: Buffer[] = [];
  for (let p = pending.shift(); p !== undefined; p = pending.shift()) out.push(p);
  assert.is(pending.length, 0);
  assert.equal(Buffer.concat(out), all);
  // 200,000 one-byte pieces in 64 KiB blocks: 4 blocks, the large piece, one more split of the block around it.
  assert.ok(out.length <= 6, `${out.length} objects for ${pieces.length} pieces`);
  // A piece shifted out is never written over by later pushes.
  const first = Buffer.from([1, 2, 3]);
  pending.push(first);
  const held = pending.shift()!;
  pending.push(Buffer.from([9, 9, 9]));
  assert.equal([...held], [1, 2, 3]);
});

test('nothing left behind: no unhandled rejection, no open handle', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
