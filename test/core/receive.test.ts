/**
 * The direct receive path (src/core/reader.ts): plain TCP and Unix sockets, connected or
 * accepted, read large bodies straight into the message and everything else into a slab that is
 * reused only when nothing refers to it. Same messages, same limits, same backpressure as the
 * 'data' path, which TLS, Channel.pair and wrapped streams keep.
 */
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  int32,
  ltprotocol,
  msg,
  pythonConnection,
  tinyproto,
  type ConnectOptions,
  type Framing,
  type ListenOptions,
} from '../../channel.js';
import { DIRECT_READS, DirectReader, SLAB_SIZE } from '../../src/core/reader.js';
import { bothWays, makeCertificate, openHandles, pattern, sleep, tlsTest, unhandled } from '../helpers.js';

const MiB = 1024 * 1024;
const withOpenssl = tlsTest('direct receive path, TLS');

/** A connected pair over TCP (or a Unix socket): [client, accepted]. */
async function tcpPair(
  options: ListenOptions & ConnectOptions = {},
  clientOptions: ConnectOptions = {},
): Promise<[Channel, Channel]> {
  const listener =
    options.path !== undefined
      ? Channel.listen({ ...options, path: options.path })
      : Channel.listen('127.0.0.1', 0, options);
  const { port } = await listener.listening;
  const accepted = listener.accept();
  const where = options.path !== undefined ? { path: options.path } : { host: '127.0.0.1', port };
  const client = await Channel.connect({ ...options, ...clientOptions, ...where });
  const server = (await accepted)!;
  await listener.close();
  return [client, server];
}

if (DIRECT_READS) {
  test('both ends read large bodies straight into the message (stats.bytesReadDirect), every byte intact', async () => {
    const [client, server] = await tcpPair();
    await bothWays(client, server, [4 * MiB, 1, 200_000, 0, MiB + 3, 70_000]);
    for (const ch of [client, server]) {
      const s = ch.stats;
      assert.ok(s.bytesReadDirect > 4 * MiB, `read directly: ${s.bytesReadDirect}`);
      assert.ok(s.bytesReadDirect <= s.bytesReceived);
    }
    await client.close();
    await server.closed;
  });

  test('bodies under 64 KiB never take the direct path (they come out of the slab)', async () => {
    const [client, server] = await tcpPair();
    for (let i = 0; i < 50; i++) void client.send(pattern(i, 60_000));
    for (let i = 0; i < 50; i++) assert.equal(await server.recv(), pattern(i, 60_000));
    assert.is(server.stats.bytesReadDirect, 0);
    await client.close();
    await server.closed;
  });

  test('a Unix socket reads directly too', async () => {
    const path = join(tmpdir(), `msgchannel-direct-${process.pid}.sock`);
    const [client, server] = await tcpPair({ path });
    const big = pattern(5, 3 * MiB);
    void client.send(big);
    assert.equal(await server.recv(), big);
    assert.ok(server.stats.bytesReadDirect > 2 * MiB);
    await client.close();
    await server.closed;
  });

  for (const [name, framing] of [
    ['msg', msg],
    ['ltprotocol I', ltprotocol('I')],
    ['int32', int32],
    ['tinyproto', tinyproto],
    ['pythonConnection', pythonConnection()],
  ] as [string, Framing][]) {
    test(`${name}: mixed sizes both ways over the direct path, in order and intact`, async () => {
      const [client, server] = await tcpPair({ framing, maxMessageSize: 8 * MiB });
      const sizes = [0, 1, SLAB_SIZE - 1, SLAB_SIZE, SLAB_SIZE + 1, 2 * MiB + 5, 10, 300_000];
      for (const [from, to] of [
        [client, server],
        [server, client],
      ] as const) {
        const sent = sizes.map((n, i) => pattern(i + 1, n));
        const done = Promise.all(sent.map((m) => from.send(m)));
        for (const m of sent) assert.equal(await to.recv(), m, `${name}: ${m.length} bytes`);
        await done;
      }
      assert.ok(server.stats.bytesReadDirect > MiB, `${name}: ${server.stats.bytesReadDirect}`);
      await client.close();
      await server.closed;
    });
  }

  test('arbitrary write boundaries: frames split anywhere by a raw peer arrive whole and in order (20 runs)', async () => {
    const listener = Channel.listen('127.0.0.1', 0, { maxMessageSize: 4 * MiB });
    const { port } = await listener.listening;
    for (let run = 0; run < 20; run++) {
      const accepted = listener.accept();
      const raw = net.connect(port, '127.0.0.1');
      raw.setNoDelay(true);
      await new Promise((r) => raw.once('connect', r));
      const ch = (await accepted)!;
      const sizes = Array.from(
        { length: 12 },
        () => [0, 5, 1000, 40_000, 70_000, 300_000, 1_500_000][randomBytes(1)[0]! % 7]!,
      );
      const bodies = sizes.map((n, i) => pattern(run * 100 + i, n));
      const wire = Buffer.concat(bodies.flatMap((b) => [Buffer.from(`\r\nMSG ${b.length}\r\n`, 'latin1'), b]));
      const writing = (async () => {
        for (let at = 0; at < wire.length;) {
          const step = 1 + (randomBytes(3).readUIntBE(0, 3) % 200_000);
          raw.write(wire.subarray(at, at + step));
          at += step;
          if (randomBytes(1)[0]! < 64) await sleep(1); // let some pieces arrive as reads of their own
        }
        raw.end();
      })();
      for (const b of bodies) assert.equal(await ch.recv(), b, `run ${run}: ${b.length} bytes`);
      await writing;
      await ch.closed;
      raw.destroy();
    }
    await listener.close();
  });

  test('small messages out of a reused slab never change after they are taken (no aliasing)', async () => {
    const [client, server] = await tcpPair();
    const kept: Buffer[] = [];
    const expected: Buffer[] = [];
    for (let round = 0; round < 40; round++) {
      // A lone small message (a short read, copied out), then a burst (a long read, handed over).
      const n = round % 2 === 0 ? 1 : 400;
      const batch = Array.from({ length: n }, (_, i) => pattern(round * 1000 + i, 100 + (i % 50)));
      for (const m of batch) void client.send(m);
      expected.push(...batch);
      for (let i = 0; i < n; i++) kept.push(await server.recv());
      await sleep(1);
    }
    assert.is(kept.length, expected.length);
    for (let i = 0; i < kept.length; i++) assert.equal(kept[i], expected[i], `message ${i}`);
    await client.close();
    await server.closed;
  });

  test('the send slab is refilled only after writes the kernel took at once: frames queued behind a full socket stay intact', async () => {
    // The peer reads nothing until everything is sent: the kernel takes a few MB, then writes queue
    // in Node (referring to the slab) while later frames are batched.
    let accepted: net.Socket | undefined;
    const server = net.createServer({ pauseOnConnect: true }, (s) => (accepted = s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = await Channel.connect('127.0.0.1', (server.address() as net.AddressInfo).port, {
      maxQueuedBytes: 64 * MiB,
    });
    const count = 12_000;
    const size = (i: number): number => 1 + ((i * 7919) % 1500);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      sends.push(client.send(pattern(i, size(i))));
      if (i % 300 === 299) await new Promise((r) => setImmediate(r)); // one batch per tick
    }
    assert.ok(client.queuedBytes > 0, 'writes were queued behind the full socket');
    const got: Buffer[] = [];
    const decoder = msg.createDecoder({ maxMessageSize: MiB });
    let bad: unknown;
    accepted!.on('data', (c: Buffer) => {
      try {
        decoder.push(c, (b) => got.push(Buffer.from(b)));
      } catch (error) {
        bad ??= error; // bytes overwritten in a queued write break the framing itself
      }
    });
    const ended = new Promise((r) => accepted!.once('end', r));
    accepted!.resume(); // accepted paused: 'data' alone does not start it
    await Promise.all(sends);
    await client.close();
    await ended;
    assert.is(bad, undefined);
    assert.is(got.length, count);
    for (let i = 0; i < count; i++)
      if (!got[i]!.equals(pattern(i, size(i)))) assert.unreachable(`message ${i} differs`);
    accepted!.destroy();
    server.close();
  });

  test('highWaterMark: a receiver that does not read stops reading the socket, on the direct path too', async () => {
    const [client, server] = await tcpPair({ highWaterMark: 2 * MiB });
    const big = Buffer.alloc(MiB, 1);
    let sent = 0;
    const sending = (async () => {
      try {
        for (; sent < 200; sent++) await client.send(big);
      } catch {
        // closed at the end of the test
      }
    })();
    await sleep(300);
    // Held: at most the high-water mark and the message that crossed it, plus the one in progress.
    assert.ok(server.bufferedMessages <= 3, `buffered ${server.bufferedMessages}`);
    assert.ok(sent < 100, `the sender was held back: ${sent} sent`);
    const before = sent;
    for (let i = 0; i < 20; i++) assert.equal(await server.recv(), big);
    await sleep(100);
    assert.ok(sent > before, 'reading resumed');
    client.destroy();
    await sending;
    // What is still unread holds the socket paused; reading the rest lets the end be seen.
    for (;;) {
      try {
        await server.recv();
      } catch {
        break;
      }
    }
    await server.closed;
  });

  test('maxMessageSize is checked from the header: an oversized frame fails that connection with ERR_MESSAGE_TOO_LARGE', async () => {
    const [client, server] = await tcpPair({ maxMessageSize: MiB }, { maxMessageSize: 4 * MiB });
    const big = Buffer.alloc(2 * MiB);
    void client.send(big).catch(() => {});
    const error = await server.recv().catch((e: Error & { code?: string }) => e);
    assert.is((error as { code?: string }).code, 'ERR_MESSAGE_TOO_LARGE');
    await client.closed;
  });
}

withOpenssl('TLS sockets take the data path: same messages, nothing read directly', async () => {
  const { key, cert } = makeCertificate();
  const [client, server] = await tcpPair({ tls: { key, cert, ca: cert }, maxMessageSize: 8 * MiB } as ListenOptions &
    ConnectOptions);
  const big = pattern(3, 2 * MiB);
  void client.send(big);
  assert.equal(await server.recv(), big);
  assert.is(server.stats.bytesReadDirect, 0);
  assert.is(client.stats.bytesReadDirect, 0);
  await client.close();
  await server.closed;
});

test('Channel.pair and a wrapped stream take the data path', async () => {
  const [a, b] = Channel.pair();
  const big = pattern(4, MiB);
  void a.send(big);
  assert.equal(await b.recv(), big);
  assert.is(b.stats.bytesReadDirect, 0);
  await a.close();
  await b.closed;
});

test('DirectReader: short reads are copied out and the slab reused; long reads are handed over; body space is filled in place', () => {
  const reader = new DirectReader();
  const first = reader.onread.buffer();
  assert.is(first.length, SLAB_SIZE);
  // Before a Channel attaches: held, and reading pauses.
  first.fill(9, 0, 3);
  assert.is(reader.onread.callback(3, first), false);
  const got: Buffer[] = [];
  let space: Buffer | null = null;
  let filled = 0;
  reader.attach({ data: (c) => got.push(c), space: () => space, filled: (n) => (filled += n) });
  assert.equal(got, [Buffer.from([9, 9, 9])]);
  assert.is.not(got[0]!.buffer, first.buffer, 'a short read is a copy');
  assert.is(reader.onread.buffer(), first, 'the slab is reused');
  first.fill(1);
  assert.ok(reader.onread.callback(SLAB_SIZE, first));
  assert.is(got[1]!.buffer, first.buffer, 'a long read is handed over as it is');
  const next = reader.onread.buffer();
  assert.is.not(next, first, 'and the next read gets a new slab');
  space = Buffer.alloc(SLAB_SIZE * 2);
  assert.is(reader.onread.buffer(), space);
  assert.ok(reader.onread.callback(1234, space));
  assert.is(filled, 1234);
  assert.is(reader.directBytes, 1234);
  assert.is(got.length, 2);
});

test('nothing left behind: no unhandled rejection, socket or timer', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
