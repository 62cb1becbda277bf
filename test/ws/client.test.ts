/**
 * Client over WebSocket (docs/websocket.md, docs/server-client.md): `client.connect('ws://...')`
 * or `connect({ url })` reconnects with backoff over WebSocket as over TCP: a connection the
 * server drops is made again and messages go on; sends made while the server is down wait in the
 * offline queue and go out in order after the reconnect; a server at its connection limit (HTTP
 * 503) is a refusal; requests work over it; bad targets are refused by connect() up front.
 */
import * as http from 'node:http';
import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client, ConnectionRefusedError, Server, type ClientOptions, type Connection } from '../../channel.js';
import { openHandles, sleep, unhandled, until } from '../helpers.js';

const url = (port: number, path = '/app'): `ws://${string}` => `ws://127.0.0.1:${port}${path}`;

/** A client that retries at once (5 ms, no growth, no jitter). */
const quick = (more: ClientOptions = {}): ClientOptions => ({ initialDelay: 5, factor: 1, jitter: 0, ...more });

test('a Client over ws:// reconnects after the server drops the connection, and messages go on both ways', async () => {
  const got: string[] = [];
  const server = new Server({
    onMessage: (conn, message) => {
      got.push(String(message));
      if (String(message) === 'drop me') conn.destroy();
      else void conn.send(`echo ${String(message)}`);
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0, ws: { path: '/app' } });
  const echoes: string[] = [];
  const disconnects: unknown[] = [];
  let connects = 0;
  const client = new Client(
    quick({
      onConnect: () => void connects++,
      onMessage: (message) => void echoes.push(String(message)),
      onDisconnect: (reason) => void disconnects.push(reason),
    }),
  );
  await client.connect(url(port));
  assert.is(client.connected, true);
  await client.send('one');
  await until(() => echoes.length === 1, 2000, 'the first echo');
  await client.send('drop me');
  await until(() => connects === 2 && client.connected, 2000, 'the reconnect');
  assert.is(disconnects.length, 1);
  await client.send('two');
  await until(() => echoes.length === 2, 2000, 'the echo after the reconnect');
  assert.equal(got, ['one', 'drop me', 'two']);
  assert.equal(echoes, ['echo one', 'echo two']);
  await client.close();
  await server.close();
});

test('offline queue over ws://: sends made while the server is down go out in order after the reconnect', async () => {
  const got: string[] = [];
  const makeServer = (): Server => new Server({ onMessage: (_conn, message) => void got.push(String(message)) });
  let server = makeServer();
  const { port } = await server.listen({ host: '127.0.0.1', port: 0, ws: { path: '/app' } });
  const retries: number[] = [];
  const client = new Client(quick({ initialDelay: 10, onRetry: (attempt) => void retries.push(attempt) }));
  await client.connect({ url: url(port) });
  await client.send('before');
  await until(() => got.length === 1, 2000, 'the first message');
  await server.close();
  await until(() => !client.connected, 2000, 'the loss');
  const queued = Array.from({ length: 50 }, (_, i) => client.send(`queued ${i}`));
  assert.is(client.queued, 50);
  await until(() => retries.length >= 2, 2000, 'failed attempts while nobody listens');
  server = makeServer();
  await server.listen({ host: '127.0.0.1', port, ws: { path: '/app' } });
  await Promise.all(queued);
  await until(() => got.length === 51, 2000, 'the queued messages');
  assert.equal(got, ['before', ...Array.from({ length: 50 }, (_, i) => `queued ${i}`)]);
  assert.is(client.queued, 0);
  await client.close();
  await server.close();
});

test('a server at its connection limit answers the upgrade with 503: ConnectionRefusedError stops the Client', async () => {
  const http1 = http.createServer();
  http1.listen(0, '127.0.0.1');
  await once(http1, 'listening');
  const { port } = http1.address() as { port: number };
  const server = new Server({ maxConnections: 1 });
  await server.listen({ ws: { server: http1, path: '/app' } });
  const first = new Client(quick());
  await first.connect(url(port));
  const errors: Error[] = [];
  const second = new Client(quick({ onError: (e) => void errors.push(e) }));
  const e = await second.connect(url(port)).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.instance(e, ConnectionRefusedError);
  assert.instance(await second.stopped, ConnectionRefusedError);
  assert.is(second.state, 'closed');
  await first.close();
  await server.close();
  http1.close();
  await once(http1, 'close');
});

test('requests over ws://: client.request() reaches onRequest, and the server requests the client', async () => {
  let conn: Connection | undefined;
  const server = new Server({
    onConnection: (c) => void (conn = c),
    onRequest: (_conn, body) => `server: ${String(body)}`,
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0, ws: true });
  const client = new Client(quick({ onRequest: (body) => `client: ${String(body)}` }));
  await client.connect(`ws://127.0.0.1:${port}/`);
  assert.is(String(await client.request('hi')), 'server: hi');
  await until(() => conn !== undefined, 2000, 'the connection');
  assert.is(String(await conn!.request('ho')), 'client: ho');
  await client.close();
  await server.close();
});

test('connect() refuses a WebSocket target it could never connect to, before any attempt', async () => {
  const cases: [Client, Promise<void>, RegExp][] = [];
  const badResume = new Client({ resume: 'yes' as unknown as true }); // resume itself works over WebSocket (test/session/ws.test.ts)
  cases.push([badResume, badResume.connect('ws://127.0.0.1:1/'), /resume/]);
  const both = new Client();
  cases.push([both, both.connect({ url: 'ws://127.0.0.1:1/', port: 1 }), /either `url`/]);
  const notWs = new Client();
  cases.push([notWs, notWs.connect({ url: 'http://127.0.0.1:1/' }), /ws:\/\/ or wss:\/\//]);
  for (const [client, connecting, message] of cases) {
    const e = await connecting.then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.instance(e, TypeError);
    assert.match((e as Error).message, message);
    assert.is(client.state, 'idle');
  }
});

test('WebSocket client tests leave no unhandled rejection, socket or timer behind', async () => {
  await sleep(20);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
