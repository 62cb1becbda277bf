/**
 * core/iterator.ts is the one async iterator for every receiver: a Channel, and as it is, any
 * object with recv() (TypedChannel) and optionally tryRecv() (RequestChannel's one-way messages).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { messages } from '../../src/core/iterator.js';
import { ChannelClosedError } from '../../src/errors.js';

/** A receiver that serves `items` (an Error item is thrown by recv()), with or without tryRecv(). */
function receiver<T>(items: (T | Error)[], withTry: boolean) {
  const calls = { recv: 0, tryRecv: 0 };
  const next = (): T | Error => items.shift() ?? new ChannelClosedError('end');
  const r: { recv(): Promise<T>; tryRecv?(): T | undefined } = {
    recv: () => {
      calls.recv++;
      const item = next();
      return item instanceof Error ? Promise.reject(item) : Promise.resolve(item);
    },
  };
  if (withTry) {
    r.tryRecv = () => {
      calls.tryRecv++;
      const item = items[0];
      if (item === undefined || item instanceof Error) return undefined;
      return items.shift() as T;
    };
  }
  return { r, calls };
}

test('a recv()-only receiver of any type (a TypedChannel) is iterated until ChannelClosedError', async () => {
  const { r, calls } = receiver([{ name: 'a' }, { name: 'b' }], false);
  const got: { name: string }[] = [];
  for await (const m of messages(r)) got.push(m);
  assert.equal(got, [{ name: 'a' }, { name: 'b' }]);
  assert.is(calls.recv, 3, 'two messages and the end');
});

test('with tryRecv() (a RequestChannel), buffered messages skip recv()', async () => {
  const { r, calls } = receiver(['x', 'y'], true);
  const got: string[] = [];
  for await (const m of messages(r)) got.push(m);
  assert.equal(got, ['x', 'y']);
  assert.is(calls.recv, 1, 'only the end went through recv()');
});

test('another error is thrown once, and the iterator stays done; return() ends it without touching the receiver', async () => {
  const boom = new Error('decode failed');
  const { r } = receiver(['x', boom, 'y'], false);
  const it = messages(r);
  assert.equal(await it.next(), { value: 'x', done: false });
  try {
    await it.next();
    assert.unreachable('should throw');
  } catch (error) {
    assert.is(error, boom);
  }
  assert.equal(await it.next(), { value: undefined, done: true });
  const { r: r2, calls } = receiver(['x'], false);
  const it2 = messages(r2);
  await it2.return!();
  assert.equal(await it2.next(), { value: undefined, done: true });
  assert.is(calls.recv, 0);
});

test.run();
