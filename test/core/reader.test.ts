/**
 * The direct receive path's parts on their own (src/core/reader.ts), fast: where DIRECT_READS is
 * on, DirectReader's choice of read buffer and its copy / hand-over rule at the boundary, reads
 * before a Channel attaches, and which sockets adoptAccepted re-wraps and which it leaves as they
 * are. test/core/receive.test.ts runs the path end to end over real connections.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DIRECT_READS,
  DirectReader,
  SLAB_SIZE,
  adoptAccepted,
  discardReads,
  readFrom,
  readsThrough,
  type ReadTarget,
} from '../../src/core/reader.js';
import { openHandles, resultWithin, sleep, unhandled } from '../helpers.js';

type ReaderModule = typeof import('../../src/core/reader.js');

/** A fresh copy of the module, loaded with `process` changed by `stub` meanwhile. */
async function loadWith(tag: string, stub: () => () => void): Promise<ReaderModule> {
  const restore = stub();
  try {
    return (await import(`../../src/core/reader.js?${tag}`)) as ReaderModule;
  } finally {
    restore();
  }
}

/** DIRECT_READS as a fresh copy of the module computes it under `stub`. */
async function directReadsWith(tag: string, stub: () => () => void): Promise<boolean> {
  return (await loadWith(tag, stub)).DIRECT_READS;
}

function withVersion(name: 'bun' | 'deno'): () => void {
  Object.defineProperty(process.versions, name, { value: '1.0.0', configurable: true, enumerable: true });
  return () => void delete (process.versions as Record<string, string>)[name];
}

function withRelease(release: unknown): () => void {
  const own = Object.getOwnPropertyDescriptor(process, 'release')!;
  Object.defineProperty(process, 'release', { value: release, configurable: true, writable: false, enumerable: true });
  return () => Object.defineProperty(process, 'release', own);
}

test('DIRECT_READS: on in Node; off where process.versions names Bun or Deno, or process.release is not Node’s', async () => {
  assert.is(process.release.name, 'node', 'the suites run on Node');
  assert.is(DIRECT_READS, true);
  assert.is(await directReadsWith('node', () => () => {}), true);
  assert.is(await directReadsWith('bun', () => withVersion('bun')), false, 'Bun');
  assert.is(await directReadsWith('deno', () => withVersion('deno')), false, 'Deno');
  assert.is(await directReadsWith('release', () => withRelease({ name: 'bun' })), false, 'release.name bun');
  assert.is(await directReadsWith('norelease', () => withRelease(undefined)), false, 'no process.release');
  assert.is(process.versions.bun, undefined, 'restored');
  assert.is(process.release.name, 'node', 'restored');
  // Where it is off, adoptAccepted leaves even a socket it could re-wrap as it is.
  const bun = await loadWith('bun-adopt', () => withVersion('bun'));
  assert.is(bun.DIRECT_READS, false);
  const pair = await acceptedPair(true);
  assert.is(bun.adoptAccepted(pair.accepted), undefined);
  assert.is(pair.accepted.destroyed, false);
  pair.accepted.resume();
  pair.client.write('data path');
  assert.equal(await new Promise<Buffer>((r) => pair.accepted.once('data', r)), Buffer.from('data path'));
  await pair.close();
});

/** A target that keeps each chunk it is handed, then does `then` (from inside data()). */
function takingThen(then: () => void): ReadTarget & { got: Buffer[] } {
  const got: Buffer[] = [];
  return {
    got,
    data: (chunk) => {
      got.push(chunk);
      then();
    },
    space: () => null,
    filled: () => {},
  };
}

/** A ReadTarget that records what it is given; space() returns `offer`. */
function recorder(): ReadTarget & { got: Buffer[]; asked: number[]; filledWith: number[]; offer: Buffer | null } {
  const r = {
    got: [] as Buffer[],
    asked: [] as number[],
    filledWith: [] as number[],
    offer: null as Buffer | null,
    data: (chunk: Buffer): void => void r.got.push(chunk),
    space: (min: number): Buffer | null => {
      r.asked.push(min);
      return r.offer;
    },
    filled: (n: number): void => void r.filledWith.push(n),
  };
  return r;
}

test('DirectReader: reads before attach() are kept in order and pause reading; attach() hands them over once', () => {
  const reader = new DirectReader();
  const slab = reader.onread.buffer();
  assert.is(slab.length, SLAB_SIZE);
  slab.fill(1, 0, 10);
  assert.is(reader.onread.callback(10, slab), false, 'paused until a Channel takes over');
  assert.is(reader.onread.buffer(), slab, 'a short read was copied: the slab is read again');
  slab.fill(2);
  assert.is(reader.onread.callback(SLAB_SIZE, slab), false);
  const target = recorder();
  reader.attach(target);
  assert.equal(target.got, [Buffer.alloc(10, 1), Buffer.alloc(SLAB_SIZE, 2)]);
  const next = reader.onread.buffer();
  assert.is.not(next, slab, 'the long read was handed over: a new slab');
  assert.equal(target.asked, [SLAB_SIZE], 'asks for body space of at least a slab once attached');
  next.fill(3, 0, 5);
  assert.is(reader.onread.callback(5, next), true, 'attached: reading goes on');
  assert.equal(target.got.length, 3);
  assert.equal(target.got[2], Buffer.alloc(5, 3));
  assert.is(reader.directBytes, 0);
});

test('DirectReader: a read of exactly half a slab is copied out (the slab reused); one byte more is handed over', () => {
  const reader = new DirectReader();
  const target = recorder();
  reader.attach(target);
  const slab = reader.onread.buffer();
  slab.fill(7);
  assert.ok(reader.onread.callback(SLAB_SIZE / 2, slab));
  assert.is(target.got[0]!.length, SLAB_SIZE / 2);
  assert.is.not(target.got[0]!.buffer, slab.buffer, 'copied');
  assert.is(reader.onread.buffer(), slab, 'the slab is read again');
  slab.fill(8);
  assert.equal(target.got[0], Buffer.alloc(SLAB_SIZE / 2, 7), 'the copy does not change with the slab');
  assert.ok(reader.onread.callback(SLAB_SIZE / 2 + 1, slab));
  assert.is(target.got[1]!.buffer, slab.buffer, 'handed over');
  assert.is(target.got[1]!.length, SLAB_SIZE / 2 + 1);
  assert.is.not(reader.onread.buffer(), slab, 'a new slab for the next read');
});

test('DirectReader: body space is read straight into (filled, counted); without space the same slab is used again', () => {
  const reader = new DirectReader();
  const target = recorder();
  reader.attach(target);
  const slab = reader.onread.buffer();
  const body = Buffer.alloc(3 * SLAB_SIZE);
  target.offer = body;
  assert.is(reader.onread.buffer(), body);
  assert.ok(reader.onread.callback(1000, body));
  assert.equal(target.filledWith, [1000]);
  assert.is(reader.directBytes, 1000);
  assert.equal(target.got, [], 'nothing went through data()');
  assert.is(reader.onread.buffer(), body);
  assert.ok(reader.onread.callback(SLAB_SIZE, body));
  assert.equal(target.filledWith, [1000, SLAB_SIZE]);
  assert.is(reader.directBytes, 1000 + SLAB_SIZE);
  target.offer = null;
  assert.is(reader.onread.buffer(), slab, 'back to the slab, which nothing refers to');
  slab.fill(4, 0, 2);
  assert.ok(reader.onread.callback(2, slab));
  assert.equal(target.got, [Buffer.alloc(2, 4)]);
  assert.equal(target.filledWith, [1000, SLAB_SIZE], 'a slab read is not a fill');
  assert.is(reader.directBytes, 1000 + SLAB_SIZE);
});

/** A listener on 127.0.0.1:0 and one connection to it: [accepted, client]. */
async function acceptedPair(
  pauseOnConnect: boolean,
): Promise<{ accepted: net.Socket; client: net.Socket; close(): Promise<void> }> {
  let take!: (s: net.Socket) => void;
  const got = new Promise<net.Socket>((r) => (take = r));
  const server = net.createServer({ pauseOnConnect }, take);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  const accepted = await got;
  accepted.on('error', () => {});
  return {
    accepted,
    client,
    close: async () => {
      client.destroy();
      accepted.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

test('adoptAccepted: a paused accepted socket is re-wrapped to read through a DirectReader; the old wrapper lets go of it', async () => {
  const pair = await acceptedPair(true);
  const adopted = adoptAccepted(pair.accepted);
  assert.ok(adopted !== undefined);
  const { socket, reader } = adopted;
  assert.is.not(socket, pair.accepted);
  assert.instance(reader, DirectReader);
  assert.ok(pair.accepted.destroyed, 'the old wrapper is destroyed');
  assert.is((pair.accepted as net.Socket & { _handle?: unknown })._handle, null, 'and has no handle');
  const target = recorder();
  reader.attach(target);
  pair.client.write('ping');
  await sleep(30);
  assert.equal(target.got, [], 'reading starts only when asked to');
  socket.resume();
  for (let i = 0; i < 200 && target.got.length === 0; i++) await sleep(5);
  assert.equal(Buffer.concat(target.got), Buffer.from('ping'));
  await new Promise<void>((r) => socket.write('pong', () => r()));
  const answer = await new Promise<Buffer>((r) => pair.client.once('data', r));
  assert.equal(answer, Buffer.from('pong'), 'it writes too');
  const ended = new Promise<string>((r) => socket.once('end', () => r('ended')));
  pair.client.end();
  assert.is(await resultWithin(ended, 2000), 'ended', "the peer's end arrives");
  socket.destroy();
  await pair.close();
});

test('adoptAccepted leaves a socket it cannot re-wrap soundly as it is', async () => {
  // Already reading (accepted without pauseOnConnect).
  const reading = await acceptedPair(false);
  assert.is(adoptAccepted(reading.accepted), undefined, 'reading');
  assert.is(reading.accepted.destroyed, false);
  reading.client.write('still mine');
  const data = await new Promise<Buffer>((r) => reading.accepted.once('data', r));
  assert.equal(data, Buffer.from('still mine'));
  await reading.close();
  // Destroyed, and never connected (no handle).
  const gone = await acceptedPair(true);
  gone.accepted.destroy();
  assert.is(adoptAccepted(gone.accepted), undefined, 'destroyed');
  await gone.close();
  assert.is(adoptAccepted(new net.Socket()), undefined, 'no handle');
  // Handles that do not look like Node's stream handles, and one the new wrapper fails on.
  let destroyed = 0;
  const fake = (handle: object, isDestroyed = false): net.Socket =>
    ({ destroyed: isDestroyed, _handle: handle, destroy: () => void destroyed++ }) as unknown as net.Socket;
  const noop = (): void => {};
  const sound = { useUserBuffer: noop, readStart: noop, readStop: noop, reading: false };
  assert.is(adoptAccepted(fake(sound, true)), undefined, 'a destroyed socket, even with a handle');
  assert.is(adoptAccepted(fake({ ...sound, readStart: undefined })), undefined, 'no readStart');
  const noUserBuffer: Record<string, unknown> = { ...sound, useUserBuffer: undefined };
  assert.is(adoptAccepted(fake(noUserBuffer)), undefined, 'no useUserBuffer');
  assert.equal(
    Object.keys(noUserBuffer).sort(),
    ['readStart', 'readStop', 'reading', 'useUserBuffer'],
    'no new wrapper took that handle',
  );
  assert.is(adoptAccepted(fake({ ...sound, reading: true })), undefined, 'reading');
  const failing = fake({
    ...sound,
    useUserBuffer: () => {
      throw new Error('not this handle');
    },
  });
  assert.is(adoptAccepted(failing), undefined, 'the new wrapper throws');
  assert.is(destroyed, 0, 'none of them was touched');
  assert.ok((failing as unknown as { _handle: unknown })._handle !== null, 'the failing one keeps its handle');
});

test('DirectReader: attach(null) detaches (reads pause and are kept); the next target gets them, in order, once', () => {
  const reader = new DirectReader();
  const first = recorder();
  reader.attach(first);
  assert.is(reader.target, first);
  reader.attach(null);
  assert.is(reader.target, null);
  const slab = reader.onread.buffer();
  for (const [n, byte] of [
    [3, 1],
    [4, 2],
    [5, 3],
  ] as const) {
    slab.fill(byte, 0, n);
    assert.is(reader.onread.callback(n, slab), false, 'detached: reading pauses');
  }
  assert.equal(first.got, [], 'nothing reaches the old target');
  reader.attach(null); // detaching again keeps them
  // A target that detaches while taking what came early: the rest is kept.
  const detaching = takingThen(() => reader.attach(null));
  reader.attach(detaching);
  assert.equal(detaching.got, [Buffer.alloc(3, 1)]);
  assert.is(reader.target, null);
  slab.fill(1, 0, 3);
  assert.is(reader.onread.callback(3, slab), false);
  // A target that hands the reader on while taking what came early: the rest goes to the next one.
  const third = recorder();
  const second = takingThen(() => reader.attach(third));
  reader.attach(second);
  assert.equal(second.got, [Buffer.alloc(4, 2)]);
  assert.equal(third.got, [Buffer.alloc(5, 3), Buffer.alloc(3, 1)]);
  assert.is(reader.target, third);
  reader.attach(third);
  assert.equal(third.got.length, 2, 'handed over once');
});

/** Resolves once `target` has `n` bytes, or rejects after 2 s. */
async function bytesIn(target: { got: Buffer[] }, n: number): Promise<Buffer> {
  for (let i = 0; i < 400; i++) {
    const all = Buffer.concat(target.got);
    if (all.length >= n) return all;
    await sleep(5);
  }
  throw new Error(`only ${Buffer.concat(target.got).length} of ${n} bytes arrived`);
}

for (const path of DIRECT_READS ? (['direct', 'data'] as const) : (['data'] as const)) {
  test(`readFrom (${path} path): reads go to the target; stop() keeps the rest for the next readFrom; discardReads drops all`, async () => {
    const pair = await acceptedPair(true);
    let socket = pair.accepted;
    if (path === 'direct') {
      const adopted = adoptAccepted(pair.accepted)!;
      socket = adopted.socket;
      readsThrough(socket, adopted.reader);
    }
    socket.on('error', () => {});
    const first = recorder();
    const stopFirst = readFrom(socket, first);
    pair.client.write('one');
    assert.equal(await bytesIn(first, 3), Buffer.from('one'));
    stopFirst();
    pair.client.write('two');
    await sleep(50);
    assert.equal(Buffer.concat(first.got), Buffer.from('one'), 'stopped: nothing more reaches it');
    const second = recorder();
    const stopSecond = readFrom(socket, second);
    assert.equal(await bytesIn(second, 3), Buffer.from('two'), 'what came meanwhile goes to the next target');
    stopFirst(); // a late stop of a former target does not detach the current one
    pair.client.write('three');
    assert.equal(await bytesIn(second, 8), Buffer.from('twothree'));
    assert.equal(second.asked.length > 0, path === 'direct', 'only the direct path asks for body space');
    stopSecond();
    discardReads(socket);
    const ended = new Promise<string>((r) => socket.once('end', () => r('ended')));
    pair.client.end('dropped');
    assert.is(await resultWithin(ended, 2000), 'ended', 'discarded reads go on to the end');
    assert.equal(Buffer.concat(second.got), Buffer.from('twothree'), 'and reach no target');
    socket.destroy();
    await pair.close();
  });
}

test('reader parts leave no unhandled rejection, socket or timer behind', async () => {
  await sleep(20);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
