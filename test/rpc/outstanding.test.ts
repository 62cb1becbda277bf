/**
 * The requester's table of outstanding requests (a ring indexed by id with a Map for stragglers) and
 * the send path that joins an envelope head to its payload in the Channel's write slab: the
 * bytes on the wire are the envelope's whatever the payload's size, type and the channel's state.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RequestChannel, decodeEnvelope, encodeEnvelope, type RequestReply } from '../../channel.js';
import { OutstandingRequests } from '../../src/rpc/outstanding.js';
import { gate, tcpPair } from '../helpers.js';

const entry = (id: number) => ({ id });

test('OutstandingRequests: take returns what put stored, once; unknown ids give undefined', () => {
  const t = new OutstandingRequests<{ id: number }>(64);
  const a = entry(1);
  const b = entry(2);
  t.put(a);
  t.put(b);
  assert.is(t.size, 2);
  assert.is(t.take(2), b);
  assert.is(t.take(2), undefined);
  assert.is(t.take(17), undefined); // same slot as 1 in a 16-slot ring, another id
  assert.is(t.take(1), a);
  assert.is(t.size, 0);
});

test('OutstandingRequests: grows while the ids in flight span more than the ring, then moves stragglers to the overflow', () => {
  const t = new OutstandingRequests<{ id: number }>(32); // 16 slots, then 32 at most
  const straggler = entry(1);
  t.put(straggler);
  // ids 2..100 come and go one at a time: the straggler's slot (id & mask) is wanted at 17 (ring of
  // 16: it grows to 32), then at 33 (ring full size: the straggler moves to the overflow).
  for (let id = 2; id <= 100; id++) {
    const e = entry(id);
    t.put(e);
    assert.is(t.size, 2);
    assert.is(t.take(id), e, `id ${id}`);
  }
  assert.is(t.take(1), straggler);
  assert.is(t.size, 0);
  assert.is(t.take(1), undefined);
});

test('OutstandingRequests: many entries at once, ids past 2^32, entries() and clear()', () => {
  const t = new OutstandingRequests<{ id: number }>(4096);
  const base = 2 ** 40 - 3; // low bits wrap past 2^32 in ToInt32: still the right slots
  const all = Array.from({ length: 3000 }, (_, i) => entry(base + i));
  for (const e of all) t.put(e);
  const late = entry(base + 100_000); // collides with nothing held? it may: either way it must come back
  t.put(late);
  assert.is(t.size, 3001);
  const listed = t.entries();
  assert.is(listed.length, 3001);
  assert.equal(new Set(listed.map((e) => e.id)).size, 3001);
  for (let i = 0; i < all.length; i += 2) assert.is(t.take(all[i]!.id), all[i]);
  assert.is(t.take(late.id), late);
  assert.is(t.size, 1500);
  t.clear();
  assert.is(t.size, 0);
  assert.is(t.take(all[1]!.id), undefined);
  assert.equal(t.entries(), []);
});

test('a request left outstanding while thousands of later ones come and go still gets its own reply', async () => {
  const { client, server } = await tcpPair();
  const hold = gate<RequestReply>();
  const srv = new RequestChannel(server, {
    onRequest: (body) => (String(body) === 'slow' ? hold.promise : `re ${body}`),
  });
  const rc = new RequestChannel(client, { maxPending: 8 }); // a ring of 16 slots at most
  const slow = rc.request('slow');
  for (let i = 0; i < 2000; i += 4) {
    const got = await Promise.all([0, 1, 2, 3].map((k) => rc.request(String(i + k))));
    got.forEach((b, k) => assert.is(String(b), `re ${i + k}`));
  }
  assert.is(rc.outstanding, 1);
  hold.open('the slow one');
  assert.is(String(await slow), 'the slow one');
  assert.is(rc.outstanding, 0);
  assert.is(rc.stats.lateReplies, 0);
  await rc.close();
  await srv.closed;
});

test('payloads of every kind and size arrive as sent: strings, Buffers, other Uint8Arrays, above 16 KiB (written uncopied)', async () => {
  const { client, server } = await tcpPair();
  const srv = new RequestChannel(server, { onRequest: (body) => body }); // echoes the view it got
  const rc = new RequestChannel(client);
  const big = Buffer.alloc(100_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const payloads: (string | Uint8Array)[] = [
    '',
    'é and ü',
    Buffer.alloc(0),
    Buffer.from('plain'),
    new Uint8Array([1, 2, 3, 4, 5]).subarray(1, 4),
    new Uint8Array(big.buffer, big.byteOffset + 3, 50_000),
    big,
    Buffer.alloc(16 * 1024 - 2, 9), // with a 2-byte head: exactly the slab's copy limit
    Buffer.alloc(16 * 1024 - 1, 9), // one byte past it: header, head and body under cork
  ];
  for (const p of payloads) {
    const want = typeof p === 'string' ? Buffer.from(p) : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    assert.ok((await rc.request(p)).equals(want), `payload of ${want.length}`);
  }
  assert.is(
    client.stats.bytesSent,
    rc.stats.requestsSent * 2 + payloads.reduce((n, p) => n + Buffer.byteLength(p as string), 0),
  );
  await rc.close();
  await srv.closed;
});

test('the wire bytes of a request are its envelope, also when the channel is contended (a request queues)', async () => {
  const { client, server } = await tcpPair({ sendHighWaterMark: 16 * 1024 }, {});
  const rc = new RequestChannel(client, { timeout: 0 });
  // Two one-ways of 10,000 bytes batched in this tick put the channel past its mark (16 KiB, the
  // socket's own): the requests after them in the same tick queue (as whole bodies) instead of
  // joining the write slab.
  const viaSend: Buffer[] = []; // what reaches Channel.send: joined in the slab, a request does not
  const send = client.send.bind(client);
  client.send = (data, options) => {
    viaSend.push(Buffer.from(data));
    return send(data, options);
  };
  void rc.send(Buffer.alloc(10_000, 1));
  void rc.send(Buffer.alloc(10_000, 2));
  const sent = [rc.request(Buffer.from('queued-1')), rc.request(new Uint8Array([0xab, 0xcd])), rc.request('queued-3')];
  // The first request at least found the channel contended (the queue may then empty at once).
  assert.equal(viaSend.map((b) => b.length).slice(0, 3), [10_001, 10_001, 10]);
  assert.ok(
    viaSend[2]!.equals(encodeEnvelope({ kind: 'request', id: 1, payload: 'queued-1' })),
    'joined before queueing',
  );
  assert.equal(decodeEnvelope(await server.recv()), { kind: 'oneway', payload: Buffer.alloc(10_000, 1) });
  assert.equal(decodeEnvelope(await server.recv()), { kind: 'oneway', payload: Buffer.alloc(10_000, 2) });
  const bodies = [await server.recv(), await server.recv(), await server.recv()];
  assert.ok(bodies[0]!.equals(encodeEnvelope({ kind: 'request', id: 1, payload: 'queued-1' })));
  assert.ok(bodies[1]!.equals(encodeEnvelope({ kind: 'request', id: 2, payload: new Uint8Array([0xab, 0xcd]) })));
  assert.ok(bodies[2]!.equals(encodeEnvelope({ kind: 'request', id: 3, payload: 'queued-3' })));
  for (const id of [1, 2, 3]) await server.send(encodeEnvelope({ kind: 'reply', id, payload: `r${id}` }));
  assert.equal((await Promise.all(sent)).map(String), ['r1', 'r2', 'r3']);
  await rc.close();
  await server.close();
});

test.run();
