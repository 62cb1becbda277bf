/**
 * No send fails unseen (issue 22 item 5): a send that was accepted and then refused or dropped
 * counts in `stats.sendsFailed`, and when nobody handled its promise, close() rejects with
 * SendsFailedError (`ERR_SENDS_FAILED`, `count`) instead of resolving as if everything went out.
 * A handled failure (awaited, caught, even late) is the caller's to know and does not make close()
 * reject; a send withdrawn through its signal is not a failure. README "Channel API", close().
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, SendsFailedError } from '../../channel.js';
import { rejectsWith, unhandled } from '../helpers.js';
import { within } from './transport.js';

const MiB = 1024 * 1024;

async function tcpPair(): Promise<[Channel, Channel]> {
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  const [a, b] = await Promise.all([Channel.connect('127.0.0.1', port), listener.accept()]);
  await listener.close();
  return [a, b!];
}

/** Every message `ch` receives until the peer closes. */
async function drain(ch: Channel): Promise<number> {
  let n = 0;
  for await (const _ of ch) n++;
  return n;
}

test('100 un-awaited 1 MiB sends, then close(): close() rejects with the count of those not sent', async () => {
  const [tx, rx] = await tcpPair();
  const received = drain(rx);
  const oneMiB = Buffer.alloc(MiB, 1);
  for (let i = 0; i < 100; i++) void tx.send(oneMiB);
  const error = (await within(rejectsWith(tx.close(), 'ERR_SENDS_FAILED'))) as SendsFailedError;
  assert.instance(error, SendsFailedError);
  const delivered = await within(received);
  assert.ok(delivered > 0 && delivered < 100, `delivered ${delivered}`);
  assert.is(error.count, 100 - delivered, 'every message not delivered is counted');
  assert.is(tx.stats.sendsFailed, 100 - delivered);
  assert.is(tx.stats.messagesSent, delivered);
  assert.is((error.cause as Error & { code: string }).code, 'ERR_SEND_QUEUE_FULL');
  assert.match(error.message, new RegExp(`^${100 - delivered} messages were not sent`));
});

test('failures someone handled (awaited, caught, or looked at before close) count in stats, and close() resolves', async () => {
  const [tx, rx] = await tcpPair();
  const received = drain(rx);
  const oneMiB = Buffer.alloc(MiB, 1);
  const sends = Array.from({ length: 40 }, () => tx.send(oneMiB));
  const caught = tx.send(oneMiB).catch(() => 'caught'); // a handler at once
  const late = tx.send(oneMiB); // a handler only after it failed
  await Promise.resolve();
  await late.catch(() => undefined);
  const outcomes = await Promise.allSettled(sends);
  await caught;
  const failed = outcomes.filter((o) => o.status === 'rejected').length + 2;
  await within(tx.close());
  const delivered = await within(received);
  assert.is(delivered + failed, 42);
  assert.is(tx.stats.sendsFailed, failed);
});

test('sends queued when the peer leaves are dropped: counted, and close() rejects with them', async () => {
  const [a, b] = Channel.pair();
  for (let i = 0; i < 8; i++) void a.send(Buffer.alloc(MiB, i)); // past sendHighWaterMark: most wait in the queue
  b.destroy();
  await a.closed;
  const error = (await within(rejectsWith(a.close(), 'ERR_SENDS_FAILED'))) as SendsFailedError;
  assert.ok(error.count > 0 && error.count === a.stats.sendsFailed, `${error.count} / ${a.stats.sendsFailed}`);
  // A message handed to the transport whose write then failed counts in both messagesSent and the failures.
  assert.ok(error.count + a.stats.messagesSent >= 8 && error.count <= 8, String(error.count));
  assert.is((error.cause as Error & { code: string }).code, 'ERR_CHANNEL_CLOSED');
});

test('an un-awaited send on a channel the peer closed counts; one withdrawn through its signal does not', async () => {
  const [a, b] = Channel.pair({ sendHighWaterMark: 64 * 1024 });
  const c = new AbortController();
  void a.send(Buffer.alloc(MiB)); // written: over the high-water mark, so the next one queues
  const withdrawn = a.send(Buffer.alloc(MiB), { signal: c.signal });
  c.abort(new Error('no longer wanted'));
  await withdrawn.catch(() => undefined);
  assert.is(a.stats.sendsFailed, 0, 'a withdrawn send is not a failure');
  await b.close();
  await a.closed;
  void a.send('late');
  assert.is(a.stats.sendsFailed, 1);
  const error = (await within(rejectsWith(a.close(), 'ERR_SENDS_FAILED'))) as SendsFailedError;
  assert.is(error.count, 1);
  assert.is(error.message, '1 message was not sent, and nobody handled its send() promise');
});

test('close() not awaited: its rejection is not unhandled either', async () => {
  const [a, b] = Channel.pair();
  b.destroy();
  await a.closed;
  void a.send('x');
  void a.close();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(unhandled, []);
});

test('every send promise is a thenable the usual tools accept (await, Promise.all, finally)', async () => {
  const [a, b] = Channel.pair();
  const big = Buffer.alloc(100 * 1024, 3);
  await Promise.all([a.send(big), a.send(big).finally(() => undefined), a.send('small')]);
  assert.ok((await b.recv()).equals(big));
  await a.close();
  assert.is(a.stats.sendsFailed, 0);
});

test.run();
