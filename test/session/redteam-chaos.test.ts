/**
 * Red-team chaos checks of resumable sessions, for the framings and options the property tests do
 * not draw (ltprotocol, openflow, packetmq framing, pythonConnection with authkey, `auth`, TLS):
 * numbered messages both ways through resets AND silent stalls arrive exactly once, in order; a
 * restart in the middle of a message bigger than the window gives the exact SessionLostError;
 * close() and destroy() while the client is reconnecting settle and leave nothing behind.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  SessionLostError,
  ltprotocol,
  msg,
  openflow,
  packetmqFraming,
  pythonConnection,
  type ChannelOptions,
} from '../../channel.js';
import { sessionOf } from '../../src/session/connect.js';
import { makeCertificate, openHandles, sleep, tlsTest, unhandled, until } from '../helpers.js';
import { ChaosProxy } from './chaos.js';

const N = 150;
const SIZES = [0, 9, 3000, 20_000, 60_000]; // openflow's limit is 65531

function numbered(i: number): Buffer {
  const b = Buffer.alloc(4 + SIZES[i % SIZES.length]!);
  b.writeUInt32BE(i, 0);
  for (let j = 4; j < b.length; j++) b[j] = (i * 7 + j) & 0xff;
  return b;
}

async function receiveAll(ch: Channel, n: number, side: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const got = await ch.recv();
    if (got.readUInt32BE(0) !== i) assert.unreachable(`${side}: message ${got.readUInt32BE(0)} where ${i} was due`);
    if (!got.equals(numbered(i))) assert.unreachable(`${side}: message ${i} corrupted`);
  }
}

/** Send N numbered messages; at the given indexes reset (`cut`) or silence (`stall`) the link first. */
async function sendAll(ch: Channel, proxy: ChaosProxy, chaos: Map<number, 'cut' | 'stall'>): Promise<void> {
  for (let i = 0; i < N; i++) {
    const what = chaos.get(i);
    if (what === 'cut') proxy.cut();
    else if (what === 'stall') proxy.stall();
    await ch.send(numbered(i));
  }
}

async function bothWays(options: ChannelOptions, connectExtra: ChannelOptions = {}): Promise<void> {
  const resume = { heartbeat: 100, keep: 10_000, window: 32 * 1024 };
  const listener = Channel.listen('127.0.0.1', 0, { ...options, resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  try {
    const [client, server] = await Promise.all([
      Channel.connect('127.0.0.1', proxy.port, { ...options, ...connectExtra, resume }),
      listener.accept(),
    ]);
    const up = new Map<number, 'cut' | 'stall'>([
      [10, 'cut'],
      [40, 'stall'],
      [90, 'cut'],
    ]);
    const down = new Map<number, 'cut' | 'stall'>([
      [25, 'cut'],
      [70, 'stall'],
      [120, 'cut'],
    ]);
    await Promise.all([
      sendAll(client, proxy, up),
      receiveAll(server!, N, 'server'),
      sendAll(server!, proxy, down),
      receiveAll(client, N, 'client'),
    ]);
    assert.ok(client.stats.session!.resumes >= 2, `resumed ${client.stats.session!.resumes} times`);
    await Promise.all([client.close(), server!.close()]);
    assert.is(listener.sessions, 0);
  } finally {
    await proxy.close();
    await listener.close();
  }
}

const framings: [string, ChannelOptions][] = [
  ['ltprotocol', { framing: ltprotocol() }],
  ['openflow', { framing: openflow }],
  ['packetmq framing', { framing: packetmqFraming }],
  ['pythonConnection with authkey', { framing: pythonConnection({ authkey: 'secret' }) }],
  ['msg with auth', { framing: msg, auth: { key: 'k'.repeat(32) } }],
];

for (const [name, options] of framings) {
  test(`${name}: exactly once, in order, both ways, through resets and silent stalls`, async () => {
    await bothWays(options);
  });
}

const withOpenssl = tlsTest('session/redteam-chaos');
withOpenssl('TLS: exactly once, in order, both ways, through resets and silent stalls', async () => {
  const cert = makeCertificate();
  await bothWays(
    { tls: { key: cert.key, cert: cert.cert } } as ChannelOptions,
    { tls: { ca: [cert.cert], servername: 'localhost' } } as never,
  );
});

test('a restart in the middle of a message bigger than the window: the exact SessionLostError', async () => {
  const resume = { heartbeat: 100, keep: 3000, window: 64 * 1024 };
  const first = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await first.listening).port);
  const [ch, old] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), first.accept()]);
  for (let i = 0; i < 10; i++) await ch.send(numbered(i));
  await receiveAll(old!, 10, 'old server');
  await until(() => ch.stats.session!.unacknowledgedBytes === 0, 2000, 'the first 10 acknowledged');
  const big = Buffer.alloc(4 * 1024 * 1024, 3);
  const bigSent = ch.send(big).then(
    () => 'sent',
    (e: unknown) => e,
  );
  // The old server has part of it (more than a window, so some was acknowledged), not all.
  const oldSession = sessionOf(old!)!;
  await until(() => oldSession.hello().received > 1024 * 1024, 5000, 'part of the big message received');
  proxy.stall();
  await first.close();
  const second = Channel.listen('127.0.0.1', 0, { resume });
  proxy.retarget((await second.listening).port);
  const after = [ch.send('a').catch((e: unknown) => e), ch.send('b').catch((e: unknown) => e)];
  const closing = await ch.close().then(
    () => undefined,
    (e: unknown) => e,
  );
  const error = (await ch.closed) as SessionLostError;
  assert.instance(error, SessionLostError);
  assert.is(closing, error);
  assert.is(error.firstUnacknowledged, 10);
  // The big message and every message the channel wrote after it; none of them was acknowledged.
  assert.is(error.unacknowledged, ch.stats.messagesSent - 10);
  assert.ok(error.unacknowledged >= 1);
  assert.ok(error.unacknowledgedBytes > 0 && error.unacknowledgedBytes <= big.length + 64);
  assert.is.not(await bigSent, 'sent', 'the big send resolved although its session was lost before it arrived');
  await Promise.all(after);
  old!.destroy();
  await proxy.close();
  await second.close();
});

test('close() while the client is reconnecting: it settles with SessionLostError once keep runs out', async () => {
  const resume = { heartbeat: 100, keep: 600 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), listener.accept()]);
  await ch.send('one');
  assert.is((await server!.recv()).toString(), 'one');
  await until(() => ch.stats.session!.unacknowledgedBytes === 0, 2000, "'one' acknowledged");
  await proxy.close(); // every reconnection is refused from now on
  await until(() => !ch.stats.session!.connected, 2000, 'disconnected');
  await ch.send('two'); // written into the session (as into a socket): the loss will count it
  const closing = ch.close().then(
    () => 'resolved',
    (e: unknown) => e,
  );
  const closed = await closing;
  assert.instance(closed, SessionLostError, `close() settled with ${String(closed)}`);
  assert.is((closed as SessionLostError).unacknowledged, 1);
  assert.is((closed as SessionLostError).firstUnacknowledged, 1);
  assert.instance(await server!.closed, SessionLostError);
  await listener.close();
  await sleep(50);
  assert.equal(openHandles(), []);
});

test('destroy() while the client is reconnecting: no reconnection, no timer, no socket left', async () => {
  const resume = { heartbeat: 100, keep: 20_000 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), listener.accept()]);
  await proxy.close();
  await until(() => !ch.stats.session!.connected, 2000, 'disconnected');
  await sleep(150); // inside the backoff
  ch.destroy();
  await ch.closed;
  server!.destroy();
  await listener.close();
  await sleep(50);
  assert.equal(openHandles(), []);
});

test('await send(buf) then reuse buf, over a session through cuts, to a slow reader: every message intact', async () => {
  const resume = { heartbeat: 100, keep: 10_000, window: 64 * 1024 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), listener.accept()]);
  const reused = Buffer.alloc(100 * 1024);
  const received = (async () => {
    let bad = 0;
    for (let i = 0; i < 30; i++) {
      if (i % 10 === 0) await sleep(100); // slow: the window fills, sends wait, replays happen after cuts
      const m = await server!.recv();
      if (m.length !== reused.length || m.some((b) => b !== i % 251)) bad++;
    }
    return bad;
  })();
  for (let i = 0; i < 30; i++) {
    reused.fill(i % 251);
    if (i % 7 === 3) proxy.cut();
    await ch.send(reused);
  }
  assert.is(await received, 0, 'messages carried bytes written after their send() resolved');
  await Promise.all([ch.close(), server!.close()]);
  await proxy.close();
  await listener.close();
});

test('a client that cannot reconnect loses its session keep ms after the drop, not a backoff step later', async () => {
  const keep = 400;
  const resume = { heartbeat: 1000, keep };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), listener.accept()]);
  const random = Math.random;
  Math.random = () => 0.999; // the longest backoff steps: 50, 100, 200, 400 ms
  try {
    proxy.retarget(1); // every reconnection is refused from now on
    proxy.cut();
    await until(() => !ch.stats.session!.connected, 2000, 'disconnected');
    const dropped = Date.now();
    const error = await ch.closed;
    const late = Date.now() - dropped - keep;
    assert.instance(error, SessionLostError);
    // The backoff's next step would have ended 350 ms past keep (50 + 100 + 200 + 400 ms of sleeps).
    assert.ok(late < 250, `lost ${late} ms after keep ran out`);
  } finally {
    Math.random = random;
  }
  server!.destroy();
  await proxy.close();
  await listener.close();
});

test('nothing left behind: no unhandled rejection, no open handle', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
