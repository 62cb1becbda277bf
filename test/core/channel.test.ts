import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  ChannelClosedError,
  MessageTooLargeError,
  ProtocolError,
  TimeoutError,
  UnexpectedEofError,
} from '../../channel.js';
import {
  echoServer,
  makeCertificate,
  openHandles,
  rejectsMatching,
  rejectsWith,
  resultWithin,
  sleep,
  tlsTest,
  unhandled,
} from '../helpers.js';

/** Skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without openssl, which makes the certificate. */
const withOpenssl = tlsTest('channel TLS');

test('the README example: an echo server serving every client at once', async () => {
  const listener = Channel.listen('127.0.0.1', 0, { reuse: true });
  const { port } = await listener.listening;
  const served = (async () => {
    for await (const ch of listener) void serve(ch); // not awaited
  })();
  async function serve(ch: Channel) {
    for await (const msg of ch) await ch.send(msg); // echo until the client closes
  }
  const ch = await Channel.connect('127.0.0.1', port);
  await ch.send('Hello World');
  assert.is((await ch.recv()).toString(), 'Hello World');
  await ch.close();
  await listener.close();
  await served; // the for-await loop ends once the listener is closed
});

test('exposes the remote ip and port, as the gist does', async () => {
  const { listener, port } = await echoServer();
  const ch = await Channel.connect({ host: '127.0.0.1', port });
  assert.is(ch.ip, '127.0.0.1');
  assert.is(ch.port, port);
  await ch.close();
  await listener.close();
});

test('1,000 concurrent sends and recvs keep call order over TCP', async () => {
  const { listener, port } = await echoServer();
  const ch = await Channel.connect('127.0.0.1', port);
  const n = 1000;
  const sends: Promise<void>[] = [];
  const recvs: Promise<Buffer>[] = [];
  for (let i = 0; i < n; i++) {
    // Interleave calls, with sizes that cross the copy/no-copy boundary and the slab size.
    recvs.push(ch.recv());
    const size = i % 97 === 0 ? 100_000 : i % 7;
    const body = Buffer.alloc(size + 4, i % 251);
    body.writeUInt32BE(i, 0);
    sends.push(ch.send(body));
  }
  await Promise.all(sends);
  const got = await Promise.all(recvs);
  got.forEach((b, i) => {
    assert.is(b.readUInt32BE(0), i);
    assert.is(b.length, (i % 97 === 0 ? 100_000 : i % 7) + 4);
  });
  await ch.close();
  await listener.close();
});

test('a 100 MiB message arrives whole and intact', async () => {
  const size = 100 * 1024 * 1024;
  const listener = Channel.listen('127.0.0.1', 0, { maxMessageSize: size });
  const { port } = await listener.listening;
  const big = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4096) big.writeUInt32LE(i, i);
  const digest = createHash('sha256').update(big).digest('hex');
  const received = (async () => {
    const ch = (await listener.accept())!;
    const m = await ch.recv();
    await ch.send(createHash('sha256').update(m).digest('hex'));
    await ch.close();
    return m.length;
  })();
  const ch = await Channel.connect('127.0.0.1', port, { maxMessageSize: size });
  await ch.send(big);
  assert.is((await ch.recv()).toString(), digest);
  assert.is(await received, size);
  await ch.close();
  await listener.close();
});

test('the peer closing mid-frame rejects recv with ERR_UNEXPECTED_EOF', async () => {
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  const raw = net.connect(port, '127.0.0.1');
  const ch = (await listener.accept())!;
  raw.end('\r\nMSG 2\r\nok\r\nMSG 10\r\nabc');
  assert.is((await ch.recv()).toString(), 'ok');
  const e = await rejectsWith(ch.recv(), 'ERR_UNEXPECTED_EOF');
  assert.ok(e instanceof UnexpectedEofError && e instanceof ProtocolError);
  assert.ok((await ch.closed) instanceof UnexpectedEofError);
  await listener.close();
});

test('a clean close by the peer delivers every message, then ends iteration and rejects recv with ERR_CHANNEL_CLOSED', async () => {
  const [a, b] = Channel.pair();
  await a.send('one');
  await a.send('two');
  await a.close();
  const got: string[] = [];
  for await (const m of b) got.push(m.toString());
  assert.equal(got, ['one', 'two']);
  const e = await rejectsWith(b.recv(), 'ERR_CHANNEL_CLOSED');
  assert.ok(e instanceof ChannelClosedError);
  assert.is(await b.closed, undefined);
});

test('a malformed frame ends that channel only; the listener and other clients carry on', async () => {
  const { listener, port } = await echoServer();
  const good = await Channel.connect('127.0.0.1', port);
  const bad = net.connect(port, '127.0.0.1');
  const badClosed = new Promise((r) => bad.on('close', r));
  bad.on('error', () => {});
  bad.write('\r\nMSG 3\r\nabc');
  const echoed = await new Promise<Buffer>((resolve) => bad.once('data', resolve));
  assert.is(echoed.toString('latin1'), '\r\nMSG 3\r\nabc');
  bad.write('\r\nMSG -1\r\n');
  await badClosed; // the server dropped the bad client
  await good.send('still here');
  assert.is((await good.recv()).toString(), 'still here');
  const late = await Channel.connect('127.0.0.1', port);
  await late.send('new client');
  assert.is((await late.recv()).toString(), 'new client');
  await good.close();
  await late.close();
  await listener.close();
});

test('a protocol error rejects every pending recv with that error', async () => {
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  const raw = net.connect(port, '127.0.0.1');
  raw.on('error', () => {});
  const ch = (await listener.accept())!;
  const pending = [ch.recv(), ch.recv(), ch.recv({ timeout: 5000 })];
  raw.write('\r\nMSG 1\r\nx\r\nXSG 1\r\ny');
  const first = await pending[0]!;
  assert.is(first.toString(), 'x');
  const e1 = await rejectsWith(pending[1]!, 'ERR_PROTOCOL');
  const e2 = await rejectsWith(pending[2]!, 'ERR_PROTOCOL');
  assert.is(e1, e2);
  assert.is((e1 as ProtocolError).offset, 12);
  await rejectsWith(ch.send('after'), 'ERR_CHANNEL_CLOSED');
  raw.destroy();
  await listener.close();
});

test('a message above maxMessageSize is refused from its header on receive', async () => {
  const listener = Channel.listen('127.0.0.1', 0, { maxMessageSize: 1000 });
  const { port } = await listener.listening;
  const client = await Channel.connect('127.0.0.1', port);
  const server = (await listener.accept())!;
  await client.send(Buffer.alloc(1000));
  await client.send(Buffer.alloc(1001));
  assert.is((await server.recv()).length, 1000);
  const e = await rejectsWith(server.recv(), 'ERR_MESSAGE_TOO_LARGE');
  assert.ok(e instanceof MessageTooLargeError && e.size === 1001 && e.limit === 1000);
  await client.closed;
  await listener.close();
});

test('a message above maxMessageSize is refused before any byte is written on send', async () => {
  const [a, b] = Channel.pair({ maxMessageSize: 10 });
  const e = await rejectsWith(a.send(Buffer.alloc(11)), 'ERR_MESSAGE_TOO_LARGE');
  assert.ok(e instanceof MessageTooLargeError);
  await rejectsWith(a.send('x'.repeat(11)), 'ERR_MESSAGE_TOO_LARGE');
  await a.send('0123456789'); // the channel is unharmed
  assert.is((await b.recv()).toString(), '0123456789');
  await a.close();
  await b.close();
});

test('a recv that times out takes no message: it goes to the next caller', async () => {
  const [a, b] = Channel.pair();
  const e = await rejectsWith(b.recv({ timeout: 20 }), 'ERR_TIMEOUT');
  assert.ok(e instanceof TimeoutError);
  await a.send('first');
  assert.is((await b.recv()).toString(), 'first');
  await a.close();
  await b.close();
});

test('aborting queued and waiting recvs never loses a message', async () => {
  const [a, b] = Channel.pair();
  const c1 = new AbortController();
  const c3 = new AbortController();
  const r1 = b.recv({ signal: c1.signal }); // the waiting one
  const r2 = b.recv(); // queued behind it
  const r3 = b.recv({ signal: c3.signal }); // queued
  const r4 = b.recv({ timeout: 10 }); // queued, times out while queued
  const r5 = b.recv();
  c1.abort(new Error('stop 1'));
  c3.abort(new Error('stop 3'));
  await rejectsMatching(r1, /stop 1/);
  await rejectsMatching(r3, /stop 3/);
  await rejectsWith(r4, 'ERR_TIMEOUT');
  await a.send('m1');
  await a.send('m2');
  assert.is((await r2).toString(), 'm1');
  assert.is((await r5).toString(), 'm2');
  // An already-aborted signal takes nothing either.
  await a.send('m3');
  await rejectsMatching(b.recv({ signal: AbortSignal.abort(new Error('pre')) }), /pre/);
  assert.is((await b.recv()).toString(), 'm3');
  await a.close();
  await b.close();
});

test('recvs resolve in call order when messages arrive later', async () => {
  const [a, b] = Channel.pair();
  const recvs = Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? b.recv({ timeout: 5000 }) : b.recv()));
  for (let i = 0; i < 100; i++) await a.send(String(i));
  assert.equal(
    (await Promise.all(recvs)).map(String),
    Array.from({ length: 100 }, (_, i) => String(i)),
  );
  await a.close();
  await b.close();
});

// A recv made while earlier ones are still pending comes after them, however it is made: with no
// options, with options, as recvFrame() or through the iterator. The nasty moment is right after
// the first pending recv settles: the next messages are already buffered and the second pending
// recv has not taken its own yet, so a later call must not take it first.
const lateCalls: [string, (ch: Channel) => Promise<Buffer>][] = [
  ['recv()', (ch) => ch.recv()],
  ['recv({ timeout })', (ch) => ch.recv({ timeout: 5000 })],
  ['recv({ signal })', (ch) => ch.recv({ signal: new AbortController().signal })],
  ['recvFrame()', (ch) => ch.recvFrame().then((f) => f.data)],
  [
    'the iterator',
    (ch) =>
      ch[Symbol.asyncIterator]()
        .next()
        .then((r) => r.value as Buffer),
  ],
];
for (const [how, late] of lateCalls) {
  test(`recv order: ${how} called when the first of two pending recvs settles comes after the second`, async () => {
    const [a, b] = Channel.pair();
    const r1 = b.recv();
    const r2 = b.recv();
    let r3: Promise<Buffer> | undefined;
    const third = r1.then(() => (r3 = late(b)));
    // One write, so the three frames arrive in one chunk: r1 takes the first at once, the second
    // and third are buffered when r3 is called.
    void a.send('first');
    void a.send('second');
    void a.send('third');
    assert.is(String(await r1), 'first');
    await third;
    const got = await Promise.all([r2, r3!].map((p) => resultWithin(p, 2000)));
    assert.equal(got.map(String), ['second', 'third'], 'the documented order: first, second, third');
    await a.close();
    await b.close();
  });
}

for (const [how, cancel] of [
  ['aborted', (c: AbortController) => ({ signal: c.signal })],
  ['timed out', () => ({ timeout: 10 })],
] as const) {
  test(`a recv ${how} while queued behind a waiting recv takes no message: the next recv gets it`, async () => {
    const [a, b] = Channel.pair();
    const c = new AbortController();
    const r1 = b.recv(); // waiting for the next frame
    const r2 = b.recv(cancel(c)); // queued behind r1
    const r3 = b.recv(); // queued behind r2
    c.abort(new Error('stop 2'));
    const e = (await r2.then(
      (m) => new Error(`r2 resolved with ${String(m)}`),
      (error: unknown) => error,
    )) as Error & { code?: string };
    assert.ok(/stop 2/.test(e.message) || e.code === 'ERR_TIMEOUT', String(e));
    await a.send('m1');
    await a.send('m2');
    assert.is(String(await resultWithin(r1, 2000)), 'm1');
    assert.is(String(await resultWithin(r3, 2000)), 'm2', 'the cancelled recv took no message');
    await a.send('m3');
    assert.is(String(await resultWithin(b.recv(), 2000)), 'm3');
    assert.is(b.bufferedMessages, 0);
    await a.close();
    await b.close();
  });
}

test('an aborted send sends nothing; the sends around it go out in order', async () => {
  const [a, b] = Channel.pair({ sendHighWaterMark: 1 });
  const big = Buffer.alloc(200_000, 7);
  const c = new AbortController();
  const s1 = a.send(big); // fills the transport: the next sends queue
  const s2 = a.send('x', { signal: c.signal });
  const s3 = a.send('y');
  c.abort(new Error('cancelled'));
  await s1;
  await rejectsMatching(s2, /cancelled/);
  await s3;
  assert.is((await b.recv()).length, big.length);
  assert.is((await b.recv()).toString(), 'y');
  await a.close();
  await b.close();
});

test('tryRecv() takes a buffered message without a promise, and never jumps a waiting recv()', async () => {
  const [a, b] = Channel.pair();
  assert.is(b.tryRecv(), undefined); // nothing buffered
  const r1 = b.recv();
  const r2 = b.recv(); // queued behind r1
  // The three frames leave in one write and arrive in one chunk: r1 and r2 take the first two as
  // they arrive, in call order; a tryRecv() once r1 has settled gets the third, never r2's.
  let between: Buffer | undefined | 'not run' = 'not run';
  void r1.then(() => (between = b.tryRecv()));
  void a.send('first');
  void a.send('second');
  void a.send('third');
  assert.is((await r1).toString(), 'first');
  assert.is((await r2).toString(), 'second');
  assert.is(String(between), 'third');
  assert.is(b.tryRecv(), undefined);
  // The drain idiom reads everything in order.
  for (let i = 0; i < 100; i++) void a.send(String(i));
  const got: string[] = [];
  while (got.length < 100) got.push((b.tryRecv() ?? (await b.recv())).toString());
  assert.equal(
    got,
    Array.from({ length: 100 }, (_, i) => String(i)),
  );
  await a.close();
  await b.close();
});

test('the channel iterator: return() keeps the channel open, a finished iterator stays done, errors are thrown', async () => {
  const [a, b] = Channel.pair();
  await a.send('x');
  const it = b[Symbol.asyncIterator]();
  assert.is(it[Symbol.asyncIterator](), it);
  assert.equal(await it.next(), { value: Buffer.from('x'), done: false });
  assert.equal(await it.return!(), { value: undefined, done: true });
  assert.equal(await it.next(), { value: undefined, done: true });
  assert.ok(b.isOpen);
  await a.close();
  assert.equal(await b.iterRecv().next(), { value: undefined, done: true }); // peer closed cleanly
  // A protocol error is thrown by the loop, not swallowed.
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  const raw = net.connect(port, '127.0.0.1');
  raw.on('error', () => {});
  const server = (await listener.accept())!;
  raw.write('\r\nMSG 1\r\nk\r\nMSG x');
  const seen: string[] = [];
  const e = await rejectsWith(
    (async () => {
      for await (const m of server) seen.push(m.toString());
    })(),
    'ERR_PROTOCOL',
  );
  assert.ok(e instanceof ProtocolError);
  assert.equal(seen, ['k']);
  raw.destroy();
  await listener.close();
});

test('received bodies are ordinary Buffers (not thenables)', async () => {
  const [a, b] = Channel.pair();
  await a.send('hello');
  const m = await b.recv();
  assert.ok(Buffer.isBuffer(m));
  assert.ok(m instanceof Buffer);
  assert.is(m.constructor, Buffer);
  assert.is(typeof (m as unknown as { then?: unknown }).then, 'undefined');
  assert.is(m.toString(), 'hello');
  assert.is(m.subarray(1, 3).toString(), 'el');
  assert.ok(Buffer.isBuffer(m.subarray(1)));
  assert.ok(m.equals(Buffer.from('hello')));
  assert.is(JSON.stringify(m), JSON.stringify(Buffer.from('hello')));
  await a.close();
  await b.close();
});

test('breaking out of iteration keeps the channel open and unread messages for recv()', async () => {
  const [a, b] = Channel.pair();
  for (const m of ['1', '2', '3']) await a.send(m);
  for await (const m of b) {
    assert.is(m.toString(), '1');
    break;
  }
  assert.ok(b.isOpen);
  assert.is((await b.recv()).toString(), '2');
  assert.is((await b.recv()).toString(), '3');
  await a.close();
  await b.close();
});

test('breaking out of the listener loop closes the listener; channels handed out stay open', async () => {
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  const client = await Channel.connect('127.0.0.1', port);
  let server: Channel | undefined;
  for await (const ch of listener) {
    server = ch;
    break;
  }
  assert.is(listener.address, null);
  await rejectsWith(Channel.connect('127.0.0.1', port), 'ECONNREFUSED');
  await client.send('after break');
  assert.is((await server!.recv()).toString(), 'after break');
  await server!.send('reply');
  assert.is((await client.recv()).toString(), 'reply');
  await client.close();
  await server!.close();
});

test('clients that connect while nobody iterates wait in a queue; none is lost', async () => {
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  const clients = await Promise.all(Array.from({ length: 5 }, () => Channel.connect('127.0.0.1', port)));
  await Promise.all(clients.map((c, i) => c.send(`client ${i}`)));
  while (listener.pending < 5) await sleep(5);
  const seen: string[] = [];
  for await (const ch of listener) {
    seen.push((await ch.recv()).toString());
    await ch.close();
    if (seen.length === 5) break;
  }
  assert.equal(seen.sort(), ['client 0', 'client 1', 'client 2', 'client 3', 'client 4']);
  await Promise.all(clients.map((c) => c.close()));
});

test('listening rejects on EADDRINUSE, and the iterator throws it', async () => {
  const first = Channel.listen('127.0.0.1', 0);
  const { port } = await first.listening;
  const second = Channel.listen('127.0.0.1', port, { reuse: false });
  await rejectsWith(second.listening, 'EADDRINUSE');
  await rejectsWith(second[Symbol.asyncIterator]().next(), 'EADDRINUSE');
  await first.close();
});

test('a restarted server binds the same port at once', async () => {
  const { listener, port } = await echoServer();
  const c = await Channel.connect('127.0.0.1', port);
  await c.send('x');
  await c.recv();
  await listener.close();
  const again = Channel.listen('127.0.0.1', port, { reuse: true });
  assert.is((await again.listening).port, port);
  await c.close();
  await again.close();
});

test('connect errors: refused, timeout and abort', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const freePort = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  await rejectsWith(Channel.connect('127.0.0.1', freePort), 'ECONNREFUSED');

  // A TCP server that never answers the TLS handshake: the connect timeout fires.
  const silent = net.createServer((s) => s.on('error', () => {}));
  const sockets: net.Socket[] = [];
  silent.on('connection', (s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as net.AddressInfo).port;
  const e = await rejectsWith(
    Channel.connect('127.0.0.1', port, { tls: { rejectUnauthorized: false }, timeout: 50 }),
    'ERR_TIMEOUT',
  );
  assert.ok(e instanceof TimeoutError);
  const c = new AbortController();
  const p = Channel.connect('127.0.0.1', port, { tls: { rejectUnauthorized: false }, signal: c.signal });
  setTimeout(() => c.abort(new Error('user gave up')), 20);
  await rejectsMatching(p, /user gave up/);
  await rejectsMatching(
    Channel.connect('127.0.0.1', port, { signal: AbortSignal.abort(new Error('already')) }),
    /already/,
  );
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
});

test('bad options throw RangeError saying what was expected', () => {
  assert.throws(
    () => Channel.pair({ maxMessageSize: -1 }),
    (e: unknown) => e instanceof RangeError && /maxMessageSize/.test(e.message),
  );
  assert.throws(() => Channel.pair({ highWaterMark: 0 }), RangeError);
  assert.throws(() => Channel.listen('127.0.0.1', 70000), RangeError);
});

test('over a Unix socket', async () => {
  const path = join(tmpdir(), `msgchannel-${process.pid}-${Date.now()}.sock`);
  const listener = Channel.listen({ path });
  const bound = await listener.listening;
  assert.is(bound.address, path);
  const serving = (async () => {
    const ch = (await listener.accept())!;
    assert.is(ch.ip, undefined);
    for await (const m of ch) await ch.send(Buffer.concat([Buffer.from('unix:'), m]));
  })();
  const ch = await Channel.connect({ path });
  await ch.send('hi');
  assert.is((await ch.recv()).toString(), 'unix:hi');
  await ch.close();
  await serving;
  await listener.close();
});

withOpenssl('over TLS, with a certificate made at test time', async () => {
  const { key, cert } = makeCertificate();
  const { listener, port } = await echoServer({ tls: { key, cert } });
  const ch = await Channel.connect('127.0.0.1', port, { tls: { ca: cert } });
  await ch.send('secret');
  assert.is((await ch.recv()).toString(), 'secret');
  const big = Buffer.alloc(3 * 1024 * 1024, 9);
  await ch.send(big);
  assert.ok((await ch.recv()).equals(big));
  await ch.close();
  // An untrusted certificate is refused, and the listener carries on.
  await rejectsMatching(Channel.connect('127.0.0.1', port, { tls: {} }), /self[- ]signed/);
  const again = await Channel.connect('127.0.0.1', port, { tls: { ca: cert } });
  await again.send('still serving');
  assert.is((await again.recv()).toString(), 'still serving');
  await again.close();
  await listener.close();
});

test('Channel.pair: in memory, same semantics', async () => {
  const [a, b] = Channel.pair();
  assert.is(a.ip, undefined);
  await a.send('ping');
  assert.is((await b.recv()).toString(), 'ping');
  await b.send(new Uint8Array([1, 2, 3]));
  assert.equal([...(await a.recv())], [1, 2, 3]);
  await a.send('');
  assert.is((await b.recv()).length, 0);
  a.destroy();
  await rejectsWith(b.recv(), 'ERR_CHANNEL_CLOSED');
  await rejectsWith(a.send('x'), 'ERR_CHANNEL_CLOSED');
});

test('receive backpressure: a reader that does not read bounds both sides; nothing is lost', async () => {
  const hwm = 256 * 1024;
  const listener = Channel.listen('127.0.0.1', 0, { highWaterMark: hwm });
  const { port } = await listener.listening;
  const sender = await Channel.connect('127.0.0.1', port, { sendHighWaterMark: 64 * 1024 });
  const reader = (await listener.accept())!;
  const total = 40 * 1024 * 1024;
  const size = 4096;
  let sent = 0;
  const sending = (async () => {
    for (let i = 0; sent < total; i++) {
      const body = Buffer.alloc(size, i & 0xff);
      body.writeUInt32BE(i, 0);
      await sender.send(body);
      sent += size;
    }
  })();
  // The sender stalls well before everything is sent, because nobody reads.
  // Stalled = no progress for 300 ms (long enough not to mistake a busy machine for a stall).
  let last = -1;
  while (sent !== last) {
    last = sent;
    await sleep(300);
  }
  assert.ok(sent < total / 2, `sender stalled after ${sent} bytes`);
  // Reading pauses above the mark; the chunk being decoded when it passed the mark still lands:
  // Node reads 64 KiB at a time, Bun reads bigger chunks (up to about 1 MiB here).
  const readChunk = process.versions.bun !== undefined ? 1024 * 1024 : 64 * 1024;
  assert.ok(
    reader.bufferedMessages * size <= hwm + readChunk + size,
    `reader holds ${reader.bufferedMessages} messages`,
  );
  for (let i = 0; i < total / size; i++) {
    const m = await reader.recv();
    assert.is(m.readUInt32BE(0), i);
  }
  await sending;
  await sender.close();
  await reader.close();
  await listener.close();
});

test('send backpressure: awaiting send() stalls once the peer stops reading', async () => {
  const [a, b] = Channel.pair({ highWaterMark: 64 * 1024, sendHighWaterMark: 64 * 1024 });
  let sent = 0;
  const body = Buffer.alloc(8192);
  let p: Promise<void> = Promise.resolve();
  for (let i = 0; i < 1000; i++) {
    p = a.send(body);
    if ((await resultWithin(p, 50)) === 'pending') break;
    sent++;
  }
  assert.ok(sent < 100, `sent ${sent} messages of 8 KiB without the reader reading`);
  let read = 0;
  while (read <= sent) {
    await b.recv();
    read++;
  }
  await p;
  await a.close();
  await b.close();
});

test('close() sends every queued message to the peer', async () => {
  const [a, b] = Channel.pair({ sendHighWaterMark: 1 });
  const sends = Array.from({ length: 300 }, (_, i) => a.send(Buffer.alloc(1000, i % 256)));
  const closing = a.close();
  const got: Buffer[] = [];
  for await (const m of b) got.push(m);
  await closing;
  await Promise.all(sends);
  assert.is(got.length, 300);
  got.forEach((m, i) => assert.is(m[0], i % 256));
  await rejectsWith(a.send('late'), 'ERR_CHANNEL_CLOSED');
  await rejectsWith(a.recv(), 'ERR_CHANNEL_CLOSED');
});

test('close() is idempotent and rejects pending recvs with ERR_CHANNEL_CLOSED', async () => {
  const [a, b] = Channel.pair();
  const pending = a.recv();
  const c1 = a.close();
  const c2 = a.close();
  assert.is(c1, c2);
  await rejectsWith(pending, 'ERR_CHANNEL_CLOSED');
  await c1;
  await b.closed;
  assert.is(await a.closed, undefined);
});

test('close() times out against a peer that never reads, and destroys the connection', async () => {
  const [a, b] = Channel.pair({ highWaterMark: 1024, sendHighWaterMark: 1024 });
  for (let i = 0; i < 200; i++) void a.send(Buffer.alloc(4096));
  await rejectsWith(a.close({ timeout: 50 }), 'ERR_TIMEOUT');
  assert.ok((await a.closed) instanceof TimeoutError);
  await b.close().catch(() => {});
});

test('a reset connection rejects pending recvs with the transport error', async () => {
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  const raw = net.connect(port, '127.0.0.1');
  const ch = (await listener.accept())!;
  const pending = ch.recv();
  raw.resetAndDestroy();
  await rejectsWith(pending, 'ECONNRESET');
  assert.is(((await ch.closed) as Error & { code?: string }).code, 'ECONNRESET');
  await listener.close();
});

test('await using closes the channel and the listener', async () => {
  let port = 0;
  let client: Channel | undefined;
  {
    await using listener = Channel.listen('127.0.0.1', 0);
    port = (await listener.listening).port;
    await using c = await Channel.connect('127.0.0.1', port);
    client = c;
  }
  assert.not.ok(client.isOpen);
  await rejectsWith(Channel.connect('127.0.0.1', port), 'ECONNREFUSED');
});

test('sends refused by maxQueuedBytes reject with ERR_SEND_QUEUE_FULL, un-awaited ones without an unhandled rejection', async () => {
  const [a, b] = Channel.pair({ maxQueuedBytes: 64 * 1024, sendHighWaterMark: 16 * 1024, highWaterMark: 1024 });
  const before = unhandled.length;
  for (let i = 0; i < 200; i++) void a.send(Buffer.alloc(8192)); // fire and forget, to a reader that never reads
  await rejectsWith(a.send(Buffer.alloc(8192)), 'ERR_SEND_QUEUE_FULL');
  assert.ok(a.isOpen, 'the channel stays open');
  await sleep(20);
  assert.is(unhandled.length, before);
  a.destroy();
  b.destroy();
});

/** Runs `scenario` with a TCP server that accepts and reads; returns every exception that escaped to the process meanwhile. */
async function escapedDuring(scenario: (port: number) => Promise<void>): Promise<unknown[]> {
  const escaped: unknown[] = [];
  const onUncaught = (error: unknown): void => void escaped.push(error);
  process.prependListener('uncaughtException', onUncaught);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s.on('error', () => {}).on('data', () => {}));
  });
  try {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    await scenario((server.address() as net.AddressInfo).port);
    await sleep(100); // what used to throw did so right after the TCP connect
  } finally {
    process.removeListener('uncaughtException', onUncaught);
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
  return escaped;
}

test('bad options reject Channel.connect() before it connects, never an uncaught exception after', async () => {
  const escaped = await escapedDuring(async (port) => {
    const framing = await rejectsMatching(
      Channel.connect('127.0.0.1', port, { framing: 'int32' as never }),
      /^Expected `framing` to be a Framing \(e\.g\. int32, not the string 'int32'\), got the string 'int32'$/,
    );
    assert.instance(framing, TypeError);
    assert.instance(
      await rejectsMatching(Channel.connect('127.0.0.1', port, { maxMessageSize: -1 }), /`maxMessageSize`.*got -1$/),
      RangeError,
    );
    await rejectsMatching(
      Channel.connect('127.0.0.1', port, { framing: 'ltprotocol' as never }),
      /e\.g\. ltprotocol\(\), not the string 'ltprotocol'/,
    );
    await rejectsMatching(
      Channel.connect('127.0.0.1', port, { framing: 42 as never }),
      /to be a Framing \(e\.g\. msg, int32, ltprotocol\(\)\), got 42$/,
    );
  });
  assert.equal(escaped, []);
});

test("a port given as a string: the error says it got the string '5000'", async () => {
  const e = await rejectsMatching(
    Channel.connect('127.0.0.1', '5000' as never),
    /^Expected `port` to be an integer from 0 to 65535, got the string '5000'$/,
  );
  assert.instance(e, RangeError);
});

test('send({ type }) on a framing without a type field says so', async () => {
  const [a, b] = Channel.pair();
  await rejectsMatching(
    a.send('x', { type: 5 }),
    /^framing msg has no type field: send without `type`, or use a framing with one \(ltprotocol\(\), lengthPrefixed\(\{ typeSize \}\)\)$/,
  );
  await a.send('y', { type: 0 }); // 0, every frame's type here, is still accepted
  assert.is(String(await b.recv()), 'y');
  a.destroy();
  b.destroy();
});

test('leaves no unhandled rejection, socket or timer behind', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
