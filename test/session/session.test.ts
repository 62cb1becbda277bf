/**
 * Resumable sessions end to end over TCP on 127.0.0.1, through a chaos proxy: messages both ways
 * arrive exactly once and in order across resets and a silent stall; close() waits for the
 * peer's acknowledgement; a restarted server gives SessionLostError with the exact count; a
 * client that never comes back is lost on the server after `keep`; RequestChannel keeps requests
 * in flight through cuts; Unix sockets and mutual TLS carry sessions too; nothing leaks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, RequestChannel, SessionLostError, type SessionListener } from '../../channel.js';
import { makeCertificate, openHandles, resultWithin, sleep, tlsTest, unhandled, until } from '../helpers.js';
import { ChaosProxy } from './chaos.js';

const numbered = (i: number): Buffer => {
  const b = Buffer.alloc(8 + (i % 50));
  b.writeUInt32BE(i, 0);
  return b;
};

function echo(listener: SessionListener): void {
  void (async () => {
    for await (const ch of listener) {
      void (async () => {
        try {
          for await (const m of ch) await ch.send(m);
        } catch {
          // the session ended with an error: that session only
        }
        await ch.close().catch(() => {});
      })();
    }
  })();
}

async function receiveNumbered(ch: Channel, n: number): Promise<number[]> {
  const got: number[] = [];
  for (let i = 0; i < n; i++) got.push((await ch.recv()).readUInt32BE(0));
  return got;
}

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

test('echo through a proxy that resets every connection 20 times: every message once, in order', async () => {
  const resume = { heartbeat: 200 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const { port } = await listener.listening;
  echo(listener);
  const proxy = await ChaosProxy.start(port);
  const ch = await Channel.connect('127.0.0.1', proxy.port, { resume });
  const N = 4000;
  const reader = receiveNumbered(ch, N);
  for (let i = 0; i < N; i++) {
    if (i % 200 === 100) await proxy.cutConnected();
    await ch.send(numbered(i));
  }
  assert.equal(await reader, range(N));
  const stats = ch.stats.session!;
  // Each cut hit an open connection; one that hit a reconnection in its hello made it retry instead.
  assert.ok(proxy.accepted > 20, `${proxy.accepted} connections`);
  assert.ok(stats.resumes >= 5, `resumed ${stats.resumes} times`);
  assert.ok(stats.bytesReplayed > 0 || stats.messagesReplayed > 0, 'something was sent again');
  await ch.close();
  assert.is(ch.stats.session!.unacknowledgedBytes, 0);
  await proxy.close();
  await listener.close();
});

test('a silent stall (no FIN, no RST) is noticed by the heartbeat and the session resumes', async () => {
  const resume = { heartbeat: 100 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const { port } = await listener.listening;
  echo(listener);
  const proxy = await ChaosProxy.start(port);
  const ch = await Channel.connect('127.0.0.1', proxy.port, { resume });
  const reader = receiveNumbered(ch, 200);
  for (let i = 0; i < 100; i++) await ch.send(numbered(i));
  proxy.stall();
  for (let i = 100; i < 200; i++) await ch.send(numbered(i));
  // Bounded: the heartbeat notices within 2.5 x 100 ms; 20x that is the test's patience.
  assert.equal(await resultWithin(reader, 5000), range(200));
  assert.ok(ch.stats.session!.resumes >= 1);
  await ch.close();
  await proxy.close();
  await listener.close();
});

test('close() resolves only once the peer has acknowledged everything sent', async () => {
  const resume = { heartbeat: 100 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const { port } = await listener.listening;
  const proxy = await ChaosProxy.start(port);
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), listener.accept()]);
  proxy.stall();
  for (let i = 0; i < 5; i++) await ch.send(numbered(i)); // go nowhere for now
  let closed = false;
  const closing = ch.close().then(() => (closed = true));
  const got = receiveNumbered(server!, 5);
  await sleep(50);
  assert.not.ok(closed, 'close() resolved before the peer acknowledged');
  assert.equal(await got, range(5)); // after the reconnect
  await closing;
  assert.is(ch.stats.session!.unacknowledgedBytes, 0);
  await server!.close();
  await proxy.close();
  await listener.close();
});

test('a restarted server: SessionLostError counts exactly the messages it never acknowledged', async () => {
  const resume = { heartbeat: 100, keep: 3000 };
  const first = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await first.listening).port);
  const [ch, old] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), first.accept()]);
  for (let i = 0; i < 30; i++) await ch.send(numbered(i));
  assert.equal(await receiveNumbered(old!, 30), range(30));
  await until(() => ch.stats.session!.unacknowledgedBytes === 0, 2000, 'the first 30 acknowledged');
  // The server "dies": its connection goes silent, and a new server (which knows no session) takes the port.
  proxy.stall();
  await first.close();
  const second = Channel.listen('127.0.0.1', 0, { resume });
  proxy.retarget((await second.listening).port);
  for (let i = 30; i < 47; i++) await ch.send(numbered(i));
  // close() waits for the acknowledgements, which never come: it rejects with the loss.
  const closing = await ch.close().then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(closing, SessionLostError);
  const error = (await ch.closed) as SessionLostError;
  assert.is(closing, error);
  assert.instance(error, SessionLostError);
  assert.is(error.code, 'ERR_SESSION_LOST');
  assert.is(error.unacknowledged, 17);
  assert.is(error.firstUnacknowledged, 30);
  assert.ok(error.unacknowledgedBytes > 0);
  try {
    await ch.recv();
    assert.unreachable('recv after a lost session');
  } catch (e) {
    assert.instance(e, SessionLostError);
  }
  assert.is(second.sessions, 0);
  old!.destroy();
  await proxy.close();
  await second.close();
});

test('a client that never comes back: the server loses the session after keep, with its count', async () => {
  const resume = { heartbeat: 50, keep: 200 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), listener.accept()]);
  proxy.stall();
  ch.destroy(); // its ABORT is dropped by the stall: the server only sees silence
  for (let i = 0; i < 3; i++) await server!.send(numbered(i));
  const error = (await server!.closed) as SessionLostError;
  assert.instance(error, SessionLostError);
  assert.is(error.unacknowledged, 3);
  assert.is(listener.sessions, 0);
  assert.is(listener.detached, 0);
  assert.is(listener.stats.expired, 1);
  await proxy.close();
  await listener.close();
});

test('RequestChannel over a resumable channel: 1,000 requests in flight through 50 cuts, each answered right, once', async () => {
  const resume = { heartbeat: 200 };
  const N = 1000;
  const CUTS = 50;
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  let handled = 0;
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  void (async () => {
    for await (const ch of listener) {
      new RequestChannel(ch, {
        maxPending: N,
        onRequest: async (body: Buffer) => {
          handled++;
          await gate; // every request is in flight when the cuts begin
          await sleep(body.readUInt32BE(0) % 20); // and the replies cross the later cuts
          return Buffer.concat([Buffer.from('re:'), body]);
        },
      });
    }
  })();
  const channel = await Channel.connect('127.0.0.1', proxy.port, { resume });
  const client = new RequestChannel(channel, { maxPending: N });
  const replies: Promise<void>[] = [];
  for (let i = 0; i < N; i++) {
    replies.push(
      client.request(numbered(i)).then((reply) => {
        assert.is(reply.subarray(0, 3).toString(), 're:');
        assert.is(reply.readUInt32BE(3), i);
      }),
    );
  }
  await until(() => handled === N, 10_000, 'every request at the server');
  for (let cut = 0; cut < CUTS; cut++) {
    if (cut === CUTS / 2) openGate();
    await until(() => channel.stats.session!.connected, 5000, 'connected');
    proxy.cut();
    await sleep(5);
  }
  await Promise.all(replies);
  assert.ok(channel.stats.session!.resumes >= CUTS, `resumed ${channel.stats.session!.resumes} times`);
  assert.is(handled, N); // each request handled once: none sent twice
  await client.close();
  await proxy.close();
  await listener.close();
});

test('a session over a Unix socket resumes too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'msgchannel-session-'));
  const path = join(dir, 's.sock');
  try {
    const listener = Channel.listen({ path, resume: { heartbeat: 100 } });
    await listener.listening;
    const [ch, server] = await Promise.all([Channel.connect({ path, resume: true }), listener.accept()]);
    await ch.send('one');
    assert.is((await server!.recv()).toString(), 'one');
    await ch.close();
    await server!.closed;
    await listener.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const withOpenssl = tlsTest('session');

withOpenssl(
  'mutual TLS: the session resumes through cuts, and a resume needs the same client certificate',
  async () => {
    const server = makeCertificate();
    const client = makeCertificate('client');
    const resume = { heartbeat: 100 };
    const listener = Channel.listen('127.0.0.1', 0, {
      resume,
      tls: { key: server.key, cert: server.cert, ca: [client.cert], requestCert: true, rejectUnauthorized: true },
    });
    const proxy = await ChaosProxy.start((await listener.listening).port);
    const tls = { key: client.key, cert: client.cert, ca: [server.cert], servername: 'localhost' };
    const [ch, accepted] = await Promise.all([
      Channel.connect('127.0.0.1', proxy.port, { resume, tls }),
      listener.accept(),
    ]);
    const got = receiveNumbered(accepted!, 300);
    for (let i = 0; i < 300; i++) {
      if (i % 100 === 50) await proxy.cutConnected();
      await ch.send(numbered(i));
    }
    assert.equal(await got, range(300));
    assert.is(accepted!.peerCertificate?.subject?.CN, 'client'); // the session's, across resumes
    assert.is(ch.peerCertificate?.subject?.CN, 'localhost');
    assert.ok(proxy.accepted > 3, `${proxy.accepted} connections`);
    assert.ok(ch.stats.session!.resumes >= 1, `resumed ${ch.stats.session!.resumes} times`);
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
