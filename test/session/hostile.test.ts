/**
 * Hostile resume traffic against a session listener, from raw sockets on 127.0.0.1: a bad or
 * missing hello, a flood of unknown tokens, offsets far ahead, acknowledging more than was sent,
 * data past the window, an unknown segment, two connections resuming one session at once, a
 * resume with another client certificate, and the session limits. Each gives that connection
 * (or that session) a refusal or a ProtocolError; the listener goes on serving, holds nothing.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { authHandshake } from '../../src/auth.js';
import {
  AuthenticationError,
  Channel,
  ConnectionRefusedError,
  ProtocolError,
  SessionLostError,
} from '../../channel.js';
import { sessionOf } from '../../src/session/connect.js';
import {
  SERVER_HELLO_LENGTH,
  Status,
  decodeServerHello,
  encodeAck,
  encodeClientHello,
  encodeDataHeader,
} from '../../src/session/wire.js';
import { makeCertificate, openHandles, sleep, tlsTest, unhandled, until } from '../helpers.js';
import { ChaosProxy } from './chaos.js';

const ZERO_TOKEN = Buffer.alloc(16);

/** A raw connection: write bytes, read the server hello, see the close. */
async function raw(
  port: number,
): Promise<{ socket: net.Socket; closed: Promise<void>; read(n: number): Promise<Buffer> }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  let buffered = Buffer.alloc(0);
  let want: { n: number; resolve(b: Buffer): void } | undefined;
  socket.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    if (want && buffered.length >= want.n) {
      const w = want;
      want = undefined;
      w.resolve(buffered.subarray(0, w.n));
      buffered = buffered.subarray(w.n);
    }
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    closed,
    read: (n) =>
      new Promise((resolve) => {
        if (buffered.length >= n) {
          resolve(buffered.subarray(0, n));
          buffered = buffered.subarray(n);
        } else want = { n, resolve };
      }),
  };
}

const hello = (token: Buffer, received = 0, window = 1024 * 1024): Buffer =>
  encodeClientHello({ token, received, messages: 0, window });

async function listen(resume: object = {}, extra: object = {}) {
  const listener = Channel.listen('127.0.0.1', 0, {
    resume: { heartbeat: 200, ...resume },
    handshakeTimeout: 300,
    ...extra,
  });
  const { port } = await listener.listening;
  return { listener, port };
}

/** The listener still makes and serves sessions. */
async function stillServes(port: number, listener: { accept(): Promise<Channel | undefined> }): Promise<void> {
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', port, { resume: true }), listener.accept()]);
  await ch.send('ping');
  assert.is((await server!.recv()).toString(), 'ping');
  await Promise.all([ch.close(), server!.close()]);
}

test('a bad hello, a silent connection, and a flood of unknown tokens are refused; nothing is kept', async () => {
  const { listener, port } = await listen();
  const bad = await raw(port);
  bad.socket.write(Buffer.alloc(37, 0x41)); // not the magic
  await bad.closed;
  const silent = await raw(port);
  await silent.closed; // handshakeTimeout
  const flood = await Promise.all(
    Array.from({ length: 200 }, async () => {
      const r = await raw(port);
      r.socket.write(hello(Buffer.from(Array.from({ length: 16 }, () => (Math.random() * 256) | 1))));
      const answer = decodeServerHello(await r.read(SERVER_HELLO_LENGTH));
      await r.closed;
      return answer.status;
    }),
  );
  assert.ok(flood.every((s) => s === Status.UNKNOWN));
  assert.is(listener.stats.refused, 202);
  assert.is(listener.sessions, 0);
  await until(() => listener.connections === 0, 2000, 'every refused connection closed');
  assert.is(listener.handshaking, 0);
  await stillServes(port, listener);
  await listener.close();
});

test('bad resume options are refused before any socket is opened', async () => {
  await rejects(Channel.connect('127.0.0.1', 1, { resume: { window: 5 } }), RangeError);
  await rejects(Channel.connect('127.0.0.1', 1, { resume: 'yes' as unknown as true }), TypeError);
  assert.throws(() => Channel.listen('127.0.0.1', 0, { resume: { keep: -1 } }), RangeError);
  assert.throws(() => Channel.listen('127.0.0.1', 0, { resume: { heartbeat: 1.5 } }), RangeError);
});

async function rejects(p: Promise<unknown>, type: new (...args: never[]) => Error): Promise<void> {
  try {
    await p;
  } catch (error) {
    assert.instance(error, type);
    return;
  }
  assert.unreachable('it resolved');
}

test('a PING flood from a peer that does not read is answered once per read, not once per PING', async () => {
  const { listener, port } = await listen();
  const r = await raw(port);
  let answered = 0;
  r.socket.on('data', (d: Buffer) => (answered += d.length));
  r.socket.write(hello(ZERO_TOKEN));
  await until(() => answered >= SERVER_HELLO_LENGTH, 2000, 'the server hello');
  const server = (await listener.accept())!;
  r.socket.write(Buffer.alloc(200_000, 0x03)); // 200,000 PINGs: 2.6 MB of ACKs if each were answered
  const frame = Buffer.from('\r\nMSG 4\r\ndone');
  r.socket.write(Buffer.concat([encodeDataHeader(frame.length), frame]));
  assert.is((await server.recv()).toString(), 'done'); // every PING before it has been read
  await sleep(300); // what was answered reaches the client
  assert.ok(answered < 20_000, `${answered} bytes answered`);
  server.destroy();
  r.socket.destroy();
  await listener.close();
});

test('a new-session hello claiming bytes received is refused', async () => {
  const { listener, port } = await listen();
  const r = await raw(port);
  r.socket.write(hello(ZERO_TOKEN, 5));
  assert.is(decodeServerHello(await r.read(SERVER_HELLO_LENGTH)).status, Status.UNKNOWN);
  assert.is(listener.sessions, 0);
  await listener.close();
});

for (const [what, segment, pattern] of [
  ['acknowledging more than was sent', encodeAck(1000, 0), /ack of 1000 bytes/],
  ['acknowledging messages never sent', encodeAck(0, 7), /ack of 7 messages/],
  ['data past the window', Buffer.concat([encodeDataHeader(5000), Buffer.alloc(5000)]), /window/],
  ['an unknown segment type', Buffer.from([0x7f]), /unknown session segment/],
] as const) {
  test(`${what}: that session ends with a ProtocolError, the listener serves on`, async () => {
    const { listener, port } = await listen({ window: 4096 });
    const r = await raw(port);
    r.socket.write(hello(ZERO_TOKEN, 0, 4096));
    assert.is(decodeServerHello(await r.read(SERVER_HELLO_LENGTH)).status, Status.OK);
    const server = (await listener.accept())!;
    r.socket.write(segment);
    const error = await server.closed;
    assert.instance(error, ProtocolError);
    assert.match(error!.message, pattern);
    await r.closed; // the server dropped the connection
    assert.is(listener.sessions, 0);
    await stillServes(port, listener);
    await listener.close();
  });
}

test('a resume with offsets far ahead (or behind) is refused on that connection; the session goes on', async () => {
  const { listener, port } = await listen();
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', port, { resume: true }), listener.accept()]);
  await server!.send('x');
  await ch.recv();
  const token = sessionOf(ch)!.token;
  for (const received of [2 ** 40, 1000]) {
    const r = await raw(port);
    r.socket.write(hello(token, received));
    await r.closed;
  }
  assert.is(listener.stats.refused, 2);
  await ch.send('still here');
  assert.is((await server!.recv()).toString(), 'still here');
  await Promise.all([ch.close(), server!.close()]);
  await listener.close();
});

test('two connections resuming one session at once: the newest wins, the session stays whole', async () => {
  const { listener, port } = await listen({ heartbeat: 100 });
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', port, { resume: true }), listener.accept()]);
  const token = sessionOf(ch)!.token;
  const [a, b] = await Promise.all([raw(port), raw(port)]);
  a.socket.write(hello(token));
  b.socket.write(hello(token));
  await Promise.race([a.closed, b.closed]); // one of them was displaced
  a.socket.destroy();
  b.socket.destroy();
  assert.is(listener.sessions, 1);
  // The real client was displaced too; it resumes, and messages still arrive once, in order.
  const got: string[] = [];
  const reader = (async () => {
    for (let i = 0; i < 50; i++) got.push((await server!.recv()).toString());
  })();
  for (let i = 0; i < 50; i++) await ch.send(String(i));
  await reader;
  assert.equal(
    got,
    Array.from({ length: 50 }, (_, i) => String(i)),
  );
  await Promise.all([ch.close(), server!.close()]);
  await listener.close();
});

test('maxSessions: a session past it is refused with ConnectionRefusedError', async () => {
  const { listener, port } = await listen({ maxSessions: 1 });
  const first = await Channel.connect('127.0.0.1', port, { resume: true });
  try {
    await Channel.connect('127.0.0.1', port, { resume: true });
    assert.unreachable('a second session was admitted');
  } catch (error) {
    assert.instance(error, ConnectionRefusedError);
  }
  first.destroy();
  await listener.close();
});

test('maxDetached: past it the oldest detached session is lost, with its count', async () => {
  const { listener, port } = await listen({ maxDetached: 1, keep: 10_000 });
  const [p1, p2] = await Promise.all([ChaosProxy.start(port), ChaosProxy.start(port)]);
  const [c1, s1] = await Promise.all([Channel.connect('127.0.0.1', p1.port, { resume: true }), listener.accept()]);
  const [c2, s2] = await Promise.all([Channel.connect('127.0.0.1', p2.port, { resume: true }), listener.accept()]);
  // The clients' way to the server goes away for good, one after the other.
  await p1.close();
  await until(() => listener.detached === 1, 2000, 'first detached');
  await s1!.send('never acknowledged');
  await p2.close();
  const error = await s1!.closed;
  assert.instance(error, SessionLostError);
  assert.is((error as SessionLostError).unacknowledged, 1);
  assert.is((error as SessionLostError).firstUnacknowledged, 0);
  assert.is(listener.stats.expired, 1);
  assert.is(listener.detached, 1);
  assert.is(listener.sessions, 1);
  for (const ch of [c1, c2, s2!]) ch.destroy();
  await listener.close();
});

test('replayBudget: a client that does not read holds the listener to its budget, then gets everything', async () => {
  const { listener, port } = await listen({ replayBudget: 10_000 });
  const [ch, server] = await Promise.all([
    Channel.connect('127.0.0.1', port, { resume: true, highWaterMark: 1024 }),
    listener.accept(),
  ]);
  const body = Buffer.alloc(1000, 7);
  for (let i = 0; i < 200; i++) void server!.send(body); // 200 KB, under sendHighWaterMark: none waits
  await sleep(100);
  // One written chunk may pass the budget (it is taken before the budget is checked): at most a 64 KiB slab.
  assert.ok(listener.replayBytes <= 10_000 + 64 * 1024, `${listener.replayBytes} bytes held`);
  for (let i = 0; i < 200; i++) assert.equal(await ch.recv(), body);
  await until(() => listener.replayBytes === 0, 2000, 'all acknowledged');
  await Promise.all([ch.close(), server!.close()]);
  await listener.close();
});

const withOpenssl = tlsTest('session/hostile');

withOpenssl('mutual TLS: a resume with another client certificate is refused (IDENTITY)', async () => {
  const serverCert = makeCertificate();
  const one = makeCertificate('one');
  const two = makeCertificate('two');
  const { listener, port } = await listen(
    {},
    {
      tls: {
        key: serverCert.key,
        cert: serverCert.cert,
        ca: [one.cert, two.cert],
        requestCert: true,
        rejectUnauthorized: true,
      },
    },
  );
  const tlsFor = (c: { key: Buffer; cert: Buffer }) => ({
    key: c.key,
    cert: c.cert,
    ca: [serverCert.cert],
    servername: 'localhost',
  });
  const [ch, server] = await Promise.all([
    Channel.connect('127.0.0.1', port, { resume: true, tls: tlsFor(one) }),
    listener.accept(),
  ]);
  const token = sessionOf(ch)!.token;
  const socket = tls.connect({ host: '127.0.0.1', port, ...tlsFor(two) });
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('secureConnect', resolve));
  socket.write(hello(token));
  const answer = await new Promise<Buffer>((resolve) => {
    let got = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= SERVER_HELLO_LENGTH) resolve(got);
    });
  });
  assert.is(decodeServerHello(answer.subarray(0, SERVER_HELLO_LENGTH)).status, Status.IDENTITY);
  socket.destroy();
  await ch.send('mine');
  assert.is((await server!.recv()).toString(), 'mine');
  await Promise.all([ch.close(), server!.close()]);
  await listener.close();
});

test('auth: a stolen token is not enough to resume; a wrong key is refused before the hello; the session goes on', async () => {
  const auth = { key: 'k'.repeat(32) };
  const { listener, port } = await listen({}, { auth });
  const [ch, server] = await Promise.all([
    Channel.connect('127.0.0.1', port, { resume: true, auth }),
    listener.accept(),
  ]);
  await ch.send('first');
  assert.is((await server!.recv()).toString(), 'first');
  const token = sessionOf(ch)!.token;
  // The token alone, with no auth exchange: the hello is read as an auth answer and refused.
  const bare = await raw(port);
  bare.socket.write(hello(token));
  await bare.closed;
  // The auth exchange with a wrong key, then the token: refused at the exchange.
  const wrong = await raw(port);
  const io = { write: (b: Uint8Array) => wrong.socket.write(b), read: (n: number) => wrong.read(n) };
  const refused = await authHandshake(Buffer.from('w'.repeat(32)), false, io).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.instance(refused, AuthenticationError);
  await wrong.closed;
  // The right key, then the token: that connection resumes the session (and displaces the client's).
  const right = await raw(port);
  await authHandshake(Buffer.from(auth.key), false, {
    write: (b: Uint8Array) => right.socket.write(b),
    read: (n: number) => right.read(n),
  });
  right.socket.write(hello(token));
  assert.is(decodeServerHello(await right.read(SERVER_HELLO_LENGTH)).status, Status.OK);
  right.socket.destroy();
  // Silent after connecting (never answers the challenge): closed at handshakeTimeout (300 ms here).
  const silent = await raw(port);
  const started = Date.now();
  await silent.closed;
  assert.ok(Date.now() - started < 2000, `closed after ${Date.now() - started} ms`);
  assert.is(listener.stats.refused, 3);
  assert.is(listener.sessions, 1);
  // The real client resumes (proving the key again) and its messages still arrive once, in order.
  for (let i = 0; i < 20; i++) await ch.send(String(i));
  for (let i = 0; i < 20; i++) assert.is((await server!.recv()).toString(), String(i));
  assert.ok(ch.stats.session!.resumes >= 1, 'the client resumed');
  await Promise.all([ch.close(), server!.close()]);
  await listener.close();
});

test('auth: a client whose key the server no longer accepts ends its session with AuthenticationError, not after keep', async () => {
  const resume = { keep: 60_000, heartbeat: 100 };
  const first = Channel.listen('127.0.0.1', 0, { resume, auth: { key: 'one' } });
  const proxy = await ChaosProxy.start((await first.listening).port);
  const [ch, server] = await Promise.all([
    Channel.connect('127.0.0.1', proxy.port, { resume, auth: { key: 'one' } }),
    first.accept(),
  ]);
  // Another server, with another key, takes the client's reconnections.
  const second = Channel.listen('127.0.0.1', 0, { resume: true, auth: { key: 'two' } });
  proxy.retarget((await second.listening).port);
  const started = Date.now();
  proxy.cut();
  const error = await ch.closed;
  assert.instance(error, AuthenticationError, String(error));
  assert.ok(Date.now() - started < 5000, 'ended at the first refused exchange, not after keep');
  server!.destroy();
  await proxy.close();
  await Promise.all([first.close(), second.close()]);
});

test('nothing left behind: no unhandled rejection, no open handle', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
