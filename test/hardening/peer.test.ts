/**
 * Server and Client against peers that misbehave: un-awaited sends to a peer that never reads
 * (no unhandled rejection from any send API), a non-reading client during broadcast() (the
 * slow-consumer policy), a server that resets a long-lived connection (not a refusal), and a
 * connection refused right after it was made (its messages are sent again, the backoff grows).
 *
 * The crash cases run in child processes (this same compiled file with MSGCHANNEL_PEER_CHILD
 * set), which must exit 0: an unhandled rejection makes Node exit with code 1.
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  Client,
  ConnectionRefusedError,
  MessageNotSentError,
  SendQueueFullError,
  Server,
  SlowConsumerError,
  msgpack,
  packetmqProtocol,
  raw,
  tinyproto,
  type Connection,
  type ServerOptions,
} from '../../channel.js';
import { makeCertificate, openHandles, resultWithin, sleep, unhandled } from '../helpers.js';

const proto = packetmqProtocol().define('app:blob', 17, raw).define('app:say', 18, msgpack<string>());
const BLOB = Buffer.alloc(64 * 1024, 1);

/** Wait until `cond()` holds, checking every 5 ms, for at most `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(5);
  }
  return true;
}

/** A TCP server on 127.0.0.1:0 whose connections are never read. */
async function nonReadingServer(): Promise<{ server: net.Server; port: number; sockets: net.Socket[] }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    s.pause();
    s.on('error', () => {});
    sockets.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, sockets };
}

async function closeServer(server: net.Server, sockets: net.Socket[]): Promise<void> {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
}

/** A packetmq Server whose handler blocks until `release()`: it stops reading once its buffers fill. */
async function blockedPacketmqServer(): Promise<{ server: Server<any>; port: number; release: () => void }> {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const server = new Server({ protocol: proto, packetmq: true, onMessage: () => gate });
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, port, release };
}

// ------------------------------------------------------------------ child processes

const child = process.env.MSGCHANNEL_PEER_CHILD;
if (child !== undefined) {
  // helpers.ts records unhandled rejections for the suites; a child wants Node's default: exit code 1.
  process.removeAllListeners('unhandledRejection');
  const port = Number(process.env.MSGCHANNEL_PEER_PORT);
  const done = (): never => {
    process.stdout.write('done\n');
    process.exit(0);
  };
  if (child === 'client-full') {
    // 25 MiB of un-awaited sends to a server that never reads: past maxQueuedBytes (16 MiB) they are refused.
    const client = new Client({ onError: () => {} });
    await client.connect('127.0.0.1', port);
    for (let i = 0; i < 400; i++) void client.send(BLOB);
    await sleep(300);
    await client.close({ timeout: 50 });
    await sleep(50);
    done();
  } else if (child === 'packetmq-client-full') {
    const client = new Client({ protocol: proto, packetmq: true, onError: () => {} });
    await client.connect('127.0.0.1', port);
    for (let i = 0; i < 400; i++) void client.send('app:blob', BLOB);
    await sleep(300);
    await client.close({ timeout: 50 });
    await sleep(50);
    done();
  } else if (child === 'client-requeue') {
    // Un-awaited sends wait in the channel's queue; the server resets: they are queued again
    // (past queueLimit: refused), then the client is closed: every one of them is rejected.
    const { server, port: p, sockets } = await nonReadingServer();
    const client = new Client({ queueLimit: 20, onError: () => {} });
    await client.connect('127.0.0.1', p);
    for (let i = 0; i < 150; i++) void client.send(BLOB); // 9.4 MiB: queued, not refused
    await sleep(500); // past the refusal window: a reset now is a lost connection
    for (const s of sockets) s.resetAndDestroy();
    await sleep(200);
    await client.close({ timeout: 50 });
    await closeServer(server, sockets);
    await sleep(50);
    done();
  } else if (child === 'packetmq-conn-send-after-leave') {
    let conn: Connection<any> | undefined;
    let left!: () => void;
    const gone = new Promise<void>((r) => (left = r));
    const server = new Server({
      protocol: proto,
      packetmq: true,
      onConnection: (c) => void (conn = c),
      onClose: () => left(),
    });
    await server.listen({ memory: 'peer-child' });
    const client = new Client({ protocol: proto, packetmq: true, reconnect: false });
    await client.connect({ memory: 'peer-child' });
    await client.close();
    await gone;
    for (let i = 0; i < 100; i++) void conn!.send('app:say', 'anyone there?');
    await sleep(100);
    await server.close();
    done();
  } else if (child === 'broadcast-full') {
    // Un-awaited broadcasts to a client that never reads (and one that does).
    const server = new Server({ slowConsumer: 'drop', onError: () => {} });
    const { port: p } = await server.listen(0, '127.0.0.1');
    const stuck = net.connect(p, '127.0.0.1');
    stuck.on('error', () => {});
    stuck.pause();
    const reader = await Channel.connect('127.0.0.1', p);
    void (async () => {
      for await (const _ of reader);
    })().catch(() => {});
    await until(() => server.connections.size === 2);
    for (let i = 0; i < 400; i++) void server.broadcast(BLOB);
    await sleep(500);
    stuck.destroy();
    await reader.close();
    await server.close({ timeout: 500 }).catch(() => {});
    done();
  }
}

function runChild(kind: string, port = 0): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--enable-source-maps', fileURLToPath(import.meta.url)], {
      env: { ...process.env, MSGCHANNEL_PEER_CHILD: kind, MSGCHANNEL_PEER_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += String(d)));
    proc.stderr.on('data', (d: Buffer) => (err += String(d)));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

function assertCleanExit(r: { code: number | null; out: string; err: string }, what: string): void {
  assert.not.match(r.err, /unhandled|Unhandled/, `${what}: no unhandled rejection (stderr: ${r.err.slice(0, 600)})`);
  assert.is(r.code, 0, `${what}: exit code (stderr: ${r.err.slice(0, 600)})`);
  assert.match(r.out, /done/, what);
}

// ------------------------------------------------------------------ tests

if (child === undefined) {
  // ---------------------------------------------------------------- 1. un-awaited sends

  test('child: a Client’s un-awaited sends to a server that never reads do not crash the process', async () => {
    const { server, port, sockets } = await nonReadingServer();
    const r = await runChild('client-full', port);
    await closeServer(server, sockets);
    assertCleanExit(r, 'client-full');
  });

  test('child: a packetmq Client’s un-awaited sends to a server that stops reading do not crash the process', async () => {
    const { server, port, release } = await blockedPacketmqServer();
    const r = await runChild('packetmq-client-full', port);
    release();
    await server.close({ timeout: 1000 }).catch(() => {});
    assertCleanExit(r, 'packetmq-client-full');
  });

  test('child: sends queued again after a reset, then rejected at close, do not crash the process', async () => {
    assertCleanExit(await runChild('client-requeue'), 'client-requeue');
  });

  test('child: a packetmq Server’s conn.send(name, data) after the peer left does not crash the process', async () => {
    assertCleanExit(await runChild('packetmq-conn-send-after-leave'), 'packetmq-conn-send-after-leave');
  });

  test('child: un-awaited broadcasts with a client that never reads do not crash the process', async () => {
    assertCleanExit(await runChild('broadcast-full'), 'broadcast-full');
  });

  /** Outcomes of `sends` so far: 'resolved', the rejection, or 'pending'. */
  function watch(sends: Promise<void>[]): unknown[] {
    const outcomes: unknown[] = sends.map(() => 'pending');
    sends.forEach((p, i) => {
      void p.then(
        () => void (outcomes[i] = 'resolved'),
        (error: unknown) => void (outcomes[i] = error),
      );
    });
    return outcomes;
  }

  test('awaited: a Client’s refused sends reject with MessageNotSentError (ERR_NOT_SENT), cause SendQueueFullError; the rest wait', async () => {
    const { server, port, sockets } = await nonReadingServer();
    const client = new Client({ onError: () => {} });
    await client.connect('127.0.0.1', port);
    const sends = Array.from({ length: 400 }, () => client.send(BLOB));
    const outcomes = watch(sends);
    await sleep(200);
    const refused = outcomes.flatMap((o, i) => (o instanceof Error ? [{ i, e: o as MessageNotSentError }] : []));
    assert.ok(refused.length > 50, `refused ${refused.length}`);
    assert.ok(outcomes.includes('pending'), 'the first ones are queued, waiting for the server to read');
    for (const { i, e } of refused) {
      assert.instance(e, MessageNotSentError);
      assert.is(e.code, 'ERR_NOT_SENT');
      assert.instance(e.cause, SendQueueFullError);
      assert.is(e.data, BLOB);
      assert.is(e.seq, i + 1);
    }
    assert.ok(client.connected, 'the connection stays open');
    await client.close({ timeout: 50 });
    await Promise.allSettled(sends);
    for (const o of outcomes)
      assert.ok(o === 'resolved' || o instanceof MessageNotSentError, `settled as ${String(o)}`);
    await closeServer(server, sockets);
  });

  test('awaited: a packetmq Client’s refused sends reject with MessageNotSentError, cause SendQueueFullError', async () => {
    const { server, port, release } = await blockedPacketmqServer();
    const client = new Client({ protocol: proto, packetmq: true, onError: () => {} });
    await client.connect('127.0.0.1', port);
    const sends = Array.from({ length: 400 }, () => client.send('app:blob', BLOB));
    const outcomes = watch(sends);
    await sleep(200);
    const refused = outcomes.filter((o): o is MessageNotSentError => o instanceof Error);
    assert.ok(refused.length > 50, `refused ${refused.length}`);
    for (const e of refused) {
      assert.is(e.code, 'ERR_NOT_SENT');
      assert.instance(e.cause, SendQueueFullError);
      assert.equal(e.data, { name: 'app:blob', data: BLOB });
    }
    await client.close({ timeout: 50 });
    await Promise.allSettled(sends);
    for (const o of outcomes)
      assert.ok(o === 'resolved' || o instanceof MessageNotSentError, `settled as ${String(o)}`);
    release();
    await server.close({ timeout: 1000 }).catch(() => {});
  });

  test('awaited: sends queued again after a reset reject with MessageNotSentError once the client is closed', async () => {
    const { server, port, sockets } = await nonReadingServer();
    const client = new Client({ initialDelay: 10_000, onError: () => {} });
    await client.connect('127.0.0.1', port);
    const sends = Array.from({ length: 150 }, () => client.send(BLOB));
    await until(() => sockets.length === 1);
    await sleep(500); // past the refusal window: a reset now is a lost connection, not a refusal
    sockets[0]!.resetAndDestroy();
    await until(() => !client.connected);
    await sleep(20);
    assert.ok(client.queued > 0, 'what was not written is queued again');
    await client.close();
    const results = await Promise.allSettled(sends);
    const rejected = results
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => r.reason as MessageNotSentError);
    assert.ok(rejected.length > 0);
    for (const e of rejected) {
      assert.instance(e, MessageNotSentError);
      assert.is(e.code, 'ERR_NOT_SENT');
    }
    await closeServer(server, sockets);
  });

  test('awaited: Connection.send after the peer left rejects with ERR_CHANNEL_CLOSED (plain and packetmq)', async () => {
    for (const packetmq of [false, true]) {
      let conn: Connection<any> | undefined;
      let left = false;
      const server = packetmq
        ? new Server({
            protocol: proto,
            packetmq: true,
            onConnection: (c) => void (conn = c),
            onClose: () => void (left = true),
          })
        : new Server({
            onConnection: (c) => void (conn = c as unknown as Connection<any>),
            onClose: () => void (left = true),
          });
      await server.listen({ memory: `peer-left-${packetmq}` });
      const client: Client<any> = packetmq
        ? new Client({ protocol: proto, packetmq: true, reconnect: false })
        : new Client({ reconnect: false });
      await client.connect({ memory: `peer-left-${packetmq}` });
      await client.close();
      assert.ok(await until(() => left));
      const p = packetmq ? conn!.send('app:say', 'x') : (conn as unknown as Connection).send('x');
      try {
        await p;
        assert.unreachable('sent to nobody');
      } catch (error) {
        assert.is((error as { code?: string }).code, 'ERR_CHANNEL_CLOSED', String(error));
      }
      await server.close();
    }
  });

  // ---------------------------------------------------------------- 2. broadcast and a non-reader

  /**
   * A healthy client (reads everything) and, after `alone` ms, a client that never reads. The
   * producer awaits broadcast() in a loop. Returns the healthy client's rates and the slowest broadcast.
   */
  async function broadcastRates(options: ServerOptions, alone: number, withStuck: number) {
    const closes: unknown[] = [];
    const server = new Server({ ...options, onClose: (_c, reason) => void closes.push(reason), onError: () => {} });
    const { port } = await server.listen(0, '127.0.0.1');
    const healthy = await Channel.connect('127.0.0.1', port);
    let received = 0;
    const reading = (async () => {
      for (;;) {
        if (healthy.tryRecv() === undefined) await healthy.recv();
        received++;
      }
    })().catch(() => {});
    await until(() => server.connections.size === 1);
    const payload = Buffer.alloc(1024, 7);
    let slowest = 0;
    let stalled = false;
    const counts: number[] = [];
    const pump = async (ms: number): Promise<number> => {
      const start = performance.now();
      const before = received;
      while (performance.now() - start < ms && !stalled) {
        const t = performance.now();
        const n = await resultWithin(server.broadcast(payload), 5000);
        if (n === 'pending') stalled = true;
        else counts.push(n);
        slowest = Math.max(slowest, performance.now() - t);
      }
      return ((received - before) * 1000) / (performance.now() - start);
    };
    const rateAlone = await pump(alone);
    const stuck = net.connect(port, '127.0.0.1');
    stuck.on('error', () => {});
    stuck.pause();
    await until(() => server.connections.size === 2);
    const stuckConn = [...server.connections].at(-1)!;
    counts.length = 0;
    const rateWith = await pump(withStuck);
    return { server, healthy, reading, stuck, stuckConn, rateAlone, rateWith, slowest, stalled, closes, counts };
  }

  async function cleanup(r: Awaited<ReturnType<typeof broadcastRates>>): Promise<void> {
    r.stuck.destroy();
    await r.healthy.close();
    await r.reading;
    await r.server.close({ timeout: 2000 }).catch(() => {});
  }

  test('broadcast, default policy (close): a non-reader is closed with SlowConsumerError; the healthy client keeps >= 0.5x its rate', async () => {
    const r = await broadcastRates({}, 700, 1300);
    try {
      console.log(
        `  close: healthy ${Math.round(r.rateAlone)} msg/s alone, ${Math.round(r.rateWith)} msg/s with a non-reader; slowest broadcast ${Math.round(r.slowest)} ms`,
      );
      assert.not.ok(r.stalled, 'no broadcast stayed pending');
      assert.ok(r.slowest < 1000, `slowest broadcast ${r.slowest} ms`);
      assert.ok(r.rateWith >= 0.5 * r.rateAlone, `with a non-reader ${r.rateWith} msg/s, alone ${r.rateAlone} msg/s`);
      assert.ok(await until(() => r.closes.length === 1, 2000), 'the non-reader was closed');
      const reason = r.closes[0] as SlowConsumerError;
      assert.instance(reason, SlowConsumerError);
      assert.is(reason.code, 'ERR_SLOW_CONSUMER');
      assert.ok(reason.queued > 0);
      assert.is(r.server.connections.size, 1);
      assert.ok(r.healthy.isOpen);
    } finally {
      await cleanup(r);
    }
  });

  test('broadcast, slowConsumer: drop: the non-reader misses messages and stays; the healthy client keeps >= 0.5x its rate', async () => {
    const r = await broadcastRates({ slowConsumer: 'drop' }, 700, 1300);
    try {
      console.log(
        `  drop: healthy ${Math.round(r.rateAlone)} msg/s alone, ${Math.round(r.rateWith)} msg/s with a non-reader; slowest broadcast ${Math.round(r.slowest)} ms`,
      );
      assert.not.ok(r.stalled, 'no broadcast stayed pending');
      assert.ok(r.slowest < 1000, `slowest broadcast ${r.slowest} ms`);
      assert.ok(r.rateWith >= 0.5 * r.rateAlone, `with a non-reader ${r.rateWith} msg/s, alone ${r.rateAlone} msg/s`);
      const dropped = r.stuckConn.dropped;
      assert.ok(dropped > 0, `dropped ${dropped}`);
      assert.ok(r.stuckConn.isOpen, 'the non-reader is still connected');
      assert.equal(r.closes, []);
      assert.ok(r.counts.includes(1), 'broadcasts that dropped it count only the healthy client');
      assert.ok(r.stuckConn.channel.queuedBytes <= 16 * 1024 * 1024, 'its queue stays within maxQueuedBytes');
    } finally {
      await cleanup(r);
    }
  });

  test('broadcast, slowConsumer: wait: bounded by broadcastTimeout, then the non-reader is closed with SlowConsumerError', async () => {
    const r = await broadcastRates({ slowConsumer: 'wait', broadcastTimeout: 300 }, 300, 1500);
    try {
      console.log(
        `  wait: healthy ${Math.round(r.rateAlone)} msg/s alone, ${Math.round(r.rateWith)} msg/s with a non-reader; slowest broadcast ${Math.round(r.slowest)} ms`,
      );
      assert.not.ok(r.stalled, 'no broadcast stayed pending');
      assert.ok(r.slowest >= 250, `it waited for the non-reader (${r.slowest} ms)`);
      assert.ok(r.slowest < 1300, `slowest broadcast ${r.slowest} ms`);
      assert.ok(await until(() => r.closes.length === 1, 2000), 'the non-reader was closed');
      assert.instance(r.closes[0], SlowConsumerError);
      assert.match((r.closes[0] as Error).message, /within 300 ms/);
      assert.ok(r.healthy.isOpen);
    } finally {
      await cleanup(r);
    }
  });

  // ---------------------------------------------------------------- 3. a reset is not a refusal

  test('a reset after the connection lived a while is not a refusal: the Client reconnects and later sends arrive', async () => {
    const got: string[] = [];
    let accepted = 0;
    const channels: Channel[] = [];
    const raw = net.createServer((socket) => {
      socket.on('error', () => {});
      if (++accepted === 1) {
        socket.resume(); // read everything, answer nothing, then reset
        setTimeout(() => socket.resetAndDestroy(), 1000);
        return;
      }
      const ch = new Channel(socket, { isServer: true });
      channels.push(ch);
      void (async () => {
        for await (const m of ch) got.push(String(m));
      })().catch(() => {});
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const port = (raw.address() as net.AddressInfo).port;
    const errors: Error[] = [];
    const lost: unknown[] = [];
    const client = new Client({
      initialDelay: 50,
      jitter: 0,
      onError: (e) => void errors.push(e),
      onDisconnect: (reason) => void lost.push(reason),
    });
    await client.connect('127.0.0.1', port);
    let sent = 0;
    while (accepted === 1 && client.connected) {
      for (let i = 0; i < 500; i++) void client.send(`message ${sent++}`);
      await sleep(1);
    }
    assert.ok(sent > 1000, `sent ${sent} before the reset`);
    assert.ok(await until(() => accepted === 2 && client.connected), 'reconnected');
    await client.send('after the reset');
    assert.ok(await until(() => got.includes('after the reset')), 'a later send reaches the second connection');
    assert.is(client.state, 'connected');
    assert.equal(
      errors.filter((e) => (e as { code?: string }).code === 'ERR_CONNECTION_LIMIT'),
      [],
      'not reported as a refusal',
    );
    assert.is((lost[0] as { code?: string }).code, 'ECONNRESET');
    assert.not.instance(lost[0], ConnectionRefusedError);
    await client.close();
    for (const ch of channels) ch.destroy();
    await new Promise((r) => raw.close(r));
  });

  test('a reset right at accept is a failed attempt, not a refusal: the client retries with growing backoff, its send waits', async () => {
    const raw = net.createServer((socket) => socket.resetAndDestroy());
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const delays: number[] = [];
    const client = new Client({
      initialDelay: 10,
      factor: 2,
      jitter: 0,
      onError: () => {},
      onRetry: (_n, d) => void delays.push(d),
    });
    const queued = client.send('never delivered');
    void client.connect('127.0.0.1', (raw.address() as net.AddressInfo).port).catch(() => {});
    assert.ok(await until(() => delays.length >= 3, 5000), `retries: ${delays}`);
    assert.equal(delays.slice(0, 3), [10, 20, 40]);
    assert.is(await resultWithin(client.stopped, 0), 'pending');
    assert.is(await resultWithin(queued, 0), 'pending');
    await client.close();
    const e = (await queued.then(
      () => assert.unreachable('a message sent on a reset connection resolved'),
      (error: unknown) => error,
    )) as MessageNotSentError;
    assert.is(e.code, 'ERR_NOT_SENT');
    await new Promise((r) => raw.close(r));
  });

  // ---------------------------------------------------------------- 4. refused right after connect

  test('TLS, refused right after connect: sends are not resolved but queued again, the backoff grows, they arrive once there is room', async () => {
    const { key, cert } = makeCertificate();
    const got: string[] = [];
    const server = new Server({
      tls: { key, cert },
      maxConnections: 1,
      onMessage: (_c, m) => void got.push(String(m)),
    });
    const { port } = await server.listen(0, '127.0.0.1');
    const first = new Client({ tls: { ca: cert } });
    await first.connect('127.0.0.1', port);
    const delays: number[] = [];
    const settled: string[] = [];
    const sends: Promise<void>[] = [];
    const track = (p: Promise<void>, name: string): void => {
      sends.push(p);
      p.then(
        () => void settled.push(`${name} resolved`),
        () => void settled.push(`${name} rejected`),
      );
    };
    const client = new Client({
      tls: { ca: cert },
      retryRefused: true,
      initialDelay: 20,
      factor: 2,
      jitter: 0,
      onError: () => {},
      onRetry: (_n, delay) => void delays.push(delay),
      onConnect: (c) => {
        if (sends.length === 1) track(c.send('sent in onConnect'), 'onConnect');
      },
    });
    track(client.send('queued before connect'), 'early');
    void client.connect('127.0.0.1', port).catch(() => {});
    assert.ok(await until(() => delays.length >= 4, 8000), `retries: ${delays}`);
    assert.equal(settled, [], 'no send resolved for a connection that was refused');
    for (let i = 1; i < delays.length; i++) assert.ok(delays[i]! > delays[i - 1]!, `delays grow: ${delays}`);
    assert.ok(client.queued >= 1, 'the messages are queued again');
    await first.close();
    const all = await resultWithin(Promise.all(sends), 8000);
    assert.is.not(all, 'pending');
    assert.ok(await until(() => got.length >= 2));
    assert.equal(got.slice(0, 2), ['queued before connect', 'sent in onConnect']);
    await client.close();
    await server.close();
  });

  test('tinyproto, refused at connect (the server says FE) with retryRefused off: the client stops and its sends reject with MessageNotSentError', async () => {
    // (A plain TCP reset is not a refusal: that Client retries, see test/peer/early-reset.test.ts.)
    const server = new Server({ maxConnections: 1, framing: tinyproto });
    const { port } = await server.listen(0, '127.0.0.1');
    const first = new Client({ framing: tinyproto });
    await first.connect('127.0.0.1', port);
    let inConnect: Promise<void> | undefined;
    const client = new Client({
      framing: tinyproto,
      onError: () => {},
      onConnect: (c) => void (inConnect ??= c.send('in onConnect')),
    });
    const early = client.send('early');
    void client.connect('127.0.0.1', port).catch(() => {});
    assert.instance(await client.stopped, ConnectionRefusedError);
    for (const p of [early, inConnect].filter((x): x is Promise<void> => x !== undefined)) {
      const e = (await p.then(
        () => assert.unreachable('resolved on a refused connection'),
        (error: unknown) => error,
      )) as MessageNotSentError;
      assert.is(e.code, 'ERR_NOT_SENT');
    }
    await first.close();
    await client.close();
    await server.close();
  });

  test('peer hardening leaves no unhandled rejection, socket or timer behind', async () => {
    await sleep(50);
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
