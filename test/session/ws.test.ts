/**
 * Resumable sessions over WebSocket: Channel.connect('ws://...', { resume }) against
 * Channel.listen({ ws, resume }), on the listener's own port and on an attached http.Server,
 * through a chaos proxy (a TCP proxy carries ws:// as it carries anything): every message exactly
 * once, in order, both ways, across resets and a silent stall; a Server and a Client keep one
 * Connection per session; an unknown token is refused as over TCP; maxConnections counts the
 * WebSocket connections; wss with mutual TLS checks the client certificate on each resume;
 * nothing leaks.
 */
import * as http from 'node:http';
import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import {
  Channel,
  Client,
  ConnectionRefusedError,
  Server,
  SessionLostError,
  type Connection,
  type SessionListener,
} from '../../channel.js';
import { sessionOf } from '../../src/session/connect.js';
import { SERVER_HELLO_LENGTH, Status, decodeServerHello, encodeClientHello } from '../../src/session/wire.js';
import { makeCertificate, openHandles, resultWithin, sleep, tlsTest, unhandled, until } from '../helpers.js';
import { ChaosProxy } from './chaos.js';

const numbered = (i: number): Buffer => {
  const b = Buffer.alloc(8 + (i % 50));
  b.writeUInt32BE(i, 0);
  return b;
};

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

async function receiveNumbered(ch: Channel, n: number): Promise<number[]> {
  const got: number[] = [];
  for (let i = 0; i < n; i++) got.push((await ch.recv()).readUInt32BE(0));
  return got;
}

/** A session listener serving WebSocket on its own port, at `/s`. */
async function listenWs(resume: object, extra: object = {}): Promise<{ listener: SessionListener; port: number }> {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: { path: '/s' }, resume, ...extra });
  const { port } = await listener.listening;
  return { listener, port };
}

const url = (port: number): `ws://${string}` => `ws://127.0.0.1:${port}/s`;

/** A raw WebSocket speaking the session hello by hand: write bytes, read the answer, see the close. */
async function rawWs(
  port: number,
): Promise<{ ws: WebSocket; read(n: number): Promise<Buffer>; closed: Promise<unknown> }> {
  const ws = new WebSocket(url(port));
  ws.on('error', () => {});
  const closed = once(ws, 'close');
  await once(ws, 'open');
  let buffered = Buffer.alloc(0);
  let want: { n: number; resolve(b: Buffer): void } | undefined;
  ws.on('message', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    if (want && buffered.length >= want.n) {
      const w = want;
      want = undefined;
      w.resolve(buffered.subarray(0, w.n));
      buffered = buffered.subarray(w.n);
    }
  });
  return {
    ws,
    closed,
    read: (n) =>
      new Promise((resolve) => {
        if (buffered.length >= n) resolve(buffered.subarray(0, n));
        else want = { n, resolve };
      }),
  };
}

test('over ws://, through a proxy that resets every connection 10 times: every message once, in order, both ways', async () => {
  const resume = { heartbeat: 200 };
  const { listener, port } = await listenWs(resume);
  const proxy = await ChaosProxy.start(port);
  const [ch, server] = await Promise.all([Channel.connect(url(proxy.port), { resume }), listener.accept()]);
  const N = 2000;
  const atServer = receiveNumbered(server!, N);
  const atClient = receiveNumbered(ch, N);
  for (let i = 0; i < N; i++) {
    if (i % 200 === 100) {
      // Each cut hits a connection whose hellos are done (messages of both ways are in flight on it).
      await until(() => ch.stats.session!.connected && proxy.links > 0, 5000, 'resumed');
      proxy.cut();
    }
    await Promise.all([ch.send(numbered(i)), server!.send(numbered(i))]);
  }
  assert.equal(await atServer, range(N));
  assert.equal(await atClient, range(N));
  assert.ok(proxy.accepted > 10, `${proxy.accepted} connections`);
  assert.ok(ch.stats.session!.resumes >= 10, `resumed ${ch.stats.session!.resumes} times`);
  assert.is(listener.sessions, 1); // each reconnection re-attached: the session was yielded once
  assert.is(listener.pending, 0);
  await ch.close();
  await server!.closed;
  assert.is(ch.stats.session!.unacknowledgedBytes, 0);
  await proxy.close();
  await listener.close();
});

test('over ws://, a silent stall is noticed by the heartbeat and the session resumes', async () => {
  const resume = { heartbeat: 100 };
  const { listener, port } = await listenWs(resume);
  const proxy = await ChaosProxy.start(port);
  const [ch, server] = await Promise.all([Channel.connect(url(proxy.port), { resume }), listener.accept()]);
  const got = receiveNumbered(server!, 200);
  for (let i = 0; i < 100; i++) await ch.send(numbered(i));
  proxy.stall();
  for (let i = 100; i < 200; i++) await ch.send(numbered(i));
  assert.equal(await resultWithin(got, 5000), range(200));
  assert.ok(ch.stats.session!.resumes >= 1);
  await ch.close();
  await server!.closed;
  await proxy.close();
  await listener.close();
});

test('over ws://, a restarted server: SessionLostError counts the messages it never acknowledged', async () => {
  const resume = { heartbeat: 100, keep: 3000 };
  const first = await listenWs(resume);
  const proxy = await ChaosProxy.start(first.port);
  const [ch, old] = await Promise.all([Channel.connect(url(proxy.port), { resume }), first.listener.accept()]);
  for (let i = 0; i < 10; i++) await ch.send(numbered(i));
  assert.equal(await receiveNumbered(old!, 10), range(10));
  await until(() => ch.stats.session!.unacknowledgedBytes === 0, 2000, 'the first 10 acknowledged');
  proxy.stall();
  await first.listener.close();
  const second = await listenWs(resume);
  proxy.retarget(second.port);
  for (let i = 10; i < 15; i++) await ch.send(numbered(i));
  const error = (await ch.closed) as SessionLostError;
  assert.instance(error, SessionLostError);
  assert.is(error.unacknowledged, 5);
  assert.is(error.firstUnacknowledged, 10);
  assert.is(second.listener.stats.refused, 1); // the UNKNOWN answer
  old!.destroy();
  await proxy.close();
  await second.listener.close();
});

test('over ws://, a resume with an unknown token is refused (UNKNOWN) and closed; the listener keeps nothing', async () => {
  const { listener, port } = await listenWs({ heartbeat: 200 }, { handshakeTimeout: 300 });
  const stranger = await rawWs(port);
  stranger.ws.send(encodeClientHello({ token: Buffer.alloc(16, 7), received: 0, messages: 0, window: 1 << 20 }));
  const answer = decodeServerHello(await stranger.read(SERVER_HELLO_LENGTH));
  assert.is(answer.status, Status.UNKNOWN);
  await stranger.closed;
  const silent = await rawWs(port);
  await silent.closed; // no hello within handshakeTimeout
  assert.is(listener.stats.refused, 2);
  assert.is(listener.sessions, 0);
  await until(() => listener.connections === 0, 2000, 'the refused connections closed');
  // A client that resumes a session the listener never made hears SessionLostError at once, not after keep.
  const [ch, server] = await Promise.all([Channel.connect(url(port), { resume: true }), listener.accept()]);
  const token = sessionOf(ch)!.token;
  await Promise.all([ch.close(), server!.closed]);
  const again = await rawWs(port);
  again.ws.send(encodeClientHello({ token, received: 0, messages: 0, window: 1 << 20 }));
  assert.is(decodeServerHello(await again.read(SERVER_HELLO_LENGTH)).status, Status.UNKNOWN); // that session ended
  await again.closed;
  await listener.close();
});

test('over ws://, a plain client cannot talk to a resume listener, nor a resume client to a plain one', async () => {
  const { listener, port } = await listenWs({ heartbeat: 200 }, { handshakeTimeout: 300 });
  const plain = await Channel.connect(url(port)); // no handshake in MSG: the channel is up at once
  await plain.send('hello?'); // read by the listener as a hello that never completes
  assert.is(
    await resultWithin(
      plain.closed.then(() => 'closed'),
      3000,
    ),
    'closed',
  ); // by handshakeTimeout
  assert.is(listener.sessions, 0);
  assert.is(listener.stats.refused, 1);
  await listener.close();
  const ordinary = Channel.listen({ host: '127.0.0.1', port: 0, ws: { path: '/s' } });
  const { port: plainPort } = await ordinary.listening;
  const refused = await Channel.connect(url(plainPort), { resume: true }).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.instance(refused, Error); // its hello is a bad frame there: the connection closes during the hello
  await ordinary.close();
});

test('maxConnections counts WebSocket session connections from TCP accept; one past it is refused', async () => {
  const { listener, port } = await listenWs({ heartbeat: 200 }, { maxConnections: 1 });
  const [ch, server] = await Promise.all([Channel.connect(url(port), { resume: true }), listener.accept()]);
  assert.is(listener.connections, 1);
  const second = await Channel.connect(url(port), { resume: true, timeout: 1000 }).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.instance(second, Error);
  assert.is(listener.sessions, 1);
  await Promise.all([ch.close(), server!.closed]);
  await until(() => listener.connections === 0, 2000, 'the connection counted down');
  await listener.close();
});

test('ws.server: sessions over the upgrades of an application http.Server, which keeps its other requests and runs on', async () => {
  const app = http.createServer((_request, response) => response.end('page'));
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const { port } = app.address() as { port: number };
  const resume = { heartbeat: 200 };
  const listener = Channel.listen({ ws: { server: app, path: '/s' }, resume, maxConnections: 1 });
  assert.is((await listener.listening).port, port);
  const proxy = await ChaosProxy.start(port);
  const [ch, server] = await Promise.all([Channel.connect(url(proxy.port), { resume }), listener.accept()]);
  const got = receiveNumbered(server!, 300);
  for (let i = 0; i < 300; i++) {
    if (i % 100 === 50) await proxy.cutConnected();
    await ch.send(numbered(i));
  }
  assert.equal(await got, range(300));
  assert.ok(ch.stats.session!.resumes >= 1);
  // The limit counts the attached server's upgrades too: a second session gets 503, a refusal.
  await until(() => listener.connections === 1, 2000, 'one connection');
  const refused = await Channel.connect(url(port), { resume: true }).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.instance(refused, ConnectionRefusedError);
  const page = await fetch(`http://127.0.0.1:${port}/`);
  assert.is(await page.text(), 'page');
  await ch.close();
  await server!.closed;
  await proxy.close();
  await listener.close();
  assert.ok(app.listening, 'closing the listener leaves the application server running');
  app.close();
  app.closeAllConnections();
  await once(app, 'close');
});

test('Server and Client with resume over ws://: one Connection and one connect per session through 5 resets', async () => {
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
  const { port } = await server.listen({ host: '127.0.0.1', port: 0, ws: { path: '/s' } });
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
  await client.connect(url(proxy.port));
  const N = 500;
  for (let i = 0; i < N; i++) {
    if (i % 100 === 50) await proxy.cutConnected();
    const b = Buffer.alloc(4);
    b.writeUInt32BE(i);
    await client.send(b);
  }
  await until(() => atClient.length === N, 10_000, 'every echo');
  assert.equal(atServer, range(N));
  assert.equal(atClient, range(N));
  assert.ok(proxy.accepted > 5, `${proxy.accepted} connections through the proxy`);
  assert.is(connections, 1);
  assert.is(connects, 1);
  assert.is(disconnects, 0);
  await client.close();
  await until(() => closes === 1, 5000, 'the server-side close');
  await server.close();
  await proxy.close();
});

test('a Client over ws:// whose session is lost (the server restarted) hears SessionLostError and starts a new one', async () => {
  const resume = { heartbeat: 100 } as const;
  const first = new Server({ resume });
  const where = { host: '127.0.0.1', port: 0, ws: { path: '/s' } };
  const proxy = await ChaosProxy.start((await first.listen(where)).port);
  const reasons: unknown[] = [];
  let connects = 0;
  const client = new Client({ resume, onConnect: () => void connects++, onDisconnect: (r) => void reasons.push(r) });
  await client.connect(url(proxy.port));
  proxy.stall();
  await first.close({ timeout: 10 }).catch(() => {});
  const second = new Server({ resume });
  proxy.retarget((await second.listen(where)).port);
  await until(() => connects === 2, 5000, 'a new session');
  assert.is(reasons.length, 1);
  assert.instance(reasons[0], SessionLostError);
  await client.close();
  await second.close();
  await proxy.close();
});

const withOpenssl = tlsTest('session/ws');

withOpenssl(
  'wss:// with mutual TLS: the session resumes through cuts, and a resume needs the same client certificate',
  async () => {
    const serverCert = makeCertificate();
    const one = makeCertificate('one');
    const two = makeCertificate('two');
    const resume = { heartbeat: 100 };
    const { listener, port } = await listenWs(resume, {
      tls: {
        key: serverCert.key,
        cert: serverCert.cert,
        ca: [one.cert, two.cert],
        requestCert: true,
        rejectUnauthorized: true,
      },
    });
    const tlsFor = (c: { key: Buffer; cert: Buffer }) => ({
      key: c.key,
      cert: c.cert,
      ca: [serverCert.cert],
      servername: 'localhost',
    });
    const proxy = await ChaosProxy.start(port);
    const [ch, accepted] = await Promise.all([
      Channel.connect(`wss://127.0.0.1:${proxy.port}/s`, { resume, tls: tlsFor(one) }),
      listener.accept(),
    ]);
    const got = receiveNumbered(accepted!, 300);
    for (let i = 0; i < 300; i++) {
      if (i % 100 === 50) await proxy.cutConnected();
      await ch.send(numbered(i));
    }
    assert.equal(await got, range(300));
    assert.ok(ch.stats.session!.resumes >= 1, `resumed ${ch.stats.session!.resumes} times`);
    assert.is(accepted!.peerCertificate?.subject?.CN, 'one'); // the session's, from the TLS socket under the WebSocket
    assert.is(ch.peerCertificate?.subject?.CN, 'localhost');
    // The token with another client certificate: refused (IDENTITY), the session goes on.
    const thief = new WebSocket(`wss://127.0.0.1:${port}/s`, tlsFor(two));
    thief.on('error', () => {});
    await once(thief, 'open');
    const answer = new Promise<Buffer>((resolve) => thief.once('message', (d: Buffer) => resolve(d)));
    thief.send(encodeClientHello({ token: sessionOf(ch)!.token, received: 0, messages: 0, window: 1 << 20 }));
    assert.is(decodeServerHello((await answer).subarray(0, SERVER_HELLO_LENGTH)).status, Status.IDENTITY);
    thief.terminate();
    await ch.send(numbered(300));
    assert.is((await accepted!.recv()).readUInt32BE(0), 300);
    await ch.close();
    await accepted!.closed;
    await proxy.close();
    await listener.close();
  },
);

test('nothing left behind: no unhandled rejection, no open handle', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
