/**
 * Faults: a peer killed with SIGKILL mid-frame, a reset (RST), a half-close, a process exiting
 * with sends pending. Every pending promise settles with a clear error, nothing hangs, no
 * unhandled rejection escapes, and no socket or timer is left behind.
 *
 * The child processes run this same compiled file with MSGCHANNEL_FAULT_CHILD set, so they use
 * the library exactly as bundled for the tests. None can outlive the test runner: each exits when
 * its stdin (a pipe from the runner) closes, which the kernel does when the runner dies however it
 * dies (a failed test under `--bail` exits at once; mutation testing SIGKILLs a run that times
 * out), and after CHILD_LIFETIME_MS in any case; the runner also kills every child it started when
 * a test ends and when it exits. (The fast in-process versions of these cases, which the mutation
 * group runs instead, are in test/core/channel-ends.test.ts.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, type Listener, msg } from '../../channel.js';
import { openHandles, sleep, unhandled } from '../helpers.js';

/** Errors a pending operation may end with when the peer dies: each says what happened. */
const CLEAR = new Set(['ERR_UNEXPECTED_EOF', 'ECONNRESET', 'ERR_CHANNEL_CLOSED', 'EPIPE']);

/** The code of a settled promise's rejection ('resolved' if it resolved, 'pending' if not within ms). */
async function outcome(p: Promise<unknown>, ms = 5000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => 'resolved',
        (e: { code?: string }) => e?.code ?? String(e),
      ),
      new Promise<string>((r) => (timer = setTimeout(r, ms, 'pending'))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A checksummed, sequence-numbered message: [u32 seq][u32 length][sha256/8][padding]. */
function numbered(seq: number, size: number): Buffer {
  const b = Buffer.alloc(Math.max(16, size), seq & 0xff);
  b.writeUInt32BE(seq, 0);
  b.writeUInt32BE(b.length, 4);
  createHash('sha256').update(b.subarray(16)).digest().copy(b, 8, 0, 8);
  return b;
}

function checkNumbered(b: Buffer, seq: number): void {
  assert.is(b.readUInt32BE(0), seq, 'in order, none lost or duplicated');
  assert.is(b.readUInt32BE(4), b.length, 'whole');
  assert.ok(createHash('sha256').update(b.subarray(16)).digest().subarray(0, 8).equals(b.subarray(8, 16)), 'intact');
}

// ------------------------------------------------------------------ child processes

/** exit-with-pending: messages the parent confirms before the child's un-awaited sends, and all of them. */
const EXIT_ACKED = 10;
const EXIT_TOTAL = 400;

/** The longest a child may live, whatever happens to the runner: more than any test here waits. */
const CHILD_LIFETIME_MS = 30_000;

const child = process.env.MSGCHANNEL_FAULT_CHILD;
if (child !== undefined) {
  // Exit with the runner: its end of our stdin closes when it exits or is killed.
  process.stdin.on('end', () => process.exit(3));
  process.stdin.on('error', () => process.exit(3));
  process.stdin.resume();
  setTimeout(() => process.exit(4), CHILD_LIFETIME_MS).unref();
  const port = Number(process.env.MSGCHANNEL_FAULT_PORT);
  if (child === 'mid-frame') {
    // A frame's header and half its body, then wait to be killed.
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('\r\nMSG 100000\r\n');
      socket.write(Buffer.alloc(50_000, 7), () => process.stdout.write('ready\n'));
    });
    socket.on('error', () => {}); // the parent going away resets the connection: wait to be killed all the same
  } else if (child === 'exit-with-pending') {
    // The first messages, then wait for the peer to say it has them (so the prefix is not empty);
    // then many un-awaited sends and exit at once: what reaches the peer is a prefix of whole messages.
    const ch = await Channel.connect('127.0.0.1', port);
    for (let i = 0; i < EXIT_ACKED; i++) await ch.send(numbered(i, 32 * 1024));
    await ch.recv();
    for (let i = EXIT_ACKED; i < EXIT_TOTAL; i++) void ch.send(numbered(i, 32 * 1024)).catch(() => {});
    process.stdout.write('sent\n');
    process.exit(0);
  }
}

/** Children started and not yet seen to exit: killed when a test ends and when the runner exits. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function spawnChild(kind: string, port: number): ChildProcess {
  const c = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, MSGCHANNEL_FAULT_CHILD: kind, MSGCHANNEL_FAULT_PORT: String(port) },
    stdio: ['pipe', 'pipe', 'inherit'], // stdin: the child's lifeline (see the top of this file)
  });
  live.add(c);
  c.once('exit', () => live.delete(c));
  return c;
}

/** Kill `c` if it is still running and wait for it to exit (the end of every test that starts one). */
async function reap(c: ChildProcess): Promise<void> {
  if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await exited(c);
  c.stdin?.destroy();
}

/** The child's first line ('' if it exits, or says nothing within 10 s). */
const line = (c: ChildProcess): Promise<string> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, 10_000, '');
    const done = (s: string): void => {
      clearTimeout(timer);
      resolve(s);
    };
    c.stdout!.once('data', (d: Buffer) => done(String(d).trim()));
    c.once('exit', () => done(''));
  });
const exited = (c: ChildProcess): Promise<void> =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => c.once('exit', () => resolve()));

async function listen(): Promise<{ listener: Listener; port: number }> {
  // maxQueuedBytes above the 16 MiB a test queues, so what the sends meet is the peer's death, not
  // the queue limit (under Deno no socket write completes at once: all 16 MiB stay queued).
  const listener = Channel.listen('127.0.0.1', 0, { framing: msg, maxQueuedBytes: 64 * 1024 * 1024 });
  const { port } = await listener.listening;
  return { listener, port };
}

// ------------------------------------------------------------------ tests

if (child === undefined) {
  test('a peer killed with SIGKILL mid-frame: the pending recv, and sends stuck behind backpressure, settle with clear errors', async () => {
    const { listener, port } = await listen();
    const proc = spawnChild('mid-frame', port);
    try {
      const server = (await listener.accept())!;
      assert.is(await line(proc), 'ready');
      const recv = server.recv();
      recv.catch(() => {}); // inspected below, after the kill
      // The child never reads: fill its buffers so sends wait for drain, then more that queue.
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 64; i++) sends.push(server.send(Buffer.alloc(256 * 1024)));
      for (const s of sends) s.catch(() => {});
      await sleep(50);
      proc.kill('SIGKILL');
      await exited(proc);
      const r = await outcome(recv);
      assert.ok(CLEAR.has(r), `recv: ${r}`);
      const outcomes = await Promise.all(sends.map((s) => outcome(s)));
      assert.not.ok(outcomes.includes('pending'), 'no send hangs');
      for (const o of outcomes) assert.ok(o === 'resolved' || CLEAR.has(o), `send: ${o}`);
      assert.ok(
        outcomes.some((o) => o !== 'resolved'),
        'sends that could not be written fail',
      );
      const closed = await server.closed;
      assert.ok(
        closed !== undefined && CLEAR.has((closed as { code?: string }).code!),
        `closed with ${String(closed)}`,
      );
    } finally {
      await reap(proc);
      await listener.close();
    }
  });

  test('a reset (RST): the peer’s pending recv and blocked send reject with ECONNRESET or ERR_CHANNEL_CLOSED; the resetting side settles too', async () => {
    const { listener, port } = await listen();
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const client = new Channel(socket);
    const server = (await listener.accept())!;
    await client.send('before');
    assert.is(String(await server.recv()), 'before');
    const serverRecv = server.recv();
    const clientRecv = client.recv();
    socket.pause(); // the client stops reading, so the server's sends back up
    const blocked: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) blocked.push(server.send(Buffer.alloc(256 * 1024)));
    for (const s of blocked) s.catch(() => {});
    await sleep(30);
    socket.resetAndDestroy();
    const [sr, cr] = await Promise.all([outcome(serverRecv), outcome(clientRecv)]);
    assert.ok(sr === 'ECONNRESET' || sr === 'ERR_CHANNEL_CLOSED', `server recv: ${sr}`);
    assert.ok(CLEAR.has(cr), `client recv: ${cr}`);
    const outcomes = await Promise.all(blocked.map((s) => outcome(s)));
    assert.not.ok(outcomes.includes('pending'), 'no send hangs');
    for (const o of outcomes) assert.ok(o === 'resolved' || CLEAR.has(o), `send: ${o}`);
    await Promise.all([server.closed, client.closed]);
    await listener.close();
  });

  test('a half-close: the peer ends its side while still reading; every message sent before is received, then ERR_CHANNEL_CLOSED', async () => {
    const { listener, port } = await listen();
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const client = new Channel(socket);
    const server = (await listener.accept())!;
    for (let i = 0; i < 100; i++) void client.send(numbered(i, 100 + i * 10));
    await sleep(10);
    socket.end(); // half-close: no more from the client, but it keeps reading
    const got: Buffer[] = [];
    const end = await outcome(
      (async () => {
        for (;;) got.push(await server.recv());
      })(),
    );
    assert.is(end, 'ERR_CHANNEL_CLOSED');
    assert.is(got.length, 100);
    got.forEach((b, i) => checkNumbered(b, i));
    // What the server sends now either arrives or fails clearly: nothing vanishes silently.
    const reply = server.send('after the half-close');
    const replyOutcome = await outcome(reply);
    const clientGot = await outcome(client.recv({ timeout: 2000 }));
    if (replyOutcome === 'resolved')
      assert.ok(clientGot === 'resolved' || CLEAR.has(clientGot), `client: ${clientGot}`);
    else assert.ok(CLEAR.has(replyOutcome), `reply: ${replyOutcome}`);
    await Promise.all([server.closed, client.closed]);
    await listener.close();
  });

  test('a process exits with sends pending: the peer gets a prefix of whole, ordered messages, then a clear end', async () => {
    const { listener, port } = await listen();
    const proc = spawnChild('exit-with-pending', port);
    try {
      const server = (await listener.accept())!;
      const got: Buffer[] = [];
      const end = await outcome(
        (async () => {
          while (got.length < EXIT_ACKED) got.push(await server.recv({ timeout: 10_000 }));
          await server.send('got them'); // the child's cue to queue the rest and exit
          for (;;) got.push(await server.recv({ timeout: 10_000 }));
        })(),
        15_000,
      );
      await exited(proc);
      assert.ok(
        end === 'ERR_CHANNEL_CLOSED' || end === 'ERR_UNEXPECTED_EOF' || end === 'ECONNRESET',
        `ended with ${end}`,
      );
      assert.ok(
        got.length >= EXIT_ACKED,
        `received ${got.length} messages, expected at least the ${EXIT_ACKED} sent before the exit`,
      );
      assert.ok(got.length <= EXIT_TOTAL, `received ${got.length} of ${EXIT_TOTAL}`);
      got.forEach((b, i) => checkNumbered(b, i)); // a prefix: in order from the first, whole, intact
      await server.closed;
    } finally {
      await reap(proc);
      await listener.close();
    }
  });

  test('a channel closed locally with sends and recvs pending settles every one of them', async () => {
    const [a, b] = Channel.pair({ sendHighWaterMark: 1024 });
    const recvs = [a.recv(), a.recv(), a.recv({ timeout: 60_000 })];
    const sends = Array.from({ length: 50 }, () => a.send(Buffer.alloc(4096)));
    for (const p of [...recvs, ...sends]) p.catch(() => {});
    a.destroy();
    const outcomes = await Promise.all([...recvs, ...sends].map((p) => outcome(p)));
    assert.not.ok(outcomes.includes('pending'));
    for (const o of outcomes) assert.ok(o === 'resolved' || o === 'ERR_CHANNEL_CLOSED', o);
    await b.closed;
  });

  test('fault suite leaves no unhandled rejection, socket, timer or child process behind', async () => {
    await sleep(50);
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
