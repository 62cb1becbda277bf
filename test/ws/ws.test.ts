/**
 * WebSocket (docs/websocket.md): Channel.listen({ ws }) and Channel.connect('ws://...') carry
 * messages both ways; the wire is the framing's bytes in binary WebSocket messages of at most
 * 64 KiB; limits (maxMessageSize, maxPayload, maxConnections, allowedOrigins) hold and fail
 * with typed errors; a Server takes WebSocket and TCP clients through the same handlers; a
 * listener can attach to an existing http.Server; wss works with `tls`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as http from 'node:http';
import { once } from 'node:events';
import WebSocket from 'ws';
import { Channel, Server } from '../../channel.js';
import { intactWhileUnreadOver, makeCertificate, rejectsWith, slabsToSend16MiB, tlsTest } from '../helpers.js';

const url = (port: number, path = '/'): `ws://${string}` => `ws://127.0.0.1:${port}${path}`;

/** A raw `ws` client, to see the wire and to misbehave. */
async function rawClient(port: number, path = '/', options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url(port, path), options);
  await once(ws, 'open');
  return ws;
}

test('Channel.listen({ ws }) and Channel.connect(ws://): messages both ways, empty and large ones too', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: { path: '/m' } });
  const { port } = await listener.listening;
  const client = await Channel.connect(url(port, '/m'));
  const server = (await listener.accept())!;
  assert.is(server.ip, '127.0.0.1');
  assert.type(server.port, 'number');
  const big = Buffer.alloc(300_000, 7);
  await client.send(Buffer.from('hello'));
  await client.send(Buffer.alloc(0));
  await client.send(big);
  assert.equal((await server.recv()).toString(), 'hello');
  assert.is((await server.recv()).length, 0);
  assert.ok((await server.recv()).equals(big));
  await server.send(Buffer.from('back'));
  assert.equal((await client.recv()).toString(), 'back');
  await client.close();
  await rejectsWith(server.recv(), 'ERR_CHANNEL_CLOSED');
  assert.is(await server.closed, undefined);
  await listener.close();
});

test('every message arrives intact while the WebSocket holds queued writes (write slabs are refilled only once written)', async () => {
  // The listening side does not mask: `ws` hands the batched frames themselves to its socket.
  await intactWhileUnreadOver(Channel.listen({ host: '127.0.0.1', port: 0, ws: true }), (port) =>
    Channel.connect(url(port), { highWaterMark: 16 * 1024 }),
  );
});

test('a WebSocket channel refills its write slabs: 16 MiB of 1 KiB messages take a few 64 KiB slabs, not one per 64 KiB', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true });
  const { port } = await listener.listening;
  const ws = await rawClient(port); // `ws` itself: no Buffer.allocUnsafeSlow of 64 KiB on its side
  let read = 0;
  ws.on('message', (data: Buffer) => void (read += data.length));
  try {
    const slabs = await slabsToSend16MiB((await listener.accept())!);
    const frames = 16 * 1024 * (1024 + 12);
    for (let i = 0; i < 200 && read < frames; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(read, frames, 'every frame arrived');
    assert.ok(slabs <= 40, `${slabs} slabs allocated (one per 64 KiB would be 260)`);
  } finally {
    ws.terminate();
    await listener.close();
  }
});

test('the wire: binary WebSocket messages carry the msg framing bytes, cut at 64 KiB; boundaries mean nothing', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true });
  const { port } = await listener.listening;
  const ws = await rawClient(port);
  const server = (await listener.accept())!;
  const got: Buffer[] = [];
  ws.on('message', (data: Buffer) => got.push(data));
  await server.send(Buffer.alloc(100_000, 1));
  await server.send(Buffer.from('x'));
  while (Buffer.concat(got).length < 100_000 + 20) await new Promise((r) => setTimeout(r, 5));
  for (const m of got) assert.ok(m.length <= 64 * 1024, `a message of ${m.length} bytes`);
  const all = Buffer.concat(got);
  assert.equal(all.subarray(0, 14).toString('latin1'), '\r\nMSG 100000\r\n');
  assert.equal(all.subarray(14 + 100_000).toString('latin1'), '\r\nMSG 1\r\nx');
  // One frame split across three WebSocket messages, and two frames in one: both decode.
  ws.send(Buffer.from('\r\nMS'));
  ws.send(Buffer.from('G 3\r\nab'));
  ws.send(Buffer.from('c\r\nMSG 1\r\nd'));
  assert.equal((await server.recv()).toString(), 'abc');
  assert.equal((await server.recv()).toString(), 'd');
  ws.close();
  await server.closed;
  await listener.close();
});

test('a text message, a malformed frame header and a message above maxMessageSize each end that connection with a typed error', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, maxMessageSize: 1000 });
  const { port } = await listener.listening;
  const cases: [string | Buffer, string][] = [
    ['text', 'ERR_PROTOCOL'],
    [Buffer.from('\r\nMSX 1\r\n'), 'ERR_PROTOCOL'],
    [Buffer.from('\r\nMSG 1001\r\n'), 'ERR_MESSAGE_TOO_LARGE'],
  ];
  for (const [bytes, code] of cases) {
    const ws = await rawClient(port);
    const server = (await listener.accept())!;
    ws.send(bytes);
    const error = (await server.closed) as Error & { code?: string };
    assert.is(error?.code, code, String(bytes));
    if (ws.readyState !== ws.CLOSED) await once(ws, 'close');
  }
  await listener.close();
});

test('a WebSocket message above maxPayload fails the connection with MessageTooLargeError before it is buffered whole', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: { maxPayload: 1024 } });
  const { port } = await listener.listening;
  const ws = await rawClient(port);
  const server = (await listener.accept())!;
  ws.send(Buffer.alloc(2048));
  const error = (await server.closed) as Error & { code?: string };
  assert.is(error?.code, 'ERR_MESSAGE_TOO_LARGE');
  const [code] = (await once(ws, 'close')) as [number];
  assert.is(code, 1009);
  await listener.close();
});

test('a peer that closes its WebSocket with an error code (1009 from maxPayload) fails the other side with that code, not a clean end', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: { maxPayload: 1024 } });
  const { port } = await listener.listening;
  const client = await Channel.connect(url(port));
  const server = (await listener.accept())!;
  void client.send(Buffer.alloc(2048)).catch(() => undefined); // one 2,058-byte WebSocket message
  assert.is(((await server.closed) as Error & { code?: string })?.code, 'ERR_MESSAGE_TOO_LARGE');
  const error = (await client.closed) as Error & { code?: string; reason?: string };
  assert.is(error?.code, 'ERR_CHANNEL_CLOSED');
  assert.is(error.reason, '1009');
  await listener.close();
});

test('allowedOrigins: another page origin gets 403; a listed one and a client without Origin connect', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: { allowedOrigins: ['https://good.example'] } });
  const { port } = await listener.listening;
  const refused = await Channel.connect(url(port), { origin: 'https://evil.example' }).then(
    () => undefined,
    (e: Error & { status?: number }) => e,
  );
  assert.is(refused?.status, 403);
  const good = await Channel.connect(url(port), { origin: 'https://good.example' });
  const plain = await Channel.connect(url(port));
  assert.is(listener.pending + listener.handshaking, 2);
  await good.close();
  await plain.close();
  await listener.close();
});

test('maxConnections counts WebSocket connections from TCP accept; an extra one never gets a channel', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, maxConnections: 1 });
  const { port } = await listener.listening;
  const first = await Channel.connect(url(port));
  const second = await Channel.connect(url(port)).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.ok(second instanceof Error, 'the second connection is refused');
  assert.is(listener.connections, 1);
  await first.close();
  await listener.close();
});

test('a connection that never sends its upgrade request is closed after handshakeTimeout', async () => {
  const net = await import('node:net');
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, handshakeTimeout: 200 });
  const { port } = await listener.listening;
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n'); // and never the rest
  await once(socket, 'close');
  for (let i = 0; i < 100 && listener.connections > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.is(listener.connections, 0);
  await listener.close();
});

test('backpressure: a reader that stops pauses the WebSocket; sends wait instead of growing without bound', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, highWaterMark: 64 * 1024 });
  const { port } = await listener.listening;
  const client = await Channel.connect(url(port), { sendHighWaterMark: 64 * 1024 });
  const server = (await listener.accept())!;
  const chunk = Buffer.alloc(16 * 1024, 3);
  let sent = 0;
  let stop = false;
  const sending = (async () => {
    while (!stop) {
      await client.send(chunk);
      sent++;
    }
  })();
  // Nobody reads on the server: the sender must stall well short of what it would send freely,
  // once the kernel's buffers are full (on loopback they grow to a few MiB, how fast depends on
  // the machine's load: wait for no progress in 200 ms rather than a fixed time).
  let stalledAt = -1;
  try {
    for (let waited = 0; waited < 5000 && stalledAt < 0; waited += 200) {
      const before = sent;
      await new Promise((r) => setTimeout(r, 200));
      if (sent === before) stalledAt = sent;
    }
    assert.ok(stalledAt >= 0, `the sender never stalled: ${sent} sends of 16 KiB`);
    assert.ok(stalledAt * chunk.length < 32 * 1024 * 1024, `stalled only after ${stalledAt} sends of 16 KiB`);
    assert.ok(server.peerBlocked, 'the server stopped reading');
    assert.ok(client.queuedBytes <= 2 * 64 * 1024 + chunk.length, `client queue ${client.queuedBytes}`);
  } finally {
    stop = true;
  }
  let received = 0;
  while (received < sent) {
    await server.recv();
    received++;
  }
  await sending;
  await client.close();
  await listener.close();
});

test('memoryBudget holds over WebSocket: a second large body waits, reading paused, until the first is taken', async () => {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, memoryBudget: 1024 * 1024 });
  const { port } = await listener.listening;
  const body = Buffer.alloc(800 * 1024, 5);
  const a = await Channel.connect(url(port));
  const serverA = (await listener.accept())!;
  const b = await Channel.connect(url(port));
  const serverB = (await listener.accept())!;
  await a.send(body);
  while (serverA.bufferedMessages === 0) await new Promise((r) => setTimeout(r, 5)); // 800 KiB of the budget, unread
  void b.send(body);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(serverB.holdsReading, 'the second body waits for memory');
  assert.is(serverB.bufferedMessages, 0);
  assert.ok((await serverA.recv()).equals(body)); // taken: its memory is released
  assert.ok((await serverB.recv()).equals(body));
  for (const ch of [a, b]) await ch.close();
  await listener.close();
});

test('the framing handshakes run over WebSocket: auth and tinyproto', async () => {
  const { tinyproto } = await import('../../channel.js');
  for (const options of [{ auth: { key: 'secret' } }, { framing: tinyproto }]) {
    const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, ...options });
    const { port } = await listener.listening;
    const client = await Channel.connect(url(port), options);
    const server = (await listener.accept())!;
    await client.send('through the handshake');
    assert.is((await server.recv()).toString(), 'through the handshake');
    await client.close();
    await server.closed;
    await listener.close();
  }
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, auth: { key: 'secret' } });
  const { port } = await listener.listening;
  await rejectsWith(Channel.connect(url(port), { auth: { key: 'wrong' } }), 'ERR_AUTH');
  await listener.close();
});

test('a Server takes WebSocket and TCP clients through the same handlers, and broadcast reaches both', async () => {
  const seen: string[] = [];
  const server: Server = new Server({
    onMessage: (_conn, message): Promise<unknown> => {
      seen.push(String(message));
      return server.broadcast(message as Buffer);
    },
  });
  const tcp = await server.listen(0, '127.0.0.1');
  const ws = await server.listen({ host: '127.0.0.1', port: 0, ws: { path: '/s' } });
  const a = await Channel.connect('127.0.0.1', tcp.port);
  const b = await Channel.connect(url(ws.port, '/s'));
  while (server.connections.size < 2) await new Promise((r) => setTimeout(r, 5));
  await b.send(Buffer.from('from-ws'));
  assert.equal((await a.recv()).toString(), 'from-ws');
  assert.equal((await b.recv()).toString(), 'from-ws');
  await a.send(Buffer.from('from-tcp'));
  assert.equal((await b.recv()).toString(), 'from-tcp');
  assert.equal(seen, ['from-ws', 'from-tcp']);
  await a.close();
  await b.close();
  await server.close();
});

test('ws.server attaches to an existing http.Server: its plain requests stay its own', async () => {
  const httpServer = http.createServer((_req, res) => res.end('page'));
  httpServer.listen(0, '127.0.0.1');
  await once(httpServer, 'listening');
  const { port } = httpServer.address() as { port: number };
  const listener = Channel.listen({ ws: { server: httpServer, path: '/ws' } });
  assert.is((await listener.listening).port, port);
  const page = await fetch(`http://127.0.0.1:${port}/`);
  assert.is(await page.text(), 'page');
  const client = await Channel.connect(url(port, '/ws'));
  const server = (await listener.accept())!;
  await client.send(Buffer.from('hi'));
  assert.equal((await server.recv()).toString(), 'hi');
  await client.close();
  await listener.close();
  httpServer.closeAllConnections();
  await new Promise((r) => httpServer.close(r));
});

tlsTest('ws')('wss: with `tls` the port serves WebSocket over TLS', async () => {
  const { key, cert } = makeCertificate();
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, tls: { key, cert } });
  const { port } = await listener.listening;
  const client = await Channel.connect(`wss://127.0.0.1:${port}/`, { tls: { ca: cert, servername: 'localhost' } });
  const server = (await listener.accept())!;
  await server.send(Buffer.from('secure'));
  assert.equal((await client.recv()).toString(), 'secure');
  await client.close();
  await listener.close();
});

test.run();
