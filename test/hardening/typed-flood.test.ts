/**
 * A flood of frames the typed layer must refuse (unknown type ids) costs stderr in proportion to
 * time, not to frames: without an onError handler, the first one of a connection becomes a
 * process warning, then a count at most every few seconds and when the connection's reading ends.
 * The victims (a typed Server without onError, and a TypedChannel's on() dispatcher without
 * onError) run as child processes whose stderr the test counts.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  MessageDecodeError,
  Protocol,
  Server,
  TypedChannel,
  UnknownMessageTypeError,
  ltprotocol,
  msgpackCodec,
  raw,
} from '../../channel.js';
import { WarningLimiter, reportError } from '../../src/report.js';
import { openHandles, sleep, unhandled } from '../helpers.js';
import { childKind, spawnChild, tell } from './child.js';

const MiB = 1024 * 1024;
const LT = new Protocol({ maxId: 255 }).define('echo', 1, raw);
/** 2 MiB of 3-byte ltprotocol frames `00 03 07`: total length 3, type 7 (undefined), no body. */
const FRAMES = Math.floor((2 * MiB) / 3);

// ------------------------------------------------------------------ child processes

if (childKind === 'flood-server') {
  // A typed Server with no onError: what it cannot decode becomes a process warning.
  const server = new Server({ framing: ltprotocol(), protocol: LT, onMessage: (conn, m) => conn.send('echo', m.data) });
  tell(await server.listen(0, '127.0.0.1'));
} else if (childKind === 'flood-dispatcher') {
  // The on() dispatcher of a TypedChannel with no onError: the same, through the other path.
  const listener = Channel.listen('127.0.0.1', 0, { framing: ltprotocol() });
  tell(await listener.listening);
  for await (const ch of listener) {
    const t = new TypedChannel(LT, ch);
    t.on('echo', (data) => t.send('echo', data));
  }
}

// ------------------------------------------------------------------ tests

function frame(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(3);
  h.writeUInt16BE(body.length + 3, 0);
  h.writeUInt8(type, 2);
  return Buffer.concat([h, body]);
}

/** Resolves once `socket` has received `expected` (and nothing else first); rejects after `ms`. */
function receives(socket: net.Socket, expected: Buffer, ms: number): Promise<void> {
  let got = Buffer.alloc(0);
  let timer: NodeJS.Timeout | undefined;
  return new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no echo within ${ms} ms (got ${got.length} bytes)`)), ms);
    socket.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length >= expected.length) {
        if (got.subarray(0, expected.length).equals(expected)) resolve();
        else reject(new Error(`unexpected bytes ${got.subarray(0, 32).toString('hex')}`));
      }
    });
  }).finally(() => clearTimeout(timer));
}

/** Frames the child's warnings account for: 1 per error shown, plus every "N more" count. */
function accounted(stderr: string): { shown: number; counted: number } {
  const shown = (stderr.match(/UnknownMessageTypeError: received a message of unknown type id 7/g) ?? []).length;
  let counted = 0;
  for (const m of stderr.matchAll(/(\d+) more errors? like this/g)) counted += Number(m[1]);
  return { shown, counted };
}

if (childKind === undefined) {
  for (const kind of ['flood-server', 'flood-dispatcher']) {
    test(`${kind}: 2 MiB of unknown-type frames without onError: stderr under 1 MiB, every frame counted, the process lives and serves a good client`, async () => {
      const child = spawnChild(import.meta.url, kind);
      try {
        const { port } = await child.next();
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => {});
        await new Promise((resolve) => socket.once('connect', resolve));
        const flood = Buffer.alloc(FRAMES * 3);
        for (let i = 0; i < FRAMES; i++) flood.writeUIntBE(0x000307, i * 3, 3);
        const after = frame(1, Buffer.from('after the flood'));
        const echoed = receives(socket, after, 120_000);
        socket.write(flood);
        socket.write(after);
        await echoed; // frames are handled in order: every unknown one has been refused by now
        const good = new TypedChannel(LT, await Channel.connect('127.0.0.1', port, { framing: ltprotocol() }));
        await good.send('echo', Buffer.from('good'));
        assert.is(Buffer.from((await good.recv({ timeout: 5000 })).data).toString(), 'good');
        await good.close();
        socket.end();
        await new Promise((resolve) => socket.once('close', resolve));
        // The connection's last count comes when its reading ends.
        for (let i = 0; i < 100 && accounted(child.stderr).shown + accounted(child.stderr).counted < FRAMES; i++)
          await sleep(50);
        assert.ok(child.stderrBytes < MiB, `stderr: ${child.stderrBytes} bytes`);
        const { shown, counted } = accounted(child.stderr);
        assert.is(shown, 1, 'the first one is shown');
        assert.is(shown + counted, FRAMES, 'the rest are counted');
        assert.is(child.proc.exitCode, null, 'the process is alive');
      } finally {
        await child.kill();
      }
    });
  }

  test('WarningLimiter: the first warning, then a count at most every interval and on flush; handlers get every error; untagged errors are not limited', () => {
    const emitted: string[] = [];
    const realEmit = process.emitWarning;
    const realNow = Date.now;
    let now = 1_000_000;
    process.emitWarning = ((w: string | Error) =>
      void emitted.push(typeof w === 'string' ? w : w.message)) as typeof process.emitWarning;
    Date.now = () => now;
    try {
      const limiter = new WarningLimiter();
      const refused = (id: number) => limiter.tag(new UnknownMessageTypeError(id));
      reportError(undefined, refused(1));
      for (let i = 0; i < 10; i++) reportError(undefined, refused(2));
      now += WarningLimiter.interval - 1;
      reportError(undefined, refused(2));
      assert.equal(emitted, ['received a message of unknown type id 1']);
      now += 1;
      reportError(undefined, refused(3));
      assert.is(emitted.length, 2);
      assert.is(
        emitted[1],
        '12 more errors like this from the same connection (latest: received a message of unknown type id 3)',
      );
      reportError(undefined, refused(4));
      now += 1000;
      reportError(undefined, refused(5));
      assert.is(emitted.length, 2, 'within the interval: counted');
      limiter.flush();
      assert.match(emitted[2]!, /^2 more errors like this .*type id 5\)$/);
      limiter.flush();
      reportError(undefined, refused(6));
      now += WarningLimiter.interval;
      limiter.flush();
      assert.is(
        emitted[3],
        '1 more error like this from the same connection (latest: received a message of unknown type id 6)',
      );
      assert.is(emitted.length, 4, 'nothing more to flush');
      const handled: Error[] = [];
      for (let i = 0; i < 5; i++) reportError((e) => void handled.push(e), refused(7));
      assert.is(handled.length, 5, 'a handler gets every one');
      reportError(undefined, new Error('plain'));
      reportError(undefined, new Error('plain'));
      assert.is(emitted.length, 6, 'errors no limiter tagged are warned each time');
    } finally {
      process.emitWarning = realEmit;
      Date.now = realNow;
    }
  });

  test('the errors a peer causes frame by frame are made without a stack trace (most of their cost), with their code, id, body and cause', async () => {
    const [a, b] = Channel.pair({ framing: ltprotocol() });
    const t = new TypedChannel(new Protocol({ maxId: 255 }).define('echo', 1, raw).define('n', 2, msgpackCodec), b);
    await a.send(Buffer.from('??'), { type: 7 });
    await a.send(Buffer.from([0xc1]), { type: 2 });
    const unknown = (await t.recv().catch((e: unknown) => e)) as UnknownMessageTypeError;
    assert.instance(unknown, UnknownMessageTypeError);
    assert.equal([unknown.code, unknown.id, String(unknown.body)], ['ERR_UNKNOWN_TYPE', 7, '??']);
    assert.is(unknown.stack, 'UnknownMessageTypeError: received a message of unknown type id 7');
    const bad = (await t.recv().catch((e: unknown) => e)) as MessageDecodeError;
    assert.instance(bad, MessageDecodeError);
    assert.equal([bad.code, bad.id, bad.type], ['ERR_DECODE', 2, 'n']);
    assert.instance(bad.cause, Error);
    assert.not.match(String(bad.stack), /\n\s+at /);
    assert.ok(Error.stackTraceLimit > 0, 'the stack trace limit is restored');
    assert.match(String(new Error('x').stack), /\n\s+at /);
    await a.close();
    await t.closed;
  });

  test('typed-flood suite leaves no unhandled rejection, socket, timer or child process behind', async () => {
    await sleep(50);
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
