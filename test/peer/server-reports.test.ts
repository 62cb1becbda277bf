/**
 * Server and packetmq odds and ends (issue 22, item 12): a failed handshake reaches the Server's
 * onError; packetmq's softquit is bounded by its own timeout; a typed broadcast packs its message
 * once, not once per connection.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  Client,
  PacketmqSession,
  Protocol,
  Server,
  TimeoutError,
  ltprotocol,
  packetmqChannelOptions,
  packetmqProtocol,
  raw,
  type Codec,
} from '../../channel.js';
import { resultWithin, sleep } from '../helpers.js';

async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) return false;
    await sleep(5);
  }
  return true;
}

test('Server onError hears of a connection whose handshake failed (auth with a wrong key)', async () => {
  const errors: { error: Error; conn: unknown }[] = [];
  const server = new Server({ auth: { key: 'right' }, onError: (error, conn) => void errors.push({ error, conn }) });
  const { port } = await server.listen(0, '127.0.0.1');
  await Channel.connect('127.0.0.1', port, { auth: { key: 'wrong' } }).then(
    (ch) => ch.destroy(),
    () => {},
  );
  assert.ok(await until(() => errors.length > 0), 'no error reported');
  assert.is((errors[0]!.error as { code?: string }).code, 'ERR_AUTH');
  assert.is(errors[0]!.conn, undefined);
  assert.is(server.connections.size, 0);
  await server.close();
});

test('packetmq softquit({ timeout }) to a peer that stopped reading rejects with TimeoutError and destroys the channel', async () => {
  const proto = packetmqProtocol().define('app:blob', 17, raw);
  const options = { ...packetmqChannelOptions(), maxQueuedBytes: 64 << 20 };
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ...options });
  const { port } = await listener.listening;
  const client = await Channel.connect('127.0.0.1', port, options);
  const server = (await listener.accept())!;
  const a = new PacketmqSession(proto, client, { adaptive: true });
  const b = new PacketmqSession(proto, server, { adaptive: false });
  await Promise.all([a.ready, b.ready]);
  // b never reads again: fill the path so that softquit's own message waits behind the rest.
  const blob = Buffer.alloc(64 * 1024, 1);
  for (let i = 0; i < 400; i++) void a.send('app:blob', blob);
  const quit = a.softquit('reason.userquit', { timeout: 200 });
  const outcome = await resultWithin(
    quit.then(
      () => 'resolved',
      (e: unknown) => e,
    ),
    3000,
  );
  assert.instance(outcome, TimeoutError, String(outcome));
  assert.not.ok(client.isOpen);
  server.destroy();
  await listener.close();
});

test('a typed broadcast packs its message once for every connection', async () => {
  let packs = 0;
  const counting: Codec<string> = {
    pack: (s) => {
      packs++;
      return Buffer.from(s);
    },
    unpack: (b) => b.toString(),
  };
  const proto = new Protocol().define('note', 1, counting);
  const server = new Server({ protocol: proto, framing: ltprotocol() });
  const { port } = await server.listen(0, '127.0.0.1');
  const got: string[] = [];
  const clients = Array.from(
    { length: 3 },
    () => new Client({ protocol: proto, framing: ltprotocol(), onMessage: (m) => void got.push(m.data) }),
  );
  await Promise.all(clients.map((c) => c.connect('127.0.0.1', port)));
  assert.ok(await until(() => server.connections.size === 3));
  packs = 0;
  assert.is(await server.broadcast('note', 'hello'), 3);
  assert.is(packs, 1);
  assert.ok(await until(() => got.length === 3));
  assert.equal(got, ['hello', 'hello', 'hello']);
  await Promise.all(clients.map((c) => c.close()));
  await server.close();
});

test.run();
