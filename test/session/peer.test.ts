/**
 * Server and Client with `resume`, through a chaos proxy that resets every connection again and
 * again: the server keeps one Connection per session (onConnection and onClose once each), the
 * client connects once (onConnect once, no onDisconnect), and numbered messages both ways arrive
 * exactly once, in order.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client, Server, SessionLostError, type Connection } from '../../channel.js';
import { openHandles, sleep, unhandled, until } from '../helpers.js';
import { ChaosProxy } from './chaos.js';

test('Server and Client with resume: one Connection and one connect per session through 10 resets', async () => {
  const resume = { heartbeat: 200 } as const;
  let connections = 0;
  let closes = 0;
  const atServer: number[] = [];
  const server = new Server({
    resume,
    onConnection: () => void connections++,
    onClose: () => void closes++,
    onMessage: async (conn: Connection, msg: Buffer) => {
      atServer.push(msg.readUInt32BE(0));
      await conn.send(msg); // echo
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const proxy = await ChaosProxy.start(port);
  let connects = 0;
  let disconnects = 0;
  const atClient: number[] = [];
  const client = new Client({
    resume,
    onConnect: () => void connects++,
    onDisconnect: () => void disconnects++,
    onMessage: (msg: Buffer) => void atClient.push(msg.readUInt32BE(0)),
  });
  await client.connect('127.0.0.1', proxy.port);
  const N = 1000;
  for (let i = 0; i < N; i++) {
    if (i % 100 === 50) await proxy.cutConnected();
    const b = Buffer.alloc(4);
    b.writeUInt32BE(i);
    await client.send(b);
  }
  await until(() => atClient.length === N, 10_000, 'every echo');
  const range = Array.from({ length: N }, (_, i) => i);
  assert.equal(atServer, range);
  assert.equal(atClient, range);
  assert.ok(proxy.accepted > 10, `${proxy.accepted} connections through the proxy`);
  assert.is(connections, 1);
  assert.is(connects, 1);
  assert.is(disconnects, 0);
  await client.close();
  await until(() => closes === 1, 5000, 'the server-side close');
  await server.close();
  await proxy.close();
});

test('a Client whose session is lost (the server restarted) hears SessionLostError and starts a new session', async () => {
  const resume = { heartbeat: 100 } as const;
  const first = new Server({ resume });
  const proxy = await ChaosProxy.start((await first.listen(0, '127.0.0.1')).port);
  const reasons: unknown[] = [];
  let connects = 0;
  const client = new Client({ resume, onConnect: () => void connects++, onDisconnect: (r) => void reasons.push(r) });
  await client.connect('127.0.0.1', proxy.port);
  proxy.stall(); // the first server "dies" silently; a new one takes its place
  await first.close({ timeout: 10 }).catch(() => {}); // its session is destroyed: an ABORT the stall drops
  const second = new Server({ resume });
  proxy.retarget((await second.listen(0, '127.0.0.1')).port);
  await until(() => connects === 2, 5000, 'a new session');
  assert.is(reasons.length, 1);
  assert.instance(reasons[0], SessionLostError);
  await client.close();
  await second.close();
  await proxy.close();
});

test('nothing left behind: no unhandled rejection, no open handle', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
