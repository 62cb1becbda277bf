/**
 * Timeouts and delays (src/validate.ts checkTimeout/checkDelay, src/util.ts after/raceTimeout):
 * one meaning of 0 (no limit, as is Infinity) for every timeout, values above setTimeout's
 * 2^31 - 1 ms honoured instead of firing after 1 ms, ports checked, and async APIs that reject on a
 * bad value rather than throw. Every wait is bounded; nothing here waits for a long timer to fire.
 */
import { createHook } from 'node:async_hooks';
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, Client, Server, tinyproto } from '../../channel.js';
import { resultWithin, sleep } from '../helpers.js';

const LONG = 2 ** 31; // one past setTimeout's longest delay

test('recv({ timeout: 2**31 }) waits: it does not time out after a few ms', async () => {
  const [a, b] = Channel.pair();
  const r = a.recv({ timeout: LONG });
  r.catch(() => {});
  assert.is(await resultWithin(r, 50), 'pending');
  await b.send('late');
  assert.is(String(await r), 'late');
  await Promise.all([a.close(), b.close()]);
});

test('recv({ timeout: Infinity }) and recv({ timeout: 0 }) mean no limit', async () => {
  const [a, b] = Channel.pair();
  const inf = a.recv({ timeout: Infinity });
  const zero = a.recv({ timeout: 0 });
  inf.catch(() => {});
  zero.catch(() => {});
  assert.is(await resultWithin(zero, 30), 'pending');
  await b.send('1');
  await b.send('2');
  assert.equal([String(await inf), String(await zero)], ['1', '2']);
  await Promise.all([a.close(), b.close()]);
});

test('close({ timeout: 2**31 }) flushes all of 8 MiB to a slow reader instead of destroying the connection', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0 });
  const { port } = await listener.listening;
  const tx = await Channel.connect('127.0.0.1', port);
  const rx = (await listener.accept())!;
  const part = Buffer.alloc(1024 * 1024, 7);
  for (let i = 0; i < 8; i++) void tx.send(part).catch(() => {});
  const closed = tx.close({ timeout: LONG });
  closed.catch(() => {});
  await sleep(30); // the reader starts late: the flush takes longer than 1 ms
  let bytes = 0;
  try {
    for (;;) bytes += (await rx.recv()).length;
  } catch {
    // closed by the peer once everything arrived (or destroyed early: the count says)
  }
  assert.is(bytes, 8 * 1024 * 1024);
  await closed;
  await rx.close();
  await listener.close();
});

test('handshakeTimeout: 2**31 does not fail the handshake after a few ms', async () => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => void sockets.push(s)); // accepts, never answers tinyproto's init
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const { port } = silent.address() as net.AddressInfo;
  const connecting = Channel.connect({ host: '127.0.0.1', port, framing: tinyproto, handshakeTimeout: LONG });
  connecting.catch(() => {});
  assert.is(await resultWithin(connecting, 60), 'pending');
  for (const s of sockets) s.destroy();
  await connecting.then(
    (ch) => ch.destroy(),
    () => {},
  );
  await new Promise((r) => silent.close(r));
});

test('an idle channel with a 1e10 ms idleTimeout runs no timer in 100 ms (the watchdog does not spin)', async () => {
  // Count the callbacks of every Timeout made from here on: the channel's watchdog interval included.
  const timeouts = new Set<number>();
  let fired = 0;
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout') timeouts.add(id);
    },
    before(id) {
      if (timeouts.has(id)) fired++;
    },
  });
  hook.enable();
  const [a, b] = Channel.pair({ idleTimeout: 1e10, headerTimeout: 0, bodyTimeout: 0 });
  await a.ready;
  await b.ready;
  const before = fired;
  await new Promise<void>((r) => setTimeout(r, 100)); // itself one callback
  const during = fired - before;
  hook.disable();
  assert.ok(during <= 2, `${during} timer callbacks in 100 ms`);
  await Promise.all([a.close(), b.close()]);
});

test('Server and Client take idleTimeout: 0 (off), as a Channel does; Infinity too', () => {
  new Server({ idleTimeout: 0 });
  new Client({ idleTimeout: 0 });
  new Server({ idleTimeout: Infinity, broadcastTimeout: Infinity });
  new Client({ idleTimeout: Infinity, connectTimeout: 0 });
  Channel.pair({ idleTimeout: Infinity, handshakeTimeout: Infinity }).forEach((c) => c.destroy());
  assert.throws(() => new Client({ idleTimeout: -1 }), RangeError);
  assert.throws(() => new Server({ idleTimeout: Number.NaN }), RangeError);
});

test('a Client with connectTimeout: Infinity connects', async () => {
  const server = new Server();
  const { port } = await server.listen(0, '127.0.0.1');
  const client = new Client({ connectTimeout: Infinity, initialDelay: 5 });
  assert.is(await resultWithin(client.connect('127.0.0.1', port), 2000), undefined);
  assert.ok(client.connected);
  await client.close();
  await server.close();
});

test('maxDelay: Infinity with initialDelay: 2**31 waits: one attempt, not hundreds', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((r) => probe.close(r)); // nothing listens there now: every attempt is refused at once
  let retries = 0;
  const client = new Client({ initialDelay: LONG, maxDelay: Infinity, jitter: 0, onRetry: () => void retries++ });
  void client.connect('127.0.0.1', port).catch(() => {});
  await sleep(200);
  assert.is(retries, 1);
  assert.is(client.state, 'waiting');
  assert.is(await resultWithin(client.close(), 1000), undefined);
});

test('client.connect(host, 70000) rejects with a RangeError (it does not retry for ever, nor throw)', async () => {
  const client = new Client({ initialDelay: 1 });
  let p: Promise<void> | undefined;
  assert.not.throws(() => (p = client.connect('127.0.0.1', 70000)));
  const outcome = await resultWithin(
    p!.then(
      () => 'connected',
      (e: unknown) => e,
    ),
    500,
  );
  assert.instance(outcome, RangeError);
  assert.match(String(outcome), /port/);
  await client.close();
});

test('close() of Server, Connection and Client rejects on a bad timeout instead of throwing', async () => {
  const server = new Server();
  const { port } = await server.listen(0, '127.0.0.1');
  const client = new Client();
  await client.connect('127.0.0.1', port);
  await sleep(20);
  const [conn] = server.connections;
  for (const close of [
    () => server.close({ timeout: -1 }),
    () => conn!.close({ timeout: Number.NaN }),
    () => client.close({ timeout: -5 }),
  ]) {
    let p: Promise<void> | undefined;
    assert.not.throws(() => (p = close()));
    await p!.then(
      () => assert.unreachable('a bad timeout was taken'),
      (e: unknown) => assert.instance(e, RangeError),
    );
  }
  await client.close();
  await server.close();
});

test('Server.close({ timeout: 2**31 }) waits for a busy handler instead of destroying its connection', async () => {
  let handled = false;
  let arrived!: () => void;
  const inHandler = new Promise<void>((r) => (arrived = r));
  const server = new Server({
    onMessage: async () => {
      arrived();
      await sleep(50);
      handled = true;
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const client = new Client({ reconnect: false });
  await client.connect('127.0.0.1', port);
  await client.send('work');
  await inHandler;
  await server.close({ timeout: LONG }); // rejected with TimeoutError after ~1 ms before
  assert.ok(handled);
  await client.close();
});

test.run();
