/**
 * What a peer can make a RequestChannel hold, and how it notices a peer that leaves (issue 22,
 * items 2 and 6): request bodies count against a Server's memoryBudget while their handler runs;
 * with handlers all busy, the channel still reads pings and pongs, so a heartbeat finds a peer
 * that vanished, and a peer that resets aborts every running handler's signal.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client, RequestChannel, Server, TimeoutError, encodeEnvelope } from '../../channel.js';
import { openHandles, settledWithin, sleep, unhandled } from '../helpers.js';
import { gate, tcpPair, until } from './helpers.js';

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
  const ended = await settledWithin(srv.closed, 2000);
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

test('nothing left behind: no unhandled rejection, socket or timer', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
