/**
 * Channel.connect('ws://...') (src/ws/connect.ts): one deadline and one abort signal cover the
 * whole connect, the HTTP upgrade and then the channel's handshakes, with or without `resume`;
 * a failed connect leaves no socket or timer behind.
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocketServer } from 'ws';
import { Channel, TimeoutError } from '../../channel.js';
import { openHandles, sleep, unhandled } from '../helpers.js';

/** A TCP server that accepts connections and never answers (the upgrade request goes unanswered). */
async function mute(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A WebSocket server that completes the upgrade and then says nothing. */
async function silentWebSocket(): Promise<{ port: number; opened: () => number; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  let opened = 0;
  wss.on('connection', (ws) => {
    opened++;
    ws.on('error', () => {});
  });
  return {
    port: (wss.address() as net.AddressInfo).port,
    opened: () => opened,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.unreachable('it resolved'),
    (error: unknown) => error,
  );
}

test('timeout: an upgrade that is never answered rejects with TimeoutError', async () => {
  const server = await mute();
  for (const resume of [undefined, true]) {
    const started = Date.now();
    const error = await rejection(Channel.connect(`ws://127.0.0.1:${server.port}/`, { timeout: 150, resume }));
    assert.instance(error, TimeoutError);
    assert.ok(Date.now() - started < 2000, 'within the timeout, not much later');
  }
  await server.close();
});

test('timeout: it covers the handshakes after the upgrade too (auth, or the session hello)', async () => {
  const server = await silentWebSocket();
  const url = `ws://127.0.0.1:${server.port}/` as const;
  assert.instance(await rejection(Channel.connect(url, { timeout: 150, auth: { key: 'k' } })), TimeoutError);
  assert.instance(await rejection(Channel.connect(url, { timeout: 150, resume: true })), TimeoutError);
  assert.is(server.opened(), 2); // both upgrades were done: the deadline ran on
  await server.close();
});

test('signal: aborting during the upgrade or during the handshakes rejects with its reason', async () => {
  const muted = await mute();
  const silent = await silentWebSocket();
  const cases: [number, object][] = [
    [muted.port, {}], // in the upgrade
    [muted.port, { resume: true }],
    [silent.port, { auth: { key: 'k' } }], // in the channel's handshake
    [silent.port, { resume: true }], // in the session hello
  ];
  for (const [port, options] of cases) {
    const controller = new AbortController();
    const connecting = Channel.connect(`ws://127.0.0.1:${port}/`, { ...options, signal: controller.signal });
    await sleep(50);
    const reason = new Error('stop');
    controller.abort(reason);
    assert.is(await rejection(connecting), reason);
  }
  assert.is(silent.opened(), 2);
  const aborted = new AbortController();
  aborted.abort(new Error('before'));
  const before = await rejection(Channel.connect(`ws://127.0.0.1:${muted.port}/`, { signal: aborted.signal }));
  assert.is((before as Error).message, 'before');
  await muted.close();
  await silent.close();
});

test('nothing left behind: no unhandled rejection, no open handle', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
