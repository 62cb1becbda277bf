// Server.broadcast()'s state about each connection is its own: nothing on Connection's public surface.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client, Server, type Connection } from '../../channel.js';

test('a Connection carries no broadcast state, before or after broadcasts', async () => {
  let conn: Connection | undefined;
  const server = new Server({ onConnection: (c) => void (conn = c) });
  await server.listen({ memory: 'broadcast-state' });
  const got: string[] = [];
  const client = new Client({ onMessage: (m) => void got.push(String(m)) });
  await client.connect({ memory: 'broadcast-state' });
  while (conn === undefined) await new Promise((r) => setTimeout(r, 1));
  for (const c of [conn, Object.getPrototypeOf(conn) as object]) {
    assert.not.ok('broadcastsPending' in c);
    assert.not.ok('full' in c);
  }
  assert.is(await server.broadcast('one'), 1);
  assert.is(await server.broadcast('two'), 1);
  assert.equal(Object.keys(conn).sort(), ['data', 'channel', 'id', 'requests', 'typed'].sort());
  while (got.length < 2) await new Promise((r) => setTimeout(r, 1));
  assert.equal(got, ['one', 'two']);
  await client.close();
  await server.close();
});

test.run();
