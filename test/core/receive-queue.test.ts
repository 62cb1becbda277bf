/**
 * The one receive queue (src/core/receive.ts) that Channel.recv() and RequestChannel's one-way
 * recv() share: call order, cancellation that takes no message, the end after what is buffered,
 * MESSAGE_OVERHEAD per message, aborted waiters that hold nothing, and one listener on a signal
 * that every recv() of a loop passes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { Channel } from '../../channel.js';
import { MESSAGE_OVERHEAD, ReceiveQueue } from '../../src/core/receive.js';
import { ChannelClosedError } from '../../src/errors.js';
import { Inbox } from '../../src/rpc/inbox.js';

const b = (s: string): Buffer => Buffer.from(s);

test('buffered messages count their bytes plus MESSAGE_OVERHEAD, and every one that leaves is reported', async () => {
  const taken: string[] = [];
  const q = new ReceiveQueue(false, (body) => taken.push(body.toString()));
  assert.is(q.push(b('ab'), 0), false, 'no waiter: buffered');
  assert.is(q.push(Buffer.alloc(0), 0), false);
  assert.is(q.bytes, 2 + 2 * MESSAGE_OVERHEAD, 'an empty message counts too');
  assert.is(q.tryRecv()!.toString(), 'ab');
  assert.is(q.bytes, MESSAGE_OVERHEAD);
  assert.is(((await q.recv(undefined, false)) as Buffer).length, 0);
  assert.is(q.bytes, 0);
  const waiting = q.recv(undefined, false);
  assert.is(q.push(b('c'), 0), true, 'handed straight to the waiting recv()');
  assert.is(q.bytes, 0, 'never counted as buffered');
  assert.is((await waiting).toString(), 'c');
  assert.equal(taken, ['ab', '', 'c']);
});

test('recv() calls resolve in call order; tryRecv() never takes a message a waiting recv() is owed', async () => {
  const q = new ReceiveQueue(true, () => {});
  const r1 = q.recv(undefined, false);
  const r2 = q.recv(undefined, true);
  assert.is(q.tryRecv(), undefined, 'nothing buffered');
  q.push(b('1'), 7);
  assert.is(q.tryRecv(), undefined, 'r2 still waits');
  q.push(b('2'), 9);
  q.push(b('3'), 11);
  assert.is((await r1).toString(), '1');
  assert.equal(await r2, { type: 9, data: b('2') }, 'a frame waiter gets the type field');
  assert.equal(await q.recv(undefined, true), { type: 11, data: b('3') });
});

test('an aborted or timed-out recv() takes no message: it goes to the next caller', async () => {
  const q = new ReceiveQueue(false, () => {});
  const controller = new AbortController();
  const aborted = q.recv({ signal: controller.signal }, false);
  const timed = q.recv({ timeout: 5 }, false);
  const next = q.recv(undefined, false);
  controller.abort(new Error('stop'));
  await rejects(aborted, /stop/);
  await rejects(timed, /timed out/);
  q.push(b('x'), 0);
  assert.is((await next).toString(), 'x');
  assert.is(q.length, 0);
  await rejects(q.recv({ signal: AbortSignal.abort(new Error('already')) }, false), /already/);
  await rejects(q.recv({ timeout: -1 }, false), RangeError);
});

test('the end: waiting recv()s reject; later ones get what is buffered first, then the error', async () => {
  const q = new ReceiveQueue(false, () => {});
  const waiting = q.recv(undefined, false);
  const error = new ChannelClosedError('peer closed');
  q.end(error);
  await rejects(waiting, (e: unknown) => e === error);
  const q2 = new ReceiveQueue(false, () => {});
  q2.push(b('last'), 0);
  q2.end(error);
  assert.is((await q2.recv({ timeout: 100 }, false)).toString(), 'last');
  await rejects(q2.recv(undefined, false), (e: unknown) => e === error);
  assert.equal(q2.clear(), []);
});

test('a loop of recv()s that time out while one recv() waits on holds no record of them', async () => {
  // The first waiter stays; each later one times out. Without compaction each dead record would
  // stay queued behind the live one until a message came.
  const q = new ReceiveQueue(false, () => {});
  const live = q.recv(undefined, false);
  for (let i = 0; i < 200; i++) {
    const controller = new AbortController();
    const p = q.recv({ signal: controller.signal }, false);
    controller.abort(new Error('gone'));
    await p.catch(() => {});
  }
  assert.ok(q.records <= 2 * 16, `${q.records} records held for 1 live waiter`);
  q.push(b('m'), 0);
  assert.is((await live).toString(), 'm');
  assert.is(q.length, 0, 'no dead waiter took it');
});

/** `signal` with its addEventListener calls counted. */
function counted(signal: AbortSignal): { signal: AbortSignal; adds: () => number } {
  let adds = 0;
  const add = signal.addEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<AbortSignal['addEventListener']>) => {
    adds++;
    add(...args);
  };
  return { signal, adds: () => adds };
}

test('a loop passing one signal to every recv() adds one listener to it, not one per call', async () => {
  const q = new ReceiveQueue(false, () => {});
  const { signal, adds } = counted(new AbortController().signal);
  for (let i = 0; i < 50; i++) {
    const p = q.recv({ signal }, false);
    q.push(b(String(i)), 0);
    assert.is((await p).toString(), String(i));
  }
  assert.is(adds(), 1, 'the queue listens once');
  assert.is(getEventListeners(signal, 'abort').length, 1);
  q.end(new ChannelClosedError('closed'));
  assert.is(getEventListeners(signal, 'abort').length, 0, 'the end lets go of the signal');
});

test('the signal the queue listens to: its abort rejects every waiter with it, in order, and no other', async () => {
  const q = new ReceiveQueue(false, () => {});
  const stop = new AbortController();
  const other = new AbortController();
  const order: string[] = [];
  const a = q.recv({ signal: stop.signal }, false).catch((e: Error) => order.push(`a ${e.message}`));
  const c = q.recv({ signal: other.signal }, false);
  const d = q.recv({ signal: stop.signal }, false).catch((e: Error) => order.push(`d ${e.message}`));
  assert.is(
    getEventListeners(other.signal, 'abort').length,
    1,
    'a second signal while the first is in use: its own listener',
  );
  stop.abort(new Error('stop'));
  await Promise.all([a, d]);
  assert.equal(order, ['a stop', 'd stop']);
  q.push(b('m'), 0);
  assert.is((await c).toString(), 'm', 'the waiter with another signal still gets the next message');
  assert.is(getEventListeners(other.signal, 'abort').length, 0, 'its listener went with it');
  assert.is(q.records, 0);
  // The aborted signal is let go; a new one is listened to instead.
  const next = new AbortController();
  const e = q.recv({ signal: next.signal }, false);
  q.push(b('n'), 0);
  assert.is((await e).toString(), 'n');
  assert.is(getEventListeners(next.signal, 'abort').length, 1);
});

test('a signal several channels pass to recv(): one listener each until they end, none after; its abort reaches each', async () => {
  const stop = new AbortController();
  const pairs = Array.from({ length: 5 }, () => Channel.pair());
  for (const [a, b] of pairs) {
    for (let i = 0; i < 3; i++) {
      const got = b.recv({ signal: stop.signal });
      await a.send(String(i));
      assert.is(String(await got), String(i));
    }
  }
  assert.is(getEventListeners(stop.signal, 'abort').length, 5, 'one per channel, not one per recv()');
  const waiting = pairs.map(([, b]) => b.recv({ signal: stop.signal }).catch((e: Error) => e.message));
  stop.abort(new Error('stopped'));
  assert.equal(await Promise.all(waiting), Array(5).fill('stopped'));
  const later = new AbortController();
  for (const [, b] of pairs) void b.recv({ signal: later.signal }).catch(() => {});
  assert.is(getEventListeners(later.signal, 'abort').length, 5);
  await Promise.all(pairs.flatMap(([a, b]) => [a.close(), b.close()]));
  assert.is(getEventListeners(later.signal, 'abort').length, 0, 'closed channels let go of the signal');
});

test("RequestChannel's Inbox keeps its shape on the shared queue: full above the mark, onRoom at half", async () => {
  let rooms = 0;
  const inbox = new Inbox(200, () => rooms++);
  inbox.push(b('a'.repeat(100)));
  assert.not.ok(inbox.full);
  inbox.push(b('b'.repeat(100)));
  assert.ok(inbox.full, `${200 + 2 * MESSAGE_OVERHEAD} bytes buffered`);
  assert.is(inbox.tryRecv()!.length, 100);
  assert.is(rooms, 0, 'still above half');
  assert.is((await inbox.recv()).length, 100);
  assert.is(rooms, 1, 'at half: room');
  const later = inbox.recv();
  inbox.end(new ChannelClosedError('one'));
  inbox.end(new ChannelClosedError('two'));
  await rejects(later, /one/, 'the first end wins');
});

test.run();
