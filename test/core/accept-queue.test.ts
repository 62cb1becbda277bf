/**
 * AcceptQueue (src/core/acceptQueue.ts), the accepting end Listener and SessionListener share:
 * items go to waiting takers in order or wait for one; a listener error is thrown once; closing
 * destroys what was not taken and ends every taker; leaving a `for await` runs the listener's close.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AcceptQueue } from '../../src/core/acceptQueue.js';

class Item {
  destroyed = false;
  constructor(readonly n: number) {}
  destroy(): void {
    this.destroyed = true;
  }
}

test('items go to the takers waiting, in order, and wait in the queue while nobody takes', async () => {
  const q = new AcceptQueue<Item>();
  const first = q.accept();
  const second = q.next();
  q.push(new Item(1));
  q.push(new Item(2));
  q.push(new Item(3));
  assert.is((await first)!.n, 1);
  assert.equal(await second, { value: new Item(2), done: false });
  assert.is(q.length, 1);
  assert.is((await q.accept())!.n, 3);
  assert.is(q.length, 0);
});

test('a listener error is thrown once, to the taker waiting; only the first error counts', async () => {
  const q = new AcceptQueue<Item>();
  const waiting = q.next();
  q.fail(new Error('one'));
  q.fail(new Error('two'));
  try {
    await waiting;
    assert.unreachable('resolved');
  } catch (error) {
    assert.is((error as Error).message, 'one');
  }
  q.close();
  assert.equal(await q.next(), { value: undefined, done: true }); // thrown once, then done
});

test('an error with nobody waiting is thrown to the next taker, after what was queued', async () => {
  const q = new AcceptQueue<Item>();
  q.push(new Item(1));
  q.fail(new Error('late'));
  assert.is((await q.accept())!.n, 1);
  try {
    await q.accept();
    assert.unreachable('resolved');
  } catch (error) {
    assert.is((error as Error).message, 'late');
  }
});

test('close destroys what nobody took, ends the takers, and destroys what comes after', async () => {
  const q = new AcceptQueue<Item>();
  const queued = new Item(1);
  q.push(queued);
  q.close();
  assert.ok(queued.destroyed);
  assert.is(await q.accept(), undefined);
  const late = new Item(2);
  q.push(late);
  assert.ok(late.destroyed);
  const q2 = new AcceptQueue<Item>();
  const waiting = q2.next();
  q2.close();
  assert.equal(await waiting, { value: undefined, done: true });
});

test('leaving a for await early runs the close it was given', async () => {
  const q = new AcceptQueue<Item>();
  let closes = 0;
  const iterable = { [Symbol.asyncIterator]: () => q.iterator(async () => void (closes++, q.close())) };
  q.push(new Item(1));
  q.push(new Item(2));
  for await (const item of iterable) {
    assert.is(item.n, 1);
    break;
  }
  assert.is(closes, 1);
  assert.is(q.length, 0); // the second was destroyed by the close
});

test.run();
