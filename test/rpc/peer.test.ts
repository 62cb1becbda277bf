/** Server onRequest, Client.request and Connection.request end to end, over TCP and in process. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChannelClosedError, Client, Protocol, RemoteError, Server, type Connection } from '../../channel.js';
import { gate, openHandles, rejectsWith, sleep, unhandled, until } from '../helpers.js';

test('Server onRequest + Client.request over TCP; one-way messages still go to onMessage, both ways; the server can request too', async () => {
  const got: string[] = [];
  const server = new Server({
    onRequest: async (conn, body) => {
      if (String(body) === 'fail') throw Object.assign(new Error('nope'), { code: 'ENOPE' });
      return `${conn.id}:${String(body).toUpperCase()}`;
    },
    onMessage: async (conn, msg) => {
      got.push(String(msg));
      await conn.send(`ack ${msg}`);
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const fromServer: string[] = [];
  const client = new Client({
    requests: { timeout: 2000 },
    onMessage: (m) => void fromServer.push(String(m)),
    onRequest: (body, c, ctx) => {
      assert.is(c, client);
      assert.is(ctx.signal.aborted, false);
      return `client says ${body}`;
    },
  });
  await client.connect('127.0.0.1', port);
  const [conn] = server.connections as ReadonlySet<Connection>;
  const replies = await Promise.all(['a', 'b', 'c'].map((x) => client.request(x)));
  assert.equal(replies.map(String), [`${conn!.id}:A`, `${conn!.id}:B`, `${conn!.id}:C`]);
  const e = (await rejectsWith(client.request('fail'), 'ERR_REMOTE')) as RemoteError;
  assert.is(e.message, 'nope');
  assert.is(e.remoteCode, 'ENOPE');
  await client.send('one');
  await client.send('two');
  await until(() => fromServer.length === 2);
  assert.equal(got, ['one', 'two']);
  assert.equal(fromServer, ['ack one', 'ack two']);
  assert.is(String(await conn!.request('hi')), 'client says hi');
  assert.is(conn!.requests!.stats.requestsReceived, 4);
  await client.close();
  await server.close();
});

test('in process too ({ memory }); a Server with `requests` but no onRequest answers RemoteError ERR_NO_HANDLER', async () => {
  const server = new Server({ requests: true });
  await server.listen({ memory: 'rpc-test' });
  const client = new Client({ requests: true });
  await client.connect({ memory: 'rpc-test' });
  const e = (await rejectsWith(client.request('x'), 'ERR_REMOTE')) as RemoteError;
  assert.is(e.remoteCode, 'ERR_NO_HANDLER');
  server.onRequest = (_conn, body) => body; // handlers are assignable
  assert.is(String(await client.request('echo')), 'echo');
  await client.close();
  await server.close();
});

test('Client.request: TypeError without requests, ChannelClosedError while not connected; a Server rejects protocol + onRequest', async () => {
  const plain = new Client();
  await rejectsWith(
    plain.request('x').catch((e: Error) => Promise.reject(Object.assign(e, { code: e.name }))),
    'TypeError',
  );
  const idle = new Client({ requests: true });
  const e = await rejectsWith(idle.request('x'), 'ERR_CHANNEL_CLOSED');
  assert.match(e.message, /not connected \(state idle\)/);
  assert.throws(
    () => new Server({ protocol: new Protocol().define('a', 1), onRequest: () => 'x' }),
    /no `protocol` with `requests`/,
  );
  assert.throws(() => new Client({ requests: { maxPending: 0 } }), /maxPending/);
  assert.throws(() => new Server({ requests: 'yes' as never }), /`requests` to be a boolean/);
});

test("Server.close aborts running request handlers (their signal) and the client's pending requests reject", async () => {
  const aborted = gate<unknown>();
  const started = gate();
  const server = new Server({
    onRequest: (_conn, _body, { signal }) =>
      new Promise((_resolve, reject) => {
        started.open();
        signal.addEventListener('abort', () => {
          aborted.open(signal.reason);
          reject(signal.reason);
        });
      }),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const client = new Client({ requests: true, reconnect: false });
  await client.connect('127.0.0.1', port);
  const p = client.request('slow', { timeout: 0 });
  await started.promise;
  await server.close({ timeout: 2000 });
  assert.instance(await aborted.promise, ChannelClosedError);
  await rejectsWith(p, 'ERR_CHANNEL_CLOSED');
  await client.stopped;
  await client.close();
});

test('a client request in flight when the connection drops rejects; after the reconnect, requests work again', async () => {
  const server = new Server({ onRequest: (_c, body) => body });
  const { port } = await server.listen(0, '127.0.0.1');
  const client = new Client({ requests: true, initialDelay: 10, jitter: 0 });
  await client.connect('127.0.0.1', port);
  assert.is(String(await client.request('before')), 'before');
  const [conn] = server.connections;
  conn!.destroy();
  await until(() => client.state !== 'connected');
  await rejectsWith(client.request('meanwhile'), 'ERR_CHANNEL_CLOSED');
  await until(() => client.connected, 3000, 'the reconnect');
  assert.is(String(await client.request('after')), 'after');
  await client.close();
  await server.close();
});

test('nothing left behind: no unhandled rejection, socket or timer', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
