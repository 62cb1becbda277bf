/**
 * What a peer can make a RequestChannel hold, and how it notices a peer that leaves (issue 22,
 * items 2 and 6): request bodies count against a Server's memoryBudget while their handler runs;
 * with handlers all busy, the channel still reads pings and pongs, so a heartbeat finds a peer
 * that vanished, and a peer that resets aborts every running handler's signal.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client, RequestChannel, Server, TimeoutError, decodeEnvelope, encodeEnvelope } from '../../channel.js';
import { gate, openHandles, resultWithin, sleep, tcpPair, unhandled, until } from '../helpers.js';

const KiB = 1024;

test('request bodies count against the memoryBudget while their handler runs: reading pauses, then every request is answered', async () => {
  const release = gate();
  let started = 0;
  const server = new Server({
    memoryBudget: 2048 * KiB,
    onRequest: async () => {
      started++;
      await release.promise;
      return 'done';
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const client = new Client({ requests: { timeout: 20_000 } });
  await client.connect('127.0.0.1', port);
  const body = Buffer.alloc(512 * KiB, 0x61);
  const replies = Array.from({ length: 16 }, () => client.request(body));
  await until(() => started >= 2, 5000, 'the first handlers');
  await sleep(300); // let the server read whatever it will
  // 2 MiB of budget holds 4 bodies of 512 KiB, read or on their way in: reading waits.
  assert.ok(started <= 5, `${started} handlers started on 16 x 512 KiB with a 2 MiB budget`);
  release.open();
  const got = await Promise.all(replies);
  assert.equal(
    got.map((b) => String(b)),
    Array.from({ length: 16 }, () => 'done'),
  );
  assert.is(started, 16);
  await client.close();
  await server.close();
});

test('with every handler busy, a heartbeat still finds a peer that vanished (no FIN, no reset); the handlers are aborted', async () => {
  const { client: raw, server } = await tcpPair();
  const aborted: unknown[] = [];
  const srv = new RequestChannel(server, {
    maxPending: 2,
    heartbeat: { interval: 20, timeout: 40 },
    onRequest: (_body, { signal }) =>
      new Promise<string>((resolve) =>
        signal.addEventListener('abort', () => {
          aborted.push(signal.reason);
          resolve('late');
        }),
      ),
  });
  // Two requests take both slots and a third is held; then the peer goes silent and reads nothing.
  for (let id = 1; id <= 3; id++) await raw.send(encodeEnvelope({ kind: 'request', id, payload: 'work' }));
  await until(() => srv.running === 2, 2000, 'two handlers running');
  const ended = await resultWithin(srv.closed, 2000);
  assert.instance(ended, TimeoutError, 'the heartbeat found the silent peer');
  assert.is(aborted.length, 2);
  assert.instance(aborted[0], TimeoutError);
  assert.ok(srv.stats.pingsSent >= 1);
  raw.destroy();
});

test('a peer that resets while every handler is busy aborts each handler’s signal', async () => {
  const server = new Server({});
  const aborted: unknown[] = [];
  let started = 0;
  server.onRequest = (_conn, _body, { signal }) =>
    new Promise<string>((resolve) => {
      started++;
      signal.addEventListener('abort', () => {
        aborted.push(signal.reason);
        resolve('late');
      });
    });
  const withSlots = new Server({ requests: { maxPending: 4 }, onRequest: server.onRequest });
  const { port } = await withSlots.listen(0, '127.0.0.1');
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const frame = (id: number): Buffer => {
    const body = encodeEnvelope({ kind: 'request', id, payload: 'work' });
    return Buffer.concat([Buffer.from(`\r\nMSG ${body.length}\r\n`), body]);
  };
  socket.write(Buffer.concat(Array.from({ length: 12 }, (_, i) => frame(i + 1))));
  await until(() => started === 4, 2000, 'four handlers running');
  socket.resetAndDestroy();
  await until(() => aborted.length === 4, 2000, 'every running handler aborted');
  assert.is(started, 4, 'held requests are dropped, not started, once the peer is gone');
  await withSlots.close();
  await server.close();
});

test('requests held while every slot is taken are bounded by highWaterMark bytes too, then reading pauses', async () => {
  const { client: raw, server } = await tcpPair();
  const release = gate<string>();
  const srv = new RequestChannel(server, { maxPending: 4, highWaterMark: 4096, onRequest: () => release.promise });
  const body = Buffer.alloc(3000, 0x61);
  for (let id = 1; id <= 10; id++) await raw.send(encodeEnvelope({ kind: 'request', id, payload: body }));
  await until(() => srv.running === 4 && srv.heldRequests === 2, 2000, '4 running, 2 held');
  await sleep(50);
  // 2 x 3000 bytes passed the 4096-byte mark: no more are read, although 4 could be held by count.
  assert.is(srv.heldRequests, 2);
  assert.is(srv.stats.requestsReceived, 6);
  release.open('ok');
  for (let i = 0; i < 10; i++) assert.is(decodeEnvelope(await raw.recv()).kind, 'reply');
  assert.is(srv.stats.repliesSent, 10);
  raw.destroy();
  await srv.closed;
});

test('with reading paused (held requests at their bound), a heartbeat still finds a peer that went silent while it could reach us', async () => {
  const { client: raw, server } = await tcpPair();
  const aborted: unknown[] = [];
  const srv = new RequestChannel(server, {
    maxPending: 2,
    highWaterMark: 4096,
    heartbeat: { interval: 20, timeout: 40 },
    onRequest: (_body, { signal }) =>
      new Promise<string>((resolve) =>
        signal.addEventListener('abort', () => {
          aborted.push(signal.reason);
          resolve('late');
        }),
      ),
  });
  // Two running, two held past the 4096-byte mark: the RequestChannel stops reading. The peer then
  // goes silent (no FIN, no reset), far from filling the channel's read-ahead: it could reach us.
  const body = Buffer.alloc(3000, 0x61);
  for (let id = 1; id <= 6; id++) await raw.send(encodeEnvelope({ kind: 'request', id, payload: body }));
  await until(() => srv.running === 2 && srv.heldRequests === 2, 2000, '2 running, 2 held');
  const ended = await resultWithin(srv.closed, 2000);
  assert.instance(ended, TimeoutError, 'the heartbeat found the silent peer although reading was paused');
  assert.is(aborted.length, 2);
  raw.destroy();
});

test('a burst of pings is answered by fewer pongs, the last of them after the last ping', async () => {
  const { client: raw, server } = await tcpPair();
  const srv = new RequestChannel(server);
  const ping = encodeEnvelope({ kind: 'ping' });
  for (let i = 0; i < 2000; i++) void raw.send(ping);
  await until(() => srv.stats.pingsReceived === 2000, 5000, 'every ping read');
  let pongs = 0;
  for (;;) {
    try {
      assert.is(decodeEnvelope(await raw.recv({ timeout: 200 })).kind, 'pong');
    } catch (error) {
      assert.instance(error, TimeoutError); // a recv that times out takes no message
      break;
    }
    pongs++;
  }
  assert.ok(pongs >= 1 && pongs <= 2000, `${pongs} pongs`);
  assert.is(pongs, srv.stats.pongsSent);
  // Nothing is owed: one more ping, one more pong.
  await raw.send(ping);
  assert.is(decodeEnvelope(await raw.recv({ timeout: 2000 })).kind, 'pong');
  assert.is(srv.stats.pongsSent, pongs + 1);
  raw.destroy();
  await srv.closed;
});

test('nothing left behind: no unhandled rejection, socket or timer', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
