/**
 * TLS under attack: sockets that stall before or inside the TLS handshake count against
 * `maxConnections` from accept and are closed after `handshakeTimeout`; a TLS server at its limit
 * refuses with a TCP reset, which a Channel and a Client see as a refusal, not a clean close.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, Client, Server } from '../../channel.js';
import { makeCertificate, opensslMissing, openHandles, resultWithin, sleep, tlsTest, unhandled } from '../helpers.js';

/** Skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without openssl, which makes the certificate. */
const withOpenssl = tlsTest('hardening/tls');
const cert = (opensslMissing() === undefined ? makeCertificate() : undefined)!;

/** The first bytes of a TLS 1.2/1.3 ClientHello record header, then nothing: stalled inside the handshake. */
const PARTIAL_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

/** A raw TCP socket that sends `bytes` (or nothing) and waits; resolves once connected or already closed. */
async function rawSocket(port: number, bytes?: Buffer): Promise<{ closed: Promise<string> }> {
  const socket = net.connect(port, '127.0.0.1');
  const closed = new Promise<string>((r) => {
    let code = 'closed';
    socket.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? 'error'));
    socket.on('close', () => r(code));
  });
  await new Promise<void>((resolve) => {
    socket.once('connect', () => {
      if (bytes) socket.write(bytes);
      resolve();
    });
    void closed.then(() => resolve());
  });
  return { closed };
}

withOpenssl('stalled TLS handshakes count against maxConnections from accept and end at handshakeTimeout', async () => {
  const listener = Channel.listen('127.0.0.1', 0, { tls: cert, maxConnections: 10, handshakeTimeout: 400 });
  const { port } = await listener.listening;
  const started = Date.now();
  const stalled: Promise<string>[] = [];
  let peak = 0;
  for (let i = 0; i < 100; i++) {
    const { closed } = await rawSocket(port, i % 2 === 0 ? undefined : PARTIAL_HELLO); // before, and inside, the handshake
    stalled.push(closed);
    peak = Math.max(peak, listener.connections);
  }
  assert.ok(peak <= 10, `at most maxConnections open at once (saw ${peak})`);
  assert.ok(listener.connections <= 10);
  // Every one of them is closed by the server: the 90 over the limit at once (reset), the 10 at handshakeTimeout.
  const settled = await resultWithin(Promise.all(stalled), 5000);
  if (!Array.isArray(settled)) assert.unreachable('a stalled socket was never closed by the server');
  const outcomes = settled as string[];
  const elapsed = Date.now() - started;
  assert.is(
    outcomes.filter((c) => c === 'ECONNRESET').length >= 90,
    true,
    `the extra sockets were reset (${outcomes.join(',')})`,
  );
  assert.ok(elapsed < 5000, `all closed in ${elapsed} ms`);
  for (let i = 0; i < 100 && listener.connections > 0; i++) await sleep(5);
  assert.is(listener.connections, 0);
  assert.is(listener.handshaking, 0);
  // The listener still serves a real client.
  const serving = (async () => {
    const ch = await listener.accept();
    await ch!.send(await ch!.recv());
    await ch!.close();
  })();
  const client = await Channel.connect('127.0.0.1', port, { tls: { ca: cert.cert } });
  await client.send('hello');
  assert.is(String(await client.recv()), 'hello');
  await serving;
  await client.close();
  await listener.close();
});

withOpenssl(
  'a TLS server at its limit refuses with a reset: a Client retries with growing backoff, never "connected"',
  async () => {
    const server = new Server({ tls: cert, maxConnections: 1, onMessage: (conn, m) => conn.send(m) });
    const { port } = await server.listen(0, '127.0.0.1');
    const a = new Client({ tls: { ca: cert.cert } });
    await a.connect('127.0.0.1', port);
    await a.send('one');

    // A plain Channel sees the reset, never an open channel.
    try {
      const ch = await Channel.connect('127.0.0.1', port, { tls: { ca: cert.cert } });
      assert.unreachable(`connected over the limit (isOpen ${ch.isOpen})`);
    } catch (error) {
      assert.is((error as { code?: string }).code, 'ECONNRESET');
    }

    // A Client: a reset is a failed attempt, not a refusal: it retries with growing backoff, is never
    // "connected", and no send resolves for a lost message.
    const connects: number[] = [];
    const delays: number[] = [];
    const b = new Client({
      tls: { ca: cert.cert },
      initialDelay: 20,
      factor: 2,
      jitter: 0,
      onConnect: () => void connects.push(Date.now()),
      onRetry: (_n, d) => void delays.push(d),
      onError: () => {},
    });
    const first = b.connect('127.0.0.1', port).then(
      () => 'connected',
      (e: { code?: string }) => e.code,
    );
    const sent = b.send('lost?').then(
      () => 'resolved',
      (e: { code?: string }) => e.code,
    );
    for (let i = 0; i < 200 && delays.length < 3; i++) await sleep(10);
    assert.ok(delays.length >= 3, `retried (${delays.length})`);
    assert.ok(delays[1]! > delays[0]! && delays[2]! > delays[1]!, `growing backoff ${delays.join(', ')}`);
    assert.is(await resultWithin(first, 0), 'pending');
    assert.is(await resultWithin(b.stopped, 0), 'pending');
    assert.equal(connects, []);
    await b.close();
    assert.is(await sent, 'ERR_NOT_SENT');
    await a.close();
    await server.close();
  },
);

test('no unhandled rejection, socket or timer left', async () => {
  await sleep(20);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
