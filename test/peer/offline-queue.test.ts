// The Client's offline queue (src/peer/offlineQueue.ts): its option checks, and what the sends still
// queued reject with when the client stops (test/peer/client-queue.test.ts covers the rest).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChannelClosedError, Client, MessageNotSentError, ReconnectFailedError } from '../../channel.js';

test('queueLimit must be an integer >= 0 or Infinity', () => {
  for (const queueLimit of [-1, 1.5, Number.NaN]) {
    assert.throws(
      () => new Client({ queueLimit }),
      (e: unknown) => e instanceof RangeError && e.message.startsWith('Expected `queueLimit` to be an integer >= 0'),
    );
  }
  for (const queueLimit of [0, 3, Infinity]) new Client({ queueLimit });
});

test("offline must be 'queue' or 'reject'", () => {
  for (const offline of ['queue', 'reject', undefined] as const) new Client({ offline });
  assert.throws(
    () => new Client({ offline: 'drop' as never }),
    (e: unknown) => e instanceof TypeError && e.message === "Expected `offline` to be 'queue' or 'reject', got drop",
  );
});

test('close(): each queued send rejects with MessageNotSentError (its data, seq; cause ChannelClosedError)', async () => {
  const client = new Client({ initialDelay: 60_000, jitter: 0, onError: () => {} });
  void client.connect({ memory: 'offline-queue-nobody' }).catch(() => {});
  const first = client.send('a');
  const second = client.send('b');
  assert.is(client.queued, 2);
  await client.close();
  for (const [p, seq, data] of [
    [first, 1, 'a'],
    [second, 2, 'b'],
  ] as const) {
    const e = await p.then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(e instanceof MessageNotSentError);
    assert.is(e.message, `message #${seq} not sent: the client was closed`);
    assert.is(e.seq, seq);
    assert.is(e.data, data);
    assert.ok(e.cause instanceof ChannelClosedError);
  }
  assert.is(client.queued, 0);
});

test('giving up: each queued send rejects with the reason, and it as the cause', async () => {
  const client = new Client({ initialDelay: 0, jitter: 0, maxRetries: 1, onError: () => {} });
  void client.connect({ memory: 'offline-queue-nobody' }).catch(() => {});
  const p = client.send('a');
  const stopped = await client.stopped;
  assert.ok(stopped instanceof ReconnectFailedError);
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.ok(e instanceof MessageNotSentError);
  assert.is(e.message, `message #1 not sent: ${stopped.message}`);
  assert.is(e.cause, stopped);
  await client.close();
});

test.run();
