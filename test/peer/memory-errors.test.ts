// The in-process transport's errors are classes with a socket's own codes (EADDRINUSE, ECONNREFUSED).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Client,
  ConnectionRefusedError,
  MemoryAddressInUseError,
  MemoryServerNotFoundError,
  MsgChannelError,
  Server,
} from '../../channel.js';

test('Server.listen({ memory }) on a taken name rejects with MemoryAddressInUseError (EADDRINUSE)', async () => {
  const a = new Server();
  const b = new Server();
  await a.listen({ memory: 'taken-name' });
  try {
    const error = await b.listen({ memory: 'taken-name' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof MemoryAddressInUseError);
    assert.ok(error instanceof MsgChannelError);
    assert.is(error.code, 'EADDRINUSE');
    assert.is(error.name, 'MemoryAddressInUseError');
    assert.match(error.message, "in-process address 'taken-name' is already in use");
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('Client.connect({ memory }) to no server: MemoryServerNotFoundError (ECONNREFUSED), not a refusal', async () => {
  const errors: unknown[] = [];
  const client = new Client({ reconnect: false, onError: (e) => errors.push(e) });
  const error = await client.connect({ memory: 'nobody-here' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof MemoryServerNotFoundError);
  assert.not.ok(error instanceof ConnectionRefusedError);
  assert.is(error.code, 'ECONNREFUSED');
  assert.match(error.message, "no in-process server named 'nobody-here'");
  assert.is(await client.stopped, error);
  await client.close();
});

test('a Client retries a missing in-process server with backoff, then connects once it listens', async () => {
  const retries: unknown[] = [];
  const client = new Client({ initialDelay: 5, jitter: 0, factor: 1, onRetry: (_n, _d, e) => retries.push(e) });
  const connected = client.connect({ memory: 'comes-later' });
  while (retries.length === 0) await new Promise((r) => setTimeout(r, 5));
  const server = new Server();
  await server.listen({ memory: 'comes-later' });
  await connected;
  assert.ok(retries[0] instanceof MemoryServerNotFoundError);
  await client.close();
  await server.close();
});

test.run();
