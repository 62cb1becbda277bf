/**
 * A Client behind a connection that is reset early (src/peer/client.ts, REFUSAL_WINDOW): a reset
 * is a failed attempt, retried with backoff, never a refusal; only a server that says it is full
 * (tinyproto's FE, packetmq's reason.connectionlimit) stops a Client. A reply counts as the server
 * having spoken. A proxy on 127.0.0.1 resets every connection it carries a little after accepting it.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client, Server } from '../../channel.js';
import { resultWithin, sleep } from '../helpers.js';

/** A TCP proxy to `port` that resets each client connection `lifetime()` ms after accepting it. */
async function resettingProxy(port: number, lifetime: () => number) {
  let accepted = 0;
  const open = new Set<net.Socket>();
  const proxy = net.createServer((down) => {
    accepted++;
    const up = net.connect(port, '127.0.0.1');
    open.add(down).add(up);
    down.on('error', () => {});
    up.on('error', () => {});
    down.pipe(up);
    up.pipe(down);
    const timer = setTimeout(() => {
      down.resetAndDestroy();
      up.destroy();
    }, lifetime());
    down.on('close', () => {
      clearTimeout(timer);
      up.destroy();
      open.delete(down);
    });
    up.on('close', () => {
      down.destroy();
      open.delete(up);
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  return {
    port: (proxy.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((r) => proxy.close(r));
    },
  };
}

test('one-way Client through a proxy resetting every 60-250 ms: it keeps retrying and every message arrives', async () => {
  const N = 2000;
  const got = new Set<string>();
  const server = new Server({ onMessage: (_c, m) => void got.add(String(m)) });
  const { port } = await server.listen(0, '127.0.0.1');
  const proxy = await resettingProxy(port, () => 60 + Math.random() * 190);
  const client = new Client({ initialDelay: 5, factor: 1.5, maxDelay: 40, queueLimit: N });
  void client.connect('127.0.0.1', proxy.port).catch(() => {});
  for (let i = 0; i < N; i++) {
    void client.send(String(i)).catch(() => {});
    if (i % 20 === 19) await sleep(10); // spread over about a second: across many resets
  }
  for (let i = 0; i < 300 && got.size < N; i++) await sleep(20);
  console.log(`  ${got.size} of ${N} messages delivered over ${proxy.accepted()} connections`);
  assert.is(await resultWithin(client.stopped, 0), 'pending', 'the client stopped');
  assert.is(got.size, N);
  await client.close();
  await proxy.close();
  await server.close();
});

test('a request/reply-only Client reset 100 ms after each connect: the replies established it, so it reconnects at once and goes on', async () => {
  const server = new Server({ onRequest: (_c, body) => body });
  const { port } = await server.listen(0, '127.0.0.1');
  const proxy = await resettingProxy(port, () => 100);
  const attempts: number[] = [];
  let connects = 0;
  const client = new Client({
    requests: true,
    initialDelay: 5,
    jitter: 0,
    onConnect: () => void connects++,
    onRetry: (attempt) => void attempts.push(attempt),
  });
  await client.connect('127.0.0.1', proxy.port);
  let replies = 0;
  for (let i = 0; i < 400 && connects < 4; i++) {
    if (client.connected) {
      const r = await client.request(`q${i}`, { timeout: 1000 }).catch(() => undefined);
      if (r !== undefined) replies++;
    }
    await sleep(5);
  }
  assert.is(await resultWithin(client.stopped, 0), 'pending', 'the client stopped');
  assert.ok(connects >= 4, `${connects} connections`);
  assert.ok(replies > 0);
  // Each connection had a reply before its reset: established, so every retry is the first in a row.
  assert.ok(attempts.length >= 3 && attempts.every((a) => a === 1), `attempts ${attempts.join(', ')}`);
  await client.close();
  await proxy.close();
  await server.close();
});

test('a one-way Client reset before the server said anything: each retry waits longer (a failed attempt, not a success)', async () => {
  const server = new Server();
  const { port } = await server.listen(0, '127.0.0.1');
  const proxy = await resettingProxy(port, () => 20);
  const delays: number[] = [];
  const client = new Client({ initialDelay: 5, factor: 2, jitter: 0, onRetry: (_a, d) => void delays.push(d) });
  void client.connect('127.0.0.1', proxy.port).catch(() => {});
  for (let i = 0; i < 200 && delays.length < 4; i++) await sleep(10);
  assert.equal(delays.slice(0, 4), [5, 10, 20, 40]);
  assert.is(await resultWithin(client.stopped, 0), 'pending', 'the client stopped');
  await client.close();
  await proxy.close();
  await server.close();
});

test.run();
