import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  Client,
  ConnectionRefusedError,
  Protocol,
  Server,
  TimeoutError,
  msgpack,
  packetmqProtocol,
  tinyproto,
  type Connection,
} from '../../channel.js';
import { openHandles, resultWithin, sleep, unhandled } from '../helpers.js';

const digest = (b: Buffer): Buffer => createHash('sha1').update(b).digest().subarray(0, 8);

/** A message carrying client id, sequence number, padding, and a checksum of all that. */
function checked(client: number, seq: number): Buffer {
  const body = Buffer.alloc(16 + (seq % 7) * 13, seq & 0xff);
  body.writeUInt32BE(client, 0);
  body.writeUInt32BE(seq, 4);
  return Buffer.concat([body, digest(body)]);
}

function verify(msg: Buffer): { client: number; seq: number } {
  const body = msg.subarray(0, msg.length - 8);
  if (!digest(body).equals(msg.subarray(msg.length - 8))) throw new Error('checksum mismatch');
  return { client: body.readUInt32BE(0), seq: body.readUInt32BE(4) };
}

test('echo server with callbacks: onConnection, onMessage, onClose and the connection set', async () => {
  const events: string[] = [];
  const server = new Server({
    onConnection: (conn) => void events.push(`open ${conn.ip}`),
    onMessage: (conn, msg) => conn.send(msg),
    onClose: (_conn, reason) => void events.push(`close ${String(reason)}`),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const ch = await Channel.connect('127.0.0.1', port);
  await ch.send('hello');
  assert.is(String(await ch.recv()), 'hello');
  assert.is(server.connections.size, 1);
  await ch.close();
  for (let i = 0; i < 100 && server.connections.size > 0; i++) await sleep(5);
  assert.is(server.connections.size, 0);
  assert.equal(events, ['open 127.0.0.1', 'close undefined']);
  await server.close();
});

test('1,000 concurrent clients echo checksummed messages: nothing lost, duplicated or reordered', async () => {
  const CLIENTS = 1000;
  const PER_CLIENT = 20;
  const server = new Server({ backlog: 2048, onMessage: (conn, msg) => conn.send(msg) });
  const { port } = await server.listen(0, '127.0.0.1');
  let bad = 0;
  const clients: Client[] = [];
  const done: Promise<void>[] = [];
  for (let c = 0; c < CLIENTS; c++) {
    let expect = 0;
    let finish!: () => void;
    done.push(new Promise<void>((r) => (finish = r)));
    const client = new Client({
      onMessage: (msg) => {
        const { client: who, seq } = verify(msg);
        if (who !== c || seq !== expect) bad++;
        expect++;
        if (expect === PER_CLIENT) finish();
      },
      onError: () => void bad++,
    });
    clients.push(client);
  }
  await Promise.all(clients.map((client) => client.connect('127.0.0.1', port)));
  for (let i = 0; i < 500 && server.connections.size < CLIENTS; i++) await sleep(10); // the server accepts a little later
  assert.is(server.connections.size, CLIENTS);
  const sends: Promise<void>[] = [];
  for (let seq = 0; seq < PER_CLIENT; seq++) {
    for (let c = 0; c < CLIENTS; c++) sends.push(clients[c]!.send(checked(c, seq)));
  }
  await Promise.all(sends);
  await Promise.all(done);
  assert.is(bad, 0);
  await Promise.all(clients.map((c) => c.close()));
  await server.close();
  assert.is(server.connections.size, 0);
});

test('a client reconnects after the server restarts and its queued messages arrive in order', async () => {
  const got: string[] = [];
  const makeServer = (): Server => new Server({ onMessage: (_conn, msg) => void got.push(String(msg)) });
  let server = makeServer();
  const { port } = await server.listen(0, '127.0.0.1');
  const connects: number[] = [];
  const disconnects: unknown[] = [];
  const client = new Client({
    initialDelay: 20,
    jitter: 0,
    onConnect: () => void connects.push(Date.now()),
    onDisconnect: (reason) => void disconnects.push(reason),
  });
  await client.connect('127.0.0.1', port);
  await client.send('before');
  for (let i = 0; i < 100 && got.length < 1; i++) await sleep(5);
  await server.close();
  for (let i = 0; i < 200 && client.connected; i++) await sleep(5);
  assert.is(client.connected, false);
  const queued = Array.from({ length: 50 }, (_, i) => client.send(`queued ${i}`));
  assert.is(client.queued, 50);
  await sleep(100); // a few failed attempts while nobody listens
  server = makeServer();
  await server.listen(port, '127.0.0.1');
  await Promise.all(queued);
  for (let i = 0; i < 200 && got.length < 51; i++) await sleep(5);
  assert.equal(got, ['before', ...Array.from({ length: 50 }, (_, i) => `queued ${i}`)]);
  assert.is(connects.length, 2);
  assert.is(disconnects.length, 1);
  await client.close();
  await server.close();
});

test('backoff: exponential from initialDelay, capped, and maxRetries gives up rejecting the queue', async () => {
  const delays: number[] = [];
  const errors: Error[] = [];
  // A port nobody listens on: bind one, then close it.
  const l = Channel.listen('127.0.0.1', 0);
  const { port } = await l.listening;
  await l.close();
  const client = new Client({
    initialDelay: 5,
    factor: 2,
    maxDelay: 20,
    jitter: 0,
    maxRetries: 4,
    onRetry: (_n, d) => void delays.push(d),
    onError: (e) => void errors.push(e),
  });
  const first = client.connect('127.0.0.1', port);
  const queued = client.send('never');
  try {
    await first;
    assert.unreachable('connected to nobody');
  } catch (error) {
    assert.is((error as { code?: string }).code, 'ERR_RECONNECT_FAILED');
  }
  assert.equal(delays, [5, 10, 20, 20]);
  try {
    await queued;
    assert.unreachable('a queued message was dropped silently');
  } catch (error) {
    assert.is((error as { code?: string }).code, 'ERR_NOT_SENT');
    assert.is((error as { data?: unknown }).data, 'never');
  }
  assert.is(((await client.stopped) as { code?: string })?.code, 'ERR_RECONNECT_FAILED');
  assert.is(errors.length, 1);
  await client.close();
});

test('offline queue: past queueLimit send() rejects naming the message; offline reject policy', async () => {
  const client = new Client({ queueLimit: 2 });
  const a = client.send('a');
  const b = client.send('b');
  try {
    await client.send('c');
    assert.unreachable();
  } catch (error) {
    const e = error as { code?: string; data?: unknown; seq?: number; message: string };
    assert.is(e.code, 'ERR_NOT_SENT');
    assert.is(e.data, 'c');
    assert.is(e.seq, 3);
    assert.match(e.message, /#3.*queueLimit 2/);
  }
  await client.close();
  for (const p of [a, b]) {
    try {
      await p;
      assert.unreachable();
    } catch (error) {
      assert.is((error as { code?: string }).code, 'ERR_NOT_SENT');
    }
  }
  const strict = new Client({ offline: 'reject' });
  try {
    await strict.send('x');
    assert.unreachable();
  } catch (error) {
    assert.is((error as { code?: string }).code, 'ERR_NOT_SENT');
  }
  await strict.close();
});

test('maxConnections (MSG: a reset before any frame): the extra Client is not stopped, it retries with growing backoff and gets in once there is room', async () => {
  const server = new Server({ maxConnections: 2, onMessage: (conn, msg) => conn.send(msg) });
  const { port } = await server.listen(0, '127.0.0.1');
  const a = new Client();
  const b = new Client();
  await a.connect('127.0.0.1', port);
  await b.connect('127.0.0.1', port);
  const errors: Error[] = [];
  const delays: number[] = [];
  const c = new Client({
    initialDelay: 10,
    factor: 2,
    maxDelay: 80,
    jitter: 0,
    onError: (e) => void errors.push(e),
    onRetry: (_n, d) => void delays.push(d),
  });
  void c.connect('127.0.0.1', port).catch(() => {});
  const sent = c.send('queued while refused');
  for (let i = 0; i < 200 && delays.length < 3; i++) await sleep(10);
  assert.equal(delays.slice(0, 3), [10, 20, 40], 'a reset is a failed attempt: the waits grow');
  assert.is(await resultWithin(c.stopped, 0), 'pending', 'a reset does not stop the client');
  assert.is(await resultWithin(sent, 0), 'pending', 'a send on a reset connection is not resolved');
  assert.equal(errors, []);
  assert.is(server.connections.size, 2);
  // A plain Channel sees the reset.
  try {
    const ch = await Channel.connect('127.0.0.1', port); // the reset may come before or after connect
    assert.is(((await ch.closed) as { code?: string } | undefined)?.code, 'ECONNRESET');
  } catch (error) {
    assert.is((error as { code?: string }).code, 'ECONNRESET');
  }
  // Room again once one leaves: the retrying client gets in and its send goes through.
  await a.close();
  assert.is(await resultWithin(sent, 3000), undefined);
  const d = new Client();
  await b.close();
  for (let i = 0; i < 100 && server.connections.size > 1; i++) await sleep(5);
  await d.connect('127.0.0.1', port);
  await d.send('ok');
  await Promise.all([c.close(), d.close()]);
  await server.close();
});

test('maxConnections over tinyproto: the FE init byte, ConnectionRefusedError at connect', async () => {
  const server = new Server({ framing: tinyproto, maxConnections: 1 });
  const { port } = await server.listen(0, '127.0.0.1');
  const a = await Channel.connect('127.0.0.1', port, { framing: tinyproto });
  try {
    await Channel.connect('127.0.0.1', port, { framing: tinyproto });
    assert.unreachable('accepted over the limit');
  } catch (error) {
    assert.instance(error, ConnectionRefusedError);
  }
  const c = new Client({ framing: tinyproto, onError: () => {} });
  try {
    await c.connect('127.0.0.1', port);
    assert.unreachable('accepted over the limit');
  } catch (error) {
    assert.is((error as { code?: string }).code, 'ERR_CONNECTION_LIMIT');
  }
  await a.close();
  await c.close();
  await server.close();
});

test('maxConnections in process with packetmq: the connect fails with ConnectionRefusedError', async () => {
  const proto = packetmqProtocol().define('app:say', 17, msgpack<string>());
  const server = new Server({ protocol: proto, packetmq: true, maxConnections: 1 });
  await server.listen({ memory: 'pmq-limit' });
  const a = new Client({ protocol: proto, packetmq: true });
  await a.connect({ memory: 'pmq-limit' });
  const b = new Client({ protocol: proto, packetmq: true, onError: () => {} });
  try {
    await b.connect({ memory: 'pmq-limit' });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ConnectionRefusedError);
  }
  await a.close();
  await b.close();
  await server.close();
});

test('close() with messages in flight: sent ones are delivered, received ones are handled, then it closes', async () => {
  const handled: number[] = [];
  let serverConn: Connection | undefined;
  const server = new Server({
    onConnection: (conn) => void (serverConn = conn),
    onMessage: async (_conn, msg) => {
      await sleep(1); // a slow handler: messages pile up in the inbox
      handled.push(Number(String(msg)));
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const got: number[] = [];
  let disconnected = false;
  const client = new Client({
    reconnect: false,
    onMessage: (msg) => void got.push(Number(String(msg))),
    onDisconnect: () => void (disconnected = true),
  });
  await client.connect('127.0.0.1', port);
  for (let i = 0; i < 100; i++) void client.send(String(i));
  for (let i = 0; i < 200 && server.connections.size === 0; i++) await sleep(2);
  while (serverConn === undefined) await sleep(2);
  // Wait until all 100 have arrived (few are handled yet: the handler is slow).
  for (let i = 0; i < 500 && handled.length + serverConn.channel.bufferedMessages < 99; i++) await sleep(1); // (+1 in the handler)
  assert.ok(handled.length < 100);
  for (let i = 0; i < 500; i++) void serverConn.send(String(i)); // not awaited: in flight
  await server.close();
  assert.equal(
    handled,
    Array.from({ length: 100 }, (_, i) => i),
  );
  for (let i = 0; i < 200 && !disconnected; i++) await sleep(5);
  assert.equal(
    got,
    Array.from({ length: 500 }, (_, i) => i),
  );
  assert.ok(disconnected);
  await client.close();
});

test('close() from a handler (tinyproto SRVQUIT) does not wait for itself', async () => {
  const server = new Server({
    framing: tinyproto,
    onMessage: async (conn, msg) => {
      if (String(msg) === 'SRVQUIT') await server.close();
      else await conn.send(`Echo back: ${msg}`);
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const ch = await Channel.connect('127.0.0.1', port, { framing: tinyproto });
  await ch.send('hi');
  assert.is(String(await ch.recv()), 'Echo back: hi');
  await ch.send('SRVQUIT');
  assert.is(await ch.closed, undefined);
  await server.close();
});

test('close() waits for a handler at most its timeout: a handler that never returns does not hang it (Server and Client)', async () => {
  // Before, Server.close() waited for the serve loop after destroying it, and Client.close() had no
  // bound on a handler at all: both stayed pending for ever.
  const server = new Server({ onMessage: () => new Promise(() => {}), onConnection: (conn) => void conn.send('hi') });
  const { port } = await server.listen(0, '127.0.0.1');
  const client = new Client({ reconnect: false, onMessage: () => new Promise(() => {}) });
  await client.connect('127.0.0.1', port);
  await client.send('stuck'); // the server's handler never returns either
  for (let i = 0; i < 200 && client.state !== 'connected'; i++) await sleep(5);
  await sleep(50); // both handlers are running
  const t0 = Date.now();
  assert.is(await resultWithin(client.close({ timeout: 100 }), 2000), undefined, 'the client closes past its timeout');
  assert.is(client.state, 'closed');
  assert.is(await resultWithin(client.stopped, 100), undefined);
  const outcome = await resultWithin(
    server.close({ timeout: 100 }).then(
      () => 'resolved',
      (e: unknown) => e,
    ),
    2000,
  );
  assert.instance(outcome, TimeoutError, String(outcome));
  assert.ok(Date.now() - t0 < 1500, `${Date.now() - t0} ms`);
});

test('close() called from a handler before its first await does not wait for that handler (Server and Client)', async () => {
  const closedFromHandlers: string[] = [];
  const server = new Server({
    onClose: async () => {
      const closing = server.close(); // before the handler's first await: known to come from it
      await sleep(1);
      await closing;
      closedFromHandlers.push('server closed');
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const client: Client = new Client({
    reconnect: false,
    onMessage: async () => {
      const closing = client.close();
      await sleep(1);
      await closing;
      closedFromHandlers.push('client closed');
    },
  });
  await client.connect('127.0.0.1', port);
  for (const conn of server.connections) await conn.send('bye');
  for (let i = 0; i < 200 && closedFromHandlers.length < 2; i++) await sleep(5);
  assert.equal(closedFromHandlers, ['client closed', 'server closed']);
  assert.is(client.state, 'closed');
});

test('Server.close() awaited from its own handler after an await waits for it at most its timeout, then rejects', async () => {
  let outcome: unknown;
  let closedAfter = -1;
  const server = new Server({
    onMessage: async () => {
      await sleep(1);
      const t0 = Date.now();
      outcome = await server.close({ timeout: 100 }).catch((e: unknown) => e);
      closedAfter = Date.now() - t0;
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const ch = await Channel.connect('127.0.0.1', port);
  await ch.send('quit');
  for (let i = 0; i < 400 && closedAfter < 0; i++) await sleep(5);
  assert.ok(closedAfter >= 90 && closedAfter < 1500, `closed after ${closedAfter} ms`);
  assert.instance(outcome, TimeoutError);
  const ended = ch.closed.then(
    () => 'ended',
    () => 'ended',
  );
  assert.is(await resultWithin(ended, 1000), 'ended', 'its connection was destroyed past the timeout');
});

test('a Client close() awaited from its own handler after an await waits for it at most its timeout', async () => {
  const server = new Server({ onConnection: (conn) => void conn.send('bye') });
  const { port } = await server.listen(0, '127.0.0.1');
  let closedAfter = -1;
  const client: Client = new Client({
    reconnect: false,
    onMessage: async () => {
      await sleep(1);
      const t0 = Date.now();
      await client.close({ timeout: 100 }); // never settled before: it waited for this handler
      closedAfter = Date.now() - t0;
    },
  });
  await client.connect('127.0.0.1', port);
  for (let i = 0; i < 400 && closedAfter < 0; i++) await sleep(5);
  assert.ok(closedAfter >= 90 && closedAfter < 1500, `closed after ${closedAfter} ms`);
  assert.is(client.state, 'closed');
  await server.close();
});

test('listen several times: two TCP ports, a Unix path, an in-process name; broadcast reaches all', async () => {
  const server = new Server();
  const a = await server.listen(0, '127.0.0.1');
  const b = await server.listen({ port: 0, host: '127.0.0.1' });
  const path = join(tmpdir(), `msgchannel-server-${process.pid}.sock`);
  await server.listen(path);
  await server.listen({ memory: 'multi' });
  assert.is(server.addresses.length, 4);
  const got: string[] = [];
  const clients = [
    new Client({ onMessage: (m) => void got.push(`a ${m}`) }),
    new Client({ onMessage: (m) => void got.push(`b ${m}`) }),
    new Client({ onMessage: (m) => void got.push(`u ${m}`) }),
    new Client({ onMessage: (m) => void got.push(`m ${m}`) }),
  ];
  await clients[0]!.connect('127.0.0.1', a.port);
  await clients[1]!.connect('127.0.0.1', b.port);
  await clients[2]!.connect(path);
  await clients[3]!.connect({ memory: 'multi' });
  assert.is(server.connections.size, 4);
  assert.is(await server.broadcast('hi'), 4);
  for (let i = 0; i < 100 && got.length < 4; i++) await sleep(5);
  assert.equal(got.sort(), ['a hi', 'b hi', 'm hi', 'u hi']);
  await Promise.all(clients.map((c) => c.close()));
  await server.close();
  try {
    await server.listen(0);
    assert.unreachable();
  } catch (error) {
    assert.is((error as { code?: string }).code, 'ERR_CHANNEL_CLOSED');
  }
});

test('typed: a Protocol gives { name, data } to handlers and send(name, data)', async () => {
  const { ltprotocol, uint32, raw } = await import('../../channel.js');
  const lt = new Protocol({ maxId: 255 }).define('NumMsg', 1, uint32).define('StrMsg', 2, raw);
  const server = new Server({
    framing: ltprotocol(),
    protocol: lt,
    onConnection: async (conn) => {
      await conn.send('NumMsg', 200);
      await conn.send('StrMsg', Buffer.from('hello world!'));
    },
    onMessage: (conn, m) => (m.name === 'NumMsg' ? conn.send('NumMsg', m.data + 1) : undefined),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const got: string[] = [];
  const client = new Client({
    framing: ltprotocol(),
    protocol: lt,
    onMessage: (m, c) => {
      got.push(`${m.name} ${m.name === 'StrMsg' ? Buffer.from(m.data).toString() : m.data}`);
      if (m.name === 'StrMsg') return c.send('NumMsg', 41);
    },
  });
  await client.connect('127.0.0.1', port);
  for (let i = 0; i < 100 && got.length < 3; i++) await sleep(5);
  assert.equal(got, ['NumMsg 200', 'StrMsg hello world!', 'NumMsg 42']);
  await client.close();
  await server.close();
});

test('packetmq in memory: handshake, echo, softquit reasons both ways', async () => {
  const proto = packetmqProtocol().define('chat:say', 17, msgpack<{ text: string }>());
  const closes: unknown[] = [];
  const server = new Server({
    protocol: proto,
    packetmq: true,
    onMessage: (conn, m) => conn.send('chat:say', { text: `echo ${m.data.text}` }),
    onClose: (_c, reason) => void closes.push(reason),
  });
  await server.listen({ memory: 'pmq' });
  const got: string[] = [];
  const reasons: unknown[] = [];
  const client = new Client({
    protocol: proto,
    packetmq: true,
    initialDelay: 10,
    jitter: 0,
    onMessage: (m) => void got.push(m.data.text),
    onDisconnect: (r) => void reasons.push(r),
  });
  await client.connect({ memory: 'pmq' });
  await client.send('chat:say', { text: 'hi' });
  for (let i = 0; i < 100 && got.length < 1; i++) await sleep(5);
  assert.equal(got, ['echo hi']);
  await server.close({ reason: 'reason.maintenance' });
  for (let i = 0; i < 100 && reasons.length < 1; i++) await sleep(5);
  assert.equal(reasons, ['reason.maintenance']);
  assert.equal(closes, ['reason.maintenance']);
  await client.close();
});

test('idleTimeout closes a half-open connection; keepAlive is accepted', async () => {
  const reasons: unknown[] = [];
  const server = new Server({ idleTimeout: 80, keepAlive: 1000, onClose: (_c, r) => void reasons.push(r) });
  const { port } = await server.listen(0, '127.0.0.1');
  const ch = await Channel.connect('127.0.0.1', port, { keepAlive: true }); // connects, then never speaks
  const closed = await ch.closed;
  assert.ok(closed === undefined || (closed as { code?: string }).code === 'ECONNRESET');
  for (let i = 0; i < 100 && reasons.length < 1; i++) await sleep(5);
  assert.instance(reasons[0], TimeoutError);
  await server.close();
});

test('idleTimeout counts bytes received, not messages handled: a busy client with a slow handler is kept', async () => {
  const reasons: unknown[] = [];
  let handled = 0;
  let slow = true;
  const server = new Server({
    idleTimeout: 200,
    onMessage: async () => {
      if (slow) await sleep(500); // far slower than the client sends, and longer than idleTimeout
      handled++;
    },
    onClose: (_c, r) => void reasons.push(r),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const ch = await Channel.connect('127.0.0.1', port);
  for (let i = 0; i < 24; i++) {
    await ch.send(`tick ${i}`); // every 50 ms for 1.2 s
    await sleep(50);
  }
  assert.ok(ch.isOpen, 'the client is still connected');
  assert.ok(handled >= 2, `the slow handler ran (${handled} times)`);
  assert.equal(reasons, [], 'the server did not close the busy client');
  slow = false; // let the server drain the backlog quickly on close
  await ch.close();
  await server.close();
});

test('idleTimeout closes a silent client (Server) and a silent server (Client) with TimeoutError', async () => {
  const reasons: unknown[] = [];
  const server = new Server({ idleTimeout: 150, onClose: (_c, r) => void reasons.push(r) });
  const { port } = await server.listen(0, '127.0.0.1');
  const started = Date.now();
  const ch = await Channel.connect('127.0.0.1', port); // connects, then never speaks
  await ch.closed;
  for (let i = 0; i < 100 && reasons.length < 1; i++) await sleep(5);
  assert.instance(reasons[0], TimeoutError);
  assert.ok(Date.now() - started >= 140, 'not before idleTimeout');

  // The Client side: the server accepts and never sends.
  const quiet = new Server({ onMessage: () => {} });
  const q = await quiet.listen(0, '127.0.0.1');
  const lost: unknown[] = [];
  const client = new Client({
    idleTimeout: 150,
    reconnect: false,
    onDisconnect: (r) => void lost.push(r),
    onError: () => {},
  });
  await client.connect('127.0.0.1', q.port);
  const stopped = await client.stopped;
  assert.instance(lost[0], TimeoutError);
  assert.instance(stopped, TimeoutError);
  await quiet.close();
  await server.close();
});

test('handler errors and unknown types go to onError; the connection carries on', async () => {
  const errors: Error[] = [];
  const server = new Server({
    onMessage: (conn, msg) => {
      if (String(msg) === 'boom') throw new Error('boom');
      return conn.send(msg);
    },
    onError: (e) => void errors.push(e),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const ch = await Channel.connect('127.0.0.1', port);
  await ch.send('boom');
  await ch.send('after');
  assert.is(String(await ch.recv()), 'after');
  assert.equal(
    errors.map((e) => e.message),
    ['boom'],
  );
  await ch.close();
  await server.close();
});

test('bad channel options throw from new Client() and new Server(), never an uncaught exception after a connect', async () => {
  const escaped: unknown[] = [];
  const onUncaught = (error: unknown): void => void escaped.push(error);
  process.prependListener('uncaughtException', onUncaught);
  try {
    const server = new Server();
    const { port } = await server.listen(0, '127.0.0.1');
    assert.throws(
      () => new Client({ maxMessageSize: -1 }),
      (e: Error) => e instanceof RangeError && /`maxMessageSize`.*got -1$/.test(e.message),
    );
    assert.throws(
      () => new Client({ framing: 'int32' as never }),
      (e: Error) =>
        e instanceof TypeError &&
        e.message === "Expected `framing` to be a Framing (e.g. int32, not the string 'int32'), got the string 'int32'",
    );
    assert.throws(() => new Client({ highWaterMark: 0 }), RangeError);
    assert.throws(() => new Server({ maxMessageSize: -1 }), RangeError);
    // What the checks stop: before them, this connect never settled and a RangeError escaped.
    let client: Client | undefined;
    try {
      client = new Client({ maxMessageSize: -1, reconnect: false });
    } catch {
      // thrown at construction, as it should be
    }
    if (client) await Promise.race([client.connect('127.0.0.1', port).catch(() => {}), sleep(500)]);
    await sleep(100);
    await client?.close();
    await server.close();
  } finally {
    process.removeListener('uncaughtException', onUncaught);
  }
  assert.equal(escaped, []);
});

test('server and client leave no unhandled rejection, socket or timer behind', async () => {
  await sleep(20);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
