/**
 * A hostile peer against a RequestChannel: random message bodies (fast-check), replies to ids
 * never sent, oversized error texts, floods of garbage and of requests whose replies are not
 * read. Nothing crashes, every error is typed (ProtocolError, ERR_PROTOCOL), the channel carries on.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtocolError, RequestChannel, decodeEnvelope, encodeEnvelope, type Channel } from '../../channel.js';
import { openHandles, rejectsWith, sleep, tcpPair, unhandled, until } from '../helpers.js';

/** The id of a request the raw peer read, from its envelope. */
async function readRequestId(raw: Channel): Promise<number> {
  const e = decodeEnvelope(await raw.recv());
  if (e.kind !== 'request') throw new Error(`expected a request, got ${e.kind}`);
  return e.id;
}

test('property: random message bodies never crash a RequestChannel, give only ProtocolErrors, and leave a pending request alone', async () => {
  const { client: raw, server } = await tcpPair();
  const errors: Error[] = [];
  const rc = new RequestChannel(server, { onRequest: () => 'ok', onError: (e) => void errors.push(e) });
  void (async () => {
    for await (const _ of rc); // take the one-way messages the fuzzer makes up
  })().catch(() => {});
  const pending = rc.request('the real one', { timeout: 0 });
  const id = await readRequestId(raw);
  assert.is(id, 1);
  const notOurReply = (b: Uint8Array): boolean => {
    // A well-formed ping gets a pong: the loop below would take it for its marker's and stop early.
    if (b.length === 1 && b[0] === 0x04) return false;
    if (b[0] !== 0x02 && b[0] !== 0x03) return true;
    // A reply or error reply naming our request's id, well-formed or not, is addressed to it:
    // leave those out (the varint id starts at byte 1).
    let value = 0;
    for (let i = 1, shift = 1; i < b.length && i < 9; i++, shift *= 128) {
      value += (b[i]! & 0x7f) * shift;
      if ((b[i]! & 0x80) === 0) return value !== id;
    }
    return true;
  };
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    // Mostly well-formed kinds with random rest, so the deeper checks are reached too.
    fc
      .tuple(fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 24 }))
      .map(([k, rest]) => Uint8Array.from([k, ...rest])),
    fc
      .tuple(
        fc.constantFrom(2, 3),
        fc.uint8Array({ minLength: 1, maxLength: 9 }).map((b) => b.map((x, i, a) => (i < a.length - 1 ? x | 0x80 : x))),
      )
      .map(([k, rest]) => Uint8Array.from([k, ...rest])),
  );
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(body.filter(notOurReply), { maxLength: 30 }), async (bodies) => {
        const before = rc.stats.protocolErrors;
        for (const b of bodies) await raw.send(b);
        await raw.send(encodeEnvelope({ kind: 'ping' })); // a marker: its pong comes back after all of them
        const pong = await raw.recv();
        // Replies to the made-up requests arrive first; read until the pong.
        let m = pong;
        while (decodeEnvelope(m).kind !== 'pong') m = await raw.recv();
        assert.ok(rc.isOpen);
        assert.is(errors.length, rc.stats.protocolErrors);
        assert.ok(rc.stats.protocolErrors >= before);
      }),
      { numRuns: 150, seed: process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED) },
    );
    for (const e of errors) {
      assert.instance(e, ProtocolError, String(e));
      assert.is((e as ProtocolError).code, 'ERR_PROTOCOL');
      assert.is(e.stack?.split('\n').length, 1, 'made without a stack trace');
    }
    assert.ok(errors.length > 50, `${errors.length} protocol errors seen`);
    assert.is(rc.outstanding, 1);
    await raw.send(encodeEnvelope({ kind: 'reply', id, payload: 'at last' }));
    assert.is(String(await pending), 'at last');
    await raw.close();
    await rc.closed;
  } finally {
    raw.destroy(); // a failure must not leave the sockets open (and the test process hanging)
    server.destroy();
  }
});

test('a reply to an id never sent is a ProtocolError; one to an id that timed out is late, counted, and not an error', async () => {
  const { client: raw, server } = await tcpPair();
  const errors: Error[] = [];
  const rc = new RequestChannel(server, { onError: (e) => void errors.push(e) });
  await rejectsWith(rc.request('x', { timeout: 20 }), 'ERR_TIMEOUT');
  assert.is(await readRequestId(raw), 1);
  await raw.send(encodeEnvelope({ kind: 'reply', id: 1, payload: 'too late' }));
  await raw.send(encodeEnvelope({ kind: 'error', id: 1, message: 'too late as well' }));
  await raw.send(encodeEnvelope({ kind: 'reply', id: 2, payload: 'never asked' }));
  await raw.send(encodeEnvelope({ kind: 'reply', id: 0, payload: 'never asked' }));
  await until(() => errors.length === 2);
  assert.is(rc.stats.lateReplies, 2);
  assert.match(errors[0]!.message, /request id 2, which this side never sent/);
  assert.match(errors[1]!.message, /request id 0, which this side never sent/);
  // The next request is id 2 and gets its own reply, not the made-up one before it.
  const next = rc.request('y');
  assert.is(await readRequestId(raw), 2);
  await raw.send(encodeEnvelope({ kind: 'reply', id: 2, payload: 'yours' }));
  assert.is(String(await next), 'yours');
  await raw.close();
  await rc.closed;
});

test('an error reply over its limits rejects that request with a ProtocolError; the channel carries on', async () => {
  const { client: raw, server } = await tcpPair();
  const rc = new RequestChannel(server, { onError: () => assert.unreachable('the request gets this error') });
  const p = rc.request('x');
  const id = await readRequestId(raw);
  await raw.send(Buffer.concat([Buffer.from([0x03, id, 0x00]), Buffer.alloc(5000, 0x61)]));
  const e = await rejectsWith(p, 'ERR_PROTOCOL');
  assert.match(e.message, /message of 5000 bytes, above 1024/);
  assert.is(rc.stats.protocolErrors, 1);
  const q = rc.request('y');
  const id2 = await readRequestId(raw);
  await raw.send(Buffer.from([0x03, id2, 0x41, 0x61])); // a code length of 65
  assert.match((await rejectsWith(q, 'ERR_PROTOCOL')).message, /code of 65 bytes/);
  assert.ok(rc.isOpen);
  await raw.close();
  await rc.closed;
});

test('without onError, a flood of garbage envelopes costs a few rate-limited warnings, not one each', async () => {
  const { client: raw, server } = await tcpPair();
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on('warning', onWarning);
  try {
    const rc = new RequestChannel(server);
    for (let i = 0; i < 2000; i++) void raw.send(Buffer.from([0x09, i & 0xff]));
    await raw.send(encodeEnvelope({ kind: 'ping' }));
    await raw.recv(); // the pong: every garbage message before it was handled
    assert.is(rc.stats.protocolErrors, 2000);
    await raw.close();
    await rc.closed;
    await sleep(10);
    assert.ok(warnings.length >= 1 && warnings.length <= 3, `${warnings.length} warnings`);
    assert.match(warnings[0]!.message, /unknown envelope kind 0x09/);
    assert.match(warnings.at(-1)!.message, /1999 more errors like this/);
  } finally {
    process.off('warning', onWarning);
  }
});

test('a peer flooding requests and never reading the replies: slots held until each reply is sent, reading pauses, no reply lost', async () => {
  const { client: raw, server } = await tcpPair({}, { maxQueuedBytes: 64 * 1024, sendHighWaterMark: 16 * 1024 });
  let peak = 0;
  let running = 0;
  const rc = new RequestChannel(server, {
    maxPending: 8,
    onRequest: async () => {
      peak = Math.max(peak, ++running);
      await sleep(0);
      running--;
      return Buffer.alloc(4096, 0x62);
    },
  });
  const N = 3000;
  for (let i = 0; i < N; i++) void raw.send(encodeEnvelope({ kind: 'request', id: i + 1, payload: 'gimme' }));
  // The replies fill the kernel's buffers, then the channel's send queue: each holds its slot, so
  // at most 8 are queued, 8 more requests are held, and reading stops (TCP pushes back).
  let read = -1;
  while (read !== rc.stats.requestsReceived) {
    read = rc.stats.requestsReceived;
    await sleep(100);
  }
  assert.ok(read < N, `the server read all ${N} requests from a peer that reads nothing`);
  assert.ok(rc.heldRequests <= 8, `${rc.heldRequests} held`);
  assert.ok(server.queuedBytes <= 64 * 1024, `${server.queuedBytes} bytes queued`);
  assert.is(rc.stats.errorsSent, 0);
  assert.ok(rc.isOpen);
  // Once the peer reads, every request is answered: none was dropped.
  for (let i = 0; i < N; i++) assert.is(decodeEnvelope(await raw.recv()).kind, 'reply');
  assert.is(rc.stats.repliesSent, N);
  assert.ok(peak <= 8, `peak ${peak} handlers`);
  raw.destroy();
  await rc.closed;
  assert.equal(unhandled, []);
});

test('nothing left behind: no unhandled rejection, socket or timer', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
