/**
 * Channel.release(): a large message given back is read into again by a later body of about its
 * size, on every transport that reads a large body in pieces; and release() takes nothing it should
 * not (a view, a copy, a small or foreign body, a view of what the in-memory peer wrote, a second
 * release, after close); it keeps the two released last.
 */
import { randomBytes, randomInt } from 'node:crypto';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, int32, ltprotocol, msg, type Framing } from '../../channel.js';
import { openHandles, sleep, unhandled } from '../helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A message whose every byte depends on its index and position, so a mix-up shows. */
function pattern(i: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let j = 0; j < size; j += 4096) b.fill((i * 31 + j / 4096) & 0xff, j, Math.min(size, j + 4096));
  b[size - 1] = i & 0xff;
  return b;
}

async function tcpPair(options: { framing?: Framing; maxMessageSize?: number } = {}): Promise<[Channel, Channel]> {
  const listener = Channel.listen('127.0.0.1', 0, options);
  const { port } = await listener.listening;
  const accepted = listener.accept();
  const client = await Channel.connect('127.0.0.1', port, options);
  const server = (await accepted)!;
  await listener.close();
  return [client, server];
}

test('TCP, both ends: a released 1 MiB message holds the next one, every byte intact', async () => {
  const [client, server] = await tcpPair({ maxMessageSize: 8 * MiB });
  for (const [from, to] of [
    [client, server],
    [server, client],
  ] as const) {
    const memories = new Set<ArrayBufferLike>();
    for (let i = 0; i < 8; i++) {
      const sent = pattern(i, MiB);
      await from.send(sent);
      const got = await to.recv();
      assert.ok(got.equals(sent), `message ${i} intact`);
      memories.add(got.buffer);
      assert.ok(to.release(got), `message ${i} taken back`);
    }
    assert.is(memories.size, 1, 'every message after the first reused the released memory');
  }
  await client.close();
  await server.closed;
});

test('a body reuses released memory only of its size up to twice it: not smaller, not far bigger', async () => {
  const [a, b] = await tcpPair({ maxMessageSize: 8 * MiB });
  await a.send(pattern(0, MiB));
  const first = await b.recv();
  assert.ok(b.release(first));
  await a.send(pattern(1, 2 * MiB)); // too big for it
  const bigger = await b.recv();
  assert.is.not(bigger.buffer, first.buffer);
  await a.send(pattern(2, 100 * KiB)); // it would waste more than half
  const smaller = await b.recv();
  assert.is.not(smaller.buffer, first.buffer);
  await a.send(pattern(3, 600 * KiB)); // within: a view of its start
  const fits = await b.recv();
  assert.is(fits.buffer, first.buffer);
  assert.is(fits.byteOffset, 0);
  assert.is(fits.length, 600 * KiB);
  assert.ok(fits.equals(pattern(3, 600 * KiB)));
  assert.ok(Buffer.isBuffer(fits));
  await a.close();
});

test('release() refuses what it must not reuse, and keeps the two released last', async () => {
  const [a, b] = await tcpPair({ maxMessageSize: 8 * MiB });
  const got: Buffer[] = [];
  for (let i = 0; i < 4; i++) {
    await a.send(pattern(i, MiB));
    got.push(await b.recv());
  }
  const [m0, m1, m2, m3] = got as [Buffer, Buffer, Buffer, Buffer];
  assert.is(b.release(m0.subarray(1)), false, 'a view');
  assert.is(b.release(m0.subarray(0)), false, 'a view of all of it');
  assert.is(b.release(Buffer.from(m0)), false, 'a copy');
  assert.is(b.release(Buffer.alloc(MiB)), false, 'a buffer it never gave out');
  assert.is(b.release('text' as unknown as Buffer), false, 'not a buffer');
  assert.is(b.release(m0), true);
  assert.is(b.release(m0), false, 'twice');
  assert.is(b.release(m1), true);
  assert.is(b.release(m2), true, 'a third spare, in place of the oldest (m0)');
  // m1 and m2 are the spares now: the next two bodies take them, and a third gets new memory.
  await a.send(pattern(4, MiB));
  await a.send(pattern(5, MiB));
  await a.send(pattern(6, MiB));
  const r4 = await b.recv();
  const r5 = await b.recv();
  const r6 = await b.recv();
  assert.equal(new Set([r4.buffer, r5.buffer]), new Set([m1.buffer, m2.buffer]));
  assert.ok(![m0.buffer, m1.buffer, m2.buffer, m3.buffer].includes(r6.buffer), 'the dropped spare is not reused');
  assert.ok(r4.equals(pattern(4, MiB)) && r5.equals(pattern(5, MiB)) && r6.equals(pattern(6, MiB)));
  assert.is(b.release(m1), false, 'the old Buffer over memory now holding another message');
  assert.is(b.release(m0), false, 'a dropped spare, released again');
  assert.is(b.release(m3), true);
  await a.close();
  await b.closed;
  await a.send(Buffer.alloc(0)).catch(() => {});
  assert.is(b.release(r4), false, 'after close');
});

test('spares that fit no later body give way to newer releases', async () => {
  const [a, b] = await tcpPair({ maxMessageSize: 8 * MiB });
  // Two 1 MiB spares, then a stream of 3 MiB messages: neither spare fits one (too small).
  await a.send(pattern(0, MiB));
  await a.send(pattern(1, MiB));
  const [m0, m1] = [await b.recv(), await b.recv()];
  assert.ok(b.release(m0) && b.release(m1));
  const seen = new Set<ArrayBufferLike>();
  for (let i = 2; i < 6; i++) {
    await a.send(pattern(i, 3 * MiB));
    const got = await b.recv();
    assert.ok(got.equals(pattern(i, 3 * MiB)));
    seen.add(got.buffer);
    assert.ok(b.release(got), `3 MiB message ${i} taken back`);
  }
  assert.is(seen.size, 1, 'every 3 MiB message after the first reused the first one');
  await a.close();
});

test('small bodies and bodies that are views of what arrived are never taken', async () => {
  const [a, b] = Channel.pair();
  await a.send(Buffer.alloc(60 * KiB, 1));
  const small = await b.recv();
  assert.is(b.release(small), false, 'under 64 KiB');
  // Over the in-memory pair each write arrives as one chunk (the pair's copy of it): a message is
  // a view of that chunk, not the channel's to reuse.
  await a.send(Buffer.alloc(100 * KiB, 2));
  const paired = await b.recv();
  assert.ok(paired.equals(Buffer.alloc(100 * KiB, 2)));
  assert.is(b.release(paired), false, 'a view of what the in-memory peer wrote');
  // A 100 KiB message that arrives in one chunk is a view of that chunk: not the channel's to reuse.
  const stream = new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() });
  const ch = new Channel(stream, { framing: int32 });
  const chunk = Buffer.alloc(4 + 100 * KiB, 7);
  chunk.writeUInt32BE(100 * KiB, 0);
  stream.push(chunk);
  const view = await ch.recv();
  assert.is(view.buffer, chunk.buffer, 'a view of what arrived');
  assert.is(view.length, 100 * KiB);
  assert.is(ch.release(view), false, "what arrived is not the channel's");
  ch.destroy();
  await a.close();
});

for (const framing of [msg, int32, ltprotocol('I')]) {
  test(`${framing.name}: a raw peer's random split points, releasing every message: every byte intact`, async () => {
    const listener = Channel.listen('127.0.0.1', 0, { framing, maxMessageSize: 4 * MiB });
    const { port } = await listener.listening;
    const accepted = listener.accept();
    const raw = net.connect(port, '127.0.0.1');
    const ch = (await accepted)!;
    await listener.close();
    const sizes = Array.from({ length: 30 }, (_, i) =>
      i % 3 === 0 ? randomInt(1, 70 * KiB) : randomInt(64 * KiB, 3 * MiB),
    ).concat([MiB, MiB]);
    const bodies = sizes.map((n) => randomBytes(n));
    const frame = (b: Buffer): Buffer => {
      const header = Buffer.alloc(framing.maxHeaderLength);
      return Buffer.concat([header.subarray(0, framing.writeHeader(header, 0, b.length, 0)), b]);
    };
    // All but the last frame go at once; the last (1 MiB, like the one before it) only once the
    // one before it has been released, so it is read into that one whatever came before.
    const stream = Buffer.concat(bodies.slice(0, -1).map(frame));
    let lastMayGo!: () => void;
    const released = new Promise<void>((resolve) => (lastMayGo = resolve));
    void (async () => {
      for (let at = 0; at < stream.length;) {
        const n = Math.min(stream.length - at, randomInt(1, 400 * KiB));
        if (!raw.write(stream.subarray(at, at + n))) await new Promise((r) => raw.once('drain', r));
        at += n;
      }
      await released;
      raw.write(frame(bodies.at(-1)!));
    })().catch((error: Error) => ch.destroy(error));
    try {
      let reused = 0;
      const seen = new Set<ArrayBufferLike>();
      for (const [i, body] of bodies.entries()) {
        const got = await ch.recv();
        assert.ok(got.equals(body), `message ${i} (${body.length} bytes) intact`);
        if (seen.has(got.buffer)) reused++;
        seen.add(got.buffer);
        const taken = ch.release(got);
        if (i === bodies.length - 2) {
          assert.ok(taken, 'a 1 MiB message read in pieces is taken back');
          lastMayGo();
        }
      }
      assert.ok(reused > 0, 'released memory was read into again');
    } finally {
      raw.destroy();
      await ch.closed;
    }
  });
}

test('nothing left behind: no unhandled rejection, socket or timer', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
