/**
 * The Channel's send and receive paths in memory (Channel.pair): what send() refuses and how (a
 * rejected promise, never a throw), the type field's range, an aborted signal, the errors of a
 * closed channel, the stats counters on every send path (batched, corked, acknowledged), and
 * queuedBytes going back to zero once everything is written.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, ltprotocol, tinyproto } from '../../channel.js';
import { rejectsWith } from '../helpers.js';

test('send() refuses what it cannot send with a rejected promise, saying why', async () => {
  const [a, b] = Channel.pair({ maxMessageSize: 100 });
  for (const bad of [5, null, {}, [1, 2]]) {
    let p: Promise<void> | undefined;
    assert.not.throws(() => (p = a.send(bad as never)), 'a rejection, not a throw');
    const e = await p!.then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    assert.instance(e, TypeError, String(bad));
    assert.match(e!.message, new RegExp(`^Expected a Uint8Array or a string, got ${typeof bad}$`));
  }
  const big = await rejectsWith(a.send(Buffer.alloc(101)), 'ERR_MESSAGE_TOO_LARGE');
  assert.match(big.message, /^cannot send a 101-byte message/);
  // A Uint8Array view is sent as the bytes it views.
  const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
  await a.send(backing.subarray(2, 5));
  assert.equal(await b.recv(), Buffer.from([1, 2, 3]));
  a.destroy();
  b.destroy();
});

test('send({ type }): an integer from 0 to the framing maxType; anything else rejects with RangeError naming the range', async () => {
  const [a, b] = Channel.pair({ framing: ltprotocol('H', 'B') });
  for (const type of [-1, 256, 1.5, Number.NaN]) {
    const e = await a.send('x', { type }).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    assert.instance(e, RangeError, String(type));
    assert.is(
      e!.message,
      `Expected \`type\` to be an integer from 0 to 255 for framing ltprotocol, got ${String(type)}`,
    );
  }
  await a.send('lo', { type: 0 });
  await a.send('hi', { type: 255 });
  assert.equal(await b.recvFrame(), { type: 0, data: Buffer.from('lo') });
  assert.equal(await b.recvFrame(), { type: 255, data: Buffer.from('hi') });
  assert.is(b.bufferedMessages, 0, 'the refused sends sent nothing');
  // A recvFrame() waiting when the frame arrives; recv() and recvFrame() taking buffered frames in turn.
  const waiting = b.recvFrame();
  await a.send('w', { type: 7 });
  assert.equal(await waiting, { type: 7, data: Buffer.from('w') });
  await a.send('one', { type: 1 });
  await a.send('two', { type: 2 });
  await a.send('three', { type: 3 });
  while (b.bufferedMessages < 3) await new Promise((r) => setTimeout(r, 1));
  assert.is(String(await b.recv()), 'one');
  assert.equal(await b.recvFrame(), { type: 2, data: Buffer.from('two') });
  assert.equal(await b.recvFrame({ timeout: 1000 }), { type: 3, data: Buffer.from('three') });
  a.destroy();
  b.destroy();
});

test('a send with an aborted signal rejects with its reason and sends nothing', async () => {
  const [a, b] = Channel.pair();
  const reason = new Error('never mind');
  const e = await a.send('no', { signal: AbortSignal.abort(reason) }).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.is(e, reason);
  await a.send('yes');
  assert.is(String(await b.recv()), 'yes');
  a.destroy();
  b.destroy();
});

test('sends on a closed channel reject with its ChannelClosedError: the one close() made, or one whose cause is what ended it', async () => {
  const [a, b] = Channel.pair();
  await a.close();
  const closed = await rejectsWith(a.send('late'), 'ERR_CHANNEL_CLOSED');
  assert.is(closed.message, 'channel was closed');
  assert.is(
    await a.recv().then(
      () => undefined,
      (error: unknown) => error,
    ),
    closed,
    'the same error as recv()',
  );
  b.destroy();
  const [c, d] = Channel.pair();
  const boom = new Error('boom');
  c.destroy(boom);
  const failed = await rejectsWith(c.send('late'), 'ERR_CHANNEL_CLOSED');
  assert.is(failed.cause, boom);
  d.destroy();
});

test('after a recv() that timed out or was aborted while waiting, buffered messages are taken at once: by tryRecv() and by recv()', async () => {
  const [a, b] = Channel.pair();
  await rejectsWith(b.recv({ timeout: 5 }), 'ERR_TIMEOUT');
  const controller = new AbortController();
  const aborted = b.recv({ signal: controller.signal });
  controller.abort(new Error('no'));
  await aborted.catch(() => {});
  await a.send('one');
  await a.send('two');
  for (let i = 0; i < 100 && b.bufferedMessages < 2; i++) await new Promise((r) => setTimeout(r, 1));
  assert.is(String(b.tryRecv()), 'one', 'no recv() is waiting any more');
  assert.is(String(await b.recv()), 'two');
  a.destroy();
  b.destroy();
});

test('a recv() with an aborted signal or an invalid timeout rejects even with a message buffered, and takes none', async () => {
  const [a, b] = Channel.pair({ framing: ltprotocol() });
  await a.send('one', { type: 3 });
  for (let i = 0; i < 100 && b.bufferedMessages < 1; i++) await new Promise((r) => setTimeout(r, 1));
  const reason = new Error('aborted before');
  let caught: unknown;
  await b.recv({ signal: AbortSignal.abort(reason) }).catch((e: unknown) => (caught = e));
  assert.is(caught, reason);
  await b.recvFrame({ signal: AbortSignal.abort(reason) }).catch((e: unknown) => (caught = e));
  assert.is(caught, reason);
  await b.recv({ timeout: -1 }).catch((e: unknown) => (caught = e));
  assert.instance(caught, RangeError);
  assert.is(b.bufferedMessages, 1, 'the message is still there');
  assert.equal(await b.recvFrame({ timeout: 1000 }), { type: 3, data: Buffer.from('one') });
  a.destroy();
  b.destroy();
});

test("sendJoined (RequestChannel's envelope path): one message of head then payload; refused as send() refuses", async () => {
  const [a, b] = Channel.pair({ maxMessageSize: 10 });
  const head = Buffer.from([0x01, 0x2a, 0xff]);
  await a.sendJoined(head, 2, Buffer.from('12345678'));
  assert.equal(await b.recv(), Buffer.from('\x01\x2a12345678', 'latin1'));
  assert.is(a.stats.bytesSent, 10);
  await rejectsWith(a.sendJoined(head, 2, Buffer.from('123456789')), 'ERR_MESSAGE_TOO_LARGE'); // 11 bytes joined
  await a.close();
  await rejectsWith(a.sendJoined(head, 2, Buffer.from('x')), 'ERR_CHANNEL_CLOSED');
  b.destroy();
});

test('stats count every message and body byte, on each send path (batched, corked, acknowledged)', async () => {
  for (const framing of [undefined, tinyproto]) {
    const [a, b] = Channel.pair({ framing });
    await Promise.all([a.ready, b.ready]);
    const bodies = [Buffer.alloc(0), Buffer.from('small'), Buffer.alloc(100_000, 1)];
    for (const body of bodies) {
      await a.send(body);
      assert.equal(await b.recv(), body);
    }
    const bytes = 100_005;
    const name = framing?.name ?? 'msg';
    assert.equal(
      a.stats,
      { messagesSent: 3, messagesReceived: 0, bytesSent: bytes, bytesReceived: 0, bytesReadDirect: 0, sendsFailed: 0 },
      name,
    );
    assert.equal(
      b.stats,
      { messagesSent: 0, messagesReceived: 3, bytesSent: 0, bytesReceived: bytes, bytesReadDirect: 0, sendsFailed: 0 },
      name,
    );
    assert.is.not(a.stats, a.stats, 'a new object each read');
    a.destroy();
    b.destroy();
  }
});

test('queuedBytes counts batched and queued sends, and is back to 0 once they are written', async () => {
  const [a, b] = Channel.pair({ highWaterMark: 1024 });
  const sends = Array.from({ length: 40 }, () => a.send(Buffer.alloc(8192)));
  assert.ok(a.queuedBytes > 8192 && a.queuedBytes <= 40 * (8192 + 16), String(a.queuedBytes)); // what the peer has not taken yet
  for (let i = 0; i < 40; i++) await b.recv();
  await Promise.all(sends);
  assert.is(a.queuedBytes, 0);
  a.destroy();
  b.destroy();
});

test('sends made during the handshake wait for it: they arrive after it, in order', async () => {
  for (const options of [{ auth: { key: 'k' } }, { framing: tinyproto }]) {
    const [a, b] = Channel.pair(options);
    const early = [a.send('first'), a.send('second')];
    assert.equal([String(await b.recv()), String(await b.recv())], ['first', 'second']);
    await Promise.all([...early, a.ready, b.ready]);
    a.destroy();
    b.destroy();
  }
});

test.run();
