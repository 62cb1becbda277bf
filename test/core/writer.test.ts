/**
 * The send side's frame writer (src/core/writer.ts) against a recording stream: small frames are
 * batched into one write per tick (or per full slab), big bodies go out under cork uncopied, raw
 * answer bytes keep their place among the frames, and nothing is written once the stream is done.
 */
import type { Duplex } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { msg, tinyproto } from '../../channel.js';
import { FrameWriter, writesDoneAtCallback } from '../../src/core/writer.js';
import { encode } from '../framing/codec.js';

/** A stream that records each write (and whether it came under cork). */
function recorder() {
  const writes: { bytes: Buffer; corked: boolean }[] = [];
  let corked = 0;
  const stream = {
    destroyed: false,
    writableEnded: false,
    cork: () => void corked++,
    uncork: () => void corked--,
    write: (bytes: Uint8Array) => {
      writes.push({ bytes: Buffer.from(bytes), corked: corked > 0 });
      return true;
    },
  };
  return { stream, writes, wire: () => Buffer.concat(writes.map((w) => w.bytes)) };
}

const tick = (): Promise<void> => new Promise((r) => process.nextTick(r));

test('small frames written in one tick leave in one write, in order; buffered counts them until then', async () => {
  const r = recorder();
  const w = new FrameWriter(r.stream as unknown as Duplex, msg);
  const bodies = ['a', '', 'hello', 'x'.repeat(1000)].map((s) => Buffer.from(s));
  for (const b of bodies) void w.write(b, 0);
  const expected = Buffer.concat(bodies.map((b) => encode(msg, b)));
  assert.is(w.buffered, expected.length);
  assert.equal(r.writes, [], 'nothing before the tick');
  await tick();
  assert.is(r.writes.length, 1);
  assert.equal(r.wire(), expected);
  assert.is(w.buffered, 0);
  assert.is(w.sent, 4);
  assert.is(w.sentBytes, 1006);
  // A second batch goes out on its own tick, again as one write.
  void w.write(Buffer.from('again'), 0);
  void w.write(Buffer.from('more'), 0);
  await tick();
  assert.is(r.writes.length, 2);
  assert.equal(r.writes[1]!.bytes, Buffer.concat([encode(msg, 'again'), encode(msg, 'more')]));
});

test('16 KiB is the largest body copied into the batch; a bigger one goes out at once, under cork, after what was batched', async () => {
  const r = recorder();
  const w = new FrameWriter(r.stream as unknown as Duplex, msg);
  const copied = Buffer.alloc(16 * 1024, 1);
  void w.write(copied, 0);
  assert.equal(r.writes, [], '16 KiB waits for the tick');
  const big = Buffer.alloc(16 * 1024 + 1, 2);
  void w.write(big, 0);
  // The batch first (flushed), then the header and the body itself, not a copy.
  assert.is(r.writes.length, 3);
  assert.equal(r.writes[0]!.bytes, encode(msg, copied));
  assert.equal(r.writes[1]!.bytes, Buffer.from(`\r\nMSG ${big.length}\r\n`));
  assert.equal([r.writes[1]!.corked, r.writes[2]!.corked], [true, true]);
  assert.equal(r.writes[2]!.bytes, big);
  assert.is(w.sent, 2);
  assert.is(w.sentBytes, copied.length + big.length);
  await tick();
  assert.is(r.writes.length, 3, 'nothing left for the tick');
});

test('frames filling more than a slab (64 KiB) in one tick: every byte, in order, in a few writes', async () => {
  const r = recorder();
  const w = new FrameWriter(r.stream as unknown as Duplex, msg);
  const bodies: Buffer[] = [];
  let seed = 7;
  for (let i = 0; i < 60; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    bodies.push(Buffer.alloc(seed % (16 * 1024 + 1), i));
  }
  for (const b of bodies) void w.write(b, 0);
  await tick();
  assert.equal(r.wire(), Buffer.concat(bodies.map((b) => encode(msg, b))));
  const total = r.wire().length;
  assert.ok(r.writes.length <= Math.ceil(total / (48 * 1024)) + 1, `${r.writes.length} writes for ${total} bytes`);
  assert.ok(r.writes.every((x) => x.bytes.length <= 64 * 1024));
});

test('raw answer bytes keep their place among the frames and are batched with them, however many', async () => {
  const r = recorder();
  const w = new FrameWriter(r.stream as unknown as Duplex, tinyproto);
  const expected: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    w.writeBytes(Buffer.from([0xff]));
    expected.push(Buffer.from([0xff]));
    void w.write(Buffer.from(`m${i}`), 0);
    expected.push(encode(tinyproto, `m${i}`));
  }
  await tick();
  assert.is(r.writes.length, 1);
  assert.equal(r.wire(), Buffer.concat(expected));
  // More answer bytes than a slab holds, then more than one at once: all of them, in order.
  const many = Buffer.alloc(100 * 1024, 0xff);
  for (let i = 0; i < 100; i++) w.writeBytes(many.subarray(i * 1024, (i + 1) * 1024));
  w.writeBytes(Buffer.alloc(70 * 1024, 0));
  w.writeBytes(Buffer.from([0xff]));
  await tick();
  assert.equal(
    r.wire().subarray(Buffer.concat(expected).length),
    Buffer.concat([many, Buffer.alloc(70 * 1024, 0), Buffer.from([0xff])]),
  );
});

test('the slab (64 KiB) is filled to its last byte: a frame that fits exactly joins the batch, one byte more starts a new slab', async () => {
  // tinyproto's header is always 4 bytes (its maxHeaderLength), so the fit is exact.
  for (const [last, writes] of [
    [16368, 1],
    [16369, 2],
  ] as const) {
    const r = recorder();
    const w = new FrameWriter(r.stream as unknown as Duplex, tinyproto);
    const bodies = [16384, 16384, 16384, last].map((n, i) => Buffer.alloc(n, i));
    for (const b of bodies) void w.write(b, 0);
    await tick();
    assert.is(r.writes.length, writes, `a last body of ${last}`);
    assert.equal(r.wire(), Buffer.concat(bodies.map((b) => encode(tinyproto, b))));
  }
  // Raw answer bytes too.
  for (const [last, writes] of [
    [1, 1],
    [2, 2],
  ] as const) {
    const r = recorder();
    const w = new FrameWriter(r.stream as unknown as Duplex, tinyproto);
    w.writeBytes(Buffer.alloc(64 * 1024 - 1, 0xff));
    w.writeBytes(Buffer.alloc(last, 0));
    await tick();
    assert.is(r.writes.length, writes, `${last} more answer bytes`);
    assert.is(r.wire().length, 64 * 1024 - 1 + last);
  }
});

/** A FrameWriter over `stream`, declared done with its chunks when its writes call back (slabs refilled). */
function refilling(stream: unknown): FrameWriter {
  writesDoneAtCallback(stream as Duplex);
  return new FrameWriter(stream as Duplex, msg);
}

/**
 * A socket-like stream that keeps the chunks it is given (no copy), with each chunk's bytes as
 * written, and reports what it has not sent yet. Its writes call back never (the default), a tick
 * later (`tick`: the kernel took them at once, as Node calls back), or when told (`held`: it queues
 * them, as a socket whose peer is slow).
 */
function keeper(callBack: 'never' | 'tick' | 'held' = 'never') {
  const chunks: Buffer[] = [];
  const atWrite: Buffer[] = [];
  const held: ((error?: Error | null) => void)[] = [];
  const stream = {
    destroyed: false,
    writableEnded: false,
    writableLength: callBack === 'held' ? 1 : 0,
    cork: () => {},
    uncork: () => {},
    write: (bytes: Buffer, callback?: (error?: Error | null) => void) => {
      chunks.push(bytes);
      atWrite.push(Buffer.from(bytes));
      if (callback && callBack === 'tick') process.nextTick(callback);
      else if (callback && callBack === 'held') held.push(callback);
      return callBack !== 'held';
    },
  };
  return { stream, chunks, atWrite, callBack: () => held.splice(0).forEach((cb) => cb()) };
}

test('on a socket (reuse): the slab is filled again from its start once the kernel took a write whole, never while the socket still holds it', async () => {
  // Taken at once (writableLength 0 after the write): the next batch reuses the slab's memory.
  {
    const k = keeper();
    const w = refilling(k.stream);
    void w.write(Buffer.from('first'), 0);
    await tick();
    void w.write(Buffer.from('second'), 0);
    await tick();
    assert.is(k.chunks.length, 2);
    assert.is(k.chunks[1]!.buffer, k.chunks[0]!.buffer, 'the same slab');
    assert.is(k.chunks[1]!.byteOffset, k.chunks[0]!.byteOffset, 'from its start');
  }
  // Still held by the socket: what it holds is never written over.
  {
    const k = keeper();
    const w = refilling(k.stream);
    k.stream.writableLength = 1; // the socket queues what it is given
    void w.write(Buffer.from('first'), 0);
    await tick();
    const held = Buffer.from(k.chunks[0]!);
    void w.write(Buffer.from('second'), 0);
    await tick();
    assert.equal(k.chunks[0], held, 'the held chunk is intact');
    assert.equal(Buffer.concat(k.chunks), Buffer.concat([encode(msg, 'first'), encode(msg, 'second')]));
  }
  // Not a socket (reuse off, as for Channel.pair and TLS): never reused, even when taken at once.
  {
    const k = keeper();
    const w = new FrameWriter(k.stream as unknown as Duplex, msg);
    void w.write(Buffer.from('first'), 0);
    await tick();
    const first = Buffer.from(k.chunks[0]!);
    void w.write(Buffer.from('second'), 0);
    await tick();
    assert.equal(k.chunks[0], first);
  }
});

test('on a socket that queues: a slab is filled again once every write of it called back (no fresh memory per 64 KiB), never before', async () => {
  const q = keeper('held');
  const w = refilling(q.stream);
  const body = (i: number): Buffer => Buffer.alloc(16 * 1024 - 100, 0x41 + (i % 26));
  const expected: Buffer[] = [];
  const allocations = (): (() => number) => {
    const real = Buffer.allocUnsafeSlow;
    let n = 0;
    Buffer.allocUnsafeSlow = (size: number) => (n++, real(size));
    return () => ((Buffer.allocUnsafeSlow = real), n);
  };
  // The socket holds every write: each full slab needs new memory, and none is written over.
  for (let i = 0; i < 16; i++) {
    void w.write(body(i), 0);
    expected.push(encode(msg, body(i)));
  }
  await tick();
  const held = q.chunks.length;
  assert.ok(held >= 4, `${held} writes held`);
  q.chunks.forEach((c, i) => assert.ok(c.equals(q.atWrite[i]!), `held chunk ${i} intact`));
  // The socket took them all and called back: the next 16 frames are written into the same memory.
  q.callBack();
  const count = allocations();
  for (let i = 16; i < 32; i++) {
    void w.write(body(i), 0);
    expected.push(encode(msg, body(i)));
  }
  await tick();
  assert.is(count(), 0, 'no new slab: the called-back ones are filled again');
  assert.ok(
    q.chunks.slice(held).some((c) => q.chunks.slice(0, held).some((d) => d.buffer === c.buffer)),
    'memory of the first writes is reused',
  );
  // What the socket still holds is intact (nothing in flight was written over), and the wire is
  // every frame in order.
  for (let i = held; i < q.chunks.length; i++) assert.ok(q.chunks[i]!.equals(q.atWrite[i]!), `chunk ${i} intact`);
  assert.equal(Buffer.concat(q.atWrite), Buffer.concat(expected));
});

test('on a socket: a channel gone quiet gives its slab back once its write called back, and the next channel to write fills it', async () => {
  const a = keeper('tick');
  const b = keeper('tick');
  const wa = refilling(a.stream);
  const wb = refilling(b.stream);
  void wa.write(Buffer.from('from a'), 0);
  await tick(); // a's batch is written
  await tick(); // and called back: a is quiet
  void wb.write(Buffer.from('from b'), 0);
  await tick();
  assert.is(b.chunks[0]!.buffer, a.chunks[0]!.buffer, 'b writes into the slab a gave back');
  assert.equal(b.chunks[0], encode(msg, 'from b'));
  assert.equal(a.chunks[0], encode(msg, 'from b'), "a no longer refers to it: it is b's now");
});

test('writeJoined: the head bytes then the body as one frame, batched; the head is copied at once (its buffer is reused)', async () => {
  const r = recorder();
  const w = new FrameWriter(r.stream as unknown as Duplex, msg);
  const head = Buffer.from([0x01, 0x85, 0x01, 0xee, 0xee]); // 3 head bytes, then bytes that are not part of it
  void w.writeJoined(head, 3, Buffer.from('payload'));
  head.fill(0x77); // the caller writes its next head here
  void w.writeJoined(head, 2, Buffer.alloc(0)); // a head alone: an empty payload
  assert.is(w.buffered, encode(msg, Buffer.alloc(10)).length + encode(msg, Buffer.alloc(2)).length);
  await tick();
  assert.is(r.writes.length, 1);
  assert.equal(
    r.wire(),
    Buffer.concat([encode(msg, Buffer.from('\x01\x85\x01payload', 'latin1')), encode(msg, Buffer.from([0x77, 0x77]))]),
  );
  assert.is(w.sent, 2);
  assert.is(w.sentBytes, 12);
});

test('writeJoined past 16 KiB (head and body together): header, a copy of the head and the body itself, under cork', async () => {
  // A stream that keeps what it is given, as a socket's queue does: a head written by reference would change under it.
  const kept: { ref: Uint8Array; corked: boolean }[] = [];
  let corked = 0;
  const stream = {
    destroyed: false,
    writableEnded: false,
    cork: () => void corked++,
    uncork: () => void corked--,
    write: (ref: Uint8Array) => kept.push({ ref, corked: corked > 0 }) > 0,
  };
  const w = new FrameWriter(stream as unknown as Duplex, msg);
  const head = Buffer.from([0x02, 0x07, 0xee]);
  const fits = Buffer.alloc(16 * 1024 - 2, 1); // 2 + 16,382: exactly the copy limit, batched
  void w.writeJoined(head, 2, fits);
  assert.is(kept.length, 0, 'waits for the tick');
  const big = Buffer.alloc(16 * 1024 - 1, 2); // one byte more: its own writes
  void w.writeJoined(head, 2, big);
  head.fill(0); // reused by the caller at once
  assert.is(kept.length, 4, 'the batch, then header, head and body');
  assert.equal(Buffer.from(kept[0]!.ref), encode(msg, Buffer.concat([Buffer.from([0x02, 0x07]), fits])));
  assert.equal(Buffer.from(kept[1]!.ref), Buffer.from(`\r\nMSG ${2 + big.length}\r\n`));
  assert.equal(Buffer.from(kept[2]!.ref), Buffer.from([0x02, 0x07]), 'the head as it was when written');
  assert.ok(kept[3]!.ref === big, 'the body itself, not a copy');
  assert.equal(
    kept.slice(1).map((k) => k.corked),
    [true, true, true],
  );
  assert.is(w.sent, 2);
  assert.is(w.sentBytes, 2 + fits.length + 2 + big.length);
});

test('nothing is written once the stream is ended or destroyed', async () => {
  for (const done of ['writableEnded', 'destroyed'] as const) {
    const r = recorder();
    const w = new FrameWriter(r.stream as unknown as Duplex, msg);
    void w.write(Buffer.from('late'), 0);
    r.stream[done] = true;
    await tick();
    assert.equal(r.writes, [], done);
  }
});

test.run();
