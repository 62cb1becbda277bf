/**
 * A channel that ends with sends still queued (waiting for the transport to drain) settles every
 * one of them: each rejects with ChannelClosedError whose cause is what ended the channel (the
 * transport's error, the close timeout), or the error close()/destroy() made; none resolves
 * without being written, none hangs, and queuedBytes forgets them. Also, in one process, what
 * hardening/faults.test.ts does with child processes: a peer that dies mid-frame while our sends
 * wait for drain, and one that goes away with its own sends pending. README "FAQ: What happens
 * when the peer disappears?". No child process, so nothing here can outlive the test runner.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, type Listener, msg, tinyproto } from '../../channel.js';
import { openHandles, sleep, unhandled } from '../helpers.js';
import { ManualStream, state, tinyprotoOver, turn } from './transport.js';

/** How `p` settled: 'resolved', the rejection's code (or its message), or 'pending' after `ms`. */
async function outcome(p: Promise<unknown>, ms = 2000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => 'resolved',
        (e: { code?: string; message?: string }) => e?.code ?? String(e?.message ?? e),
      ),
      new Promise<string>((resolve) => (timer = setTimeout(resolve, ms, 'pending'))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A channel whose transport holds its writes, with `queued` sends waiting for drain behind two written ones. */
async function backedUp(queued: number, options: { framing?: typeof msg } = {}) {
  const s = new ManualStream({ hold: true, writableHighWaterMark: 1 });
  const ch = new Channel(s, { sendHighWaterMark: 100, ...options });
  if (options.framing === tinyproto) {
    s.feed(Buffer.from([0xff]));
    await ch.ready;
  }
  const written = [ch.send(Buffer.alloc(90, 1))];
  await turn();
  const waiting = Array.from({ length: queued }, (_, i) => ch.send(Buffer.alloc(40, 2 + i)));
  for (const p of waiting) p.catch(() => {});
  assert.is(await state(Promise.race(waiting)), 'pending', 'the sends wait for drain');
  return { s, ch, written, waiting };
}

/** Each of `sends` rejected with ERR_CHANNEL_CLOSED whose cause is `cause` (undefined: no cause). */
async function allClosedBy(sends: Promise<void>[], cause: Error | undefined): Promise<void> {
  for (const p of sends) {
    const e = await p.then(
      () => undefined,
      (error: Error & { code?: string }) => error,
    );
    assert.ok(e !== undefined, 'rejected, not resolved');
    assert.is(e!.code, 'ERR_CHANNEL_CLOSED', e!.message);
    assert.is(e!.cause, cause);
    if (cause !== undefined) assert.is(e!.message, 'channel is closed');
  }
}

test('the transport fails with sends waiting for drain: each rejects with ChannelClosedError caused by that error; queuedBytes drops them', async () => {
  const { s, ch, written, waiting } = await backedUp(5);
  const boom = new Error('boom');
  s.destroy(boom);
  await allClosedBy(waiting, boom);
  await Promise.all(written);
  assert.is(await ch.closed, boom);
  assert.is(ch.queuedBytes - s.writableLength, 0, 'no queued send is counted any more');
  assert.not.ok(ch.isOpen);
  assert.is(s.written.length, 1, 'nothing more was written');
});

test('destroy() with sends waiting for drain: each rejects with the same ChannelClosedError as recv()', async () => {
  const { ch, waiting } = await backedUp(3);
  const recv = ch.recv();
  ch.destroy();
  const e = await recv.then(
    () => undefined,
    (error: Error) => error,
  );
  assert.is((e as { code?: string }).code, 'ERR_CHANNEL_CLOSED');
  for (const p of waiting)
    assert.is(
      await p.then(
        () => undefined,
        (error: Error) => error,
      ),
      e,
    );
  assert.is(await ch.closed, undefined);
});

test('destroy(error) with sends waiting for drain: each rejects with ChannelClosedError caused by that error', async () => {
  const { ch, waiting } = await backedUp(3);
  const why = new Error('why');
  ch.destroy(why);
  await allClosedBy(waiting, why);
  assert.is(await ch.closed, why);
});

test('the peer ends the stream with sends waiting for drain: they reject with ChannelClosedError once it is gone', async () => {
  const { s, ch, waiting } = await backedUp(3);
  s.feed(null as unknown as Uint8Array); // the peer's end
  await turn();
  s.destroy(); // and the transport closes
  for (const p of waiting) assert.is(await outcome(p), 'ERR_CHANNEL_CLOSED');
  assert.is(await ch.closed, undefined, 'a clean end');
});

test('close() that times out with sends waiting for drain: they reject with ChannelClosedError caused by its TimeoutError', async () => {
  const { ch, waiting } = await backedUp(3);
  const closing = ch.close({ timeout: 30 });
  const timedOut = await closing.then(
    () => undefined,
    (error: Error) => error,
  );
  assert.is((timedOut as { code?: string }).code, 'ERR_TIMEOUT');
  await allClosedBy(waiting, timedOut);
});

test('a queued send aborted before the channel fails keeps its abort reason; the others get the channel error', async () => {
  const { ch } = await backedUp(1);
  const controller = new AbortController();
  const aborted = ch.send(Buffer.alloc(10), { signal: controller.signal });
  const other = ch.send(Buffer.alloc(10));
  other.catch(() => {});
  const reason = new Error('not now');
  controller.abort(reason);
  assert.is(
    await aborted.then(
      () => undefined,
      (error: unknown) => error,
    ),
    reason,
  );
  const boom = new Error('boom');
  ch.destroy(boom);
  await allClosedBy([other], boom);
  controller.abort(new Error('again')); // nothing left to abort
});

test('tinyproto: the peer fails while our header waits for its answer: that send and the ones queued behind it reject', async () => {
  const s = new ManualStream();
  const ch = await tinyprotoOver(s);
  const sends = [ch.send('one'), ch.send('two'), ch.send('three')];
  for (const p of sends) p.catch(() => {});
  await turn();
  assert.equal(
    s.wire(),
    Buffer.concat([Buffer.from([0xff]), Buffer.from([0, 0, 0, 3])]),
    'one header, waiting for its answer',
  );
  const boom = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
  s.destroy(boom);
  const outcomes = await Promise.all(sends.map((p) => outcome(p)));
  assert.not.ok(outcomes.includes('pending'));
  assert.not.ok(outcomes.includes('resolved'));
  assert.is(await ch.closed, boom);
});

test('tinyproto: a junk answer byte rejects the waiting send with that ProtocolError and ends the channel with it', async () => {
  const s = new ManualStream();
  const ch = await tinyprotoOver(s);
  const sent = ch.send('x');
  const queued = ch.send('y');
  queued.catch(() => {});
  await turn();
  s.feed(Buffer.from([0x42])); // neither FF nor a refusal
  const e = await sent.then(
    () => undefined,
    (error: Error & { code?: string }) => error,
  );
  assert.is(e?.code, 'ERR_PROTOCOL');
  assert.match(e!.message, /0x42/);
  assert.is(await ch.closed, e, 'the same error ends the channel');
  assert.is(await outcome(queued), 'ERR_CHANNEL_CLOSED');
});

test('tinyproto: the peer answers our header and ends at once: the sends queued behind it reject with ChannelClosedError, the channel ends cleanly', async () => {
  const s = new ManualStream({ allowHalfOpen: false });
  const ch = await tinyprotoOver(s);
  const sends = [ch.send('one'), ch.send('two'), ch.send('three')];
  for (const p of sends) p.catch(() => {});
  await turn();
  // From an I/O callback, as a transport delivers: the answer, then the end, before our code runs again.
  await new Promise<void>((resolve) =>
    setImmediate(() => {
      s.feed(Buffer.from([0xff]));
      s.feed(null as unknown as Uint8Array);
      resolve();
    }),
  );
  assert.not.equal(await outcome(sends[0]!), 'pending');
  assert.is(await outcome(sends[1]!), 'ERR_CHANNEL_CLOSED');
  assert.is(await outcome(sends[2]!), 'ERR_CHANNEL_CLOSED');
  assert.is(await ch.closed, undefined, 'the peer ended at a frame boundary: a clean end');
  assert.equal(s.wire().subarray(0, 5), Buffer.from([0xff, 0, 0, 0, 3]));
  assert.ok(s.wire().length <= 8, 'no header written after the end');
});

// ---------------------------------------------------------------- over TCP, peers in this process

async function listen(): Promise<{ listener: Listener; port: number }> {
  const listener = Channel.listen('127.0.0.1', 0, { framing: msg });
  const { port } = await listener.listening;
  return { listener, port };
}

const CLEAR = new Set(['ERR_UNEXPECTED_EOF', 'ECONNRESET', 'ERR_CHANNEL_CLOSED', 'EPIPE']);

test('a peer that dies mid-frame (reset) while our sends wait for drain: the pending recv and every send settle with a clear error', async () => {
  const { listener, port } = await listen();
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  try {
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.pause(); // never reads
    socket.write('\r\nMSG 100000\r\n');
    socket.write(Buffer.alloc(50_000, 7));
    const server = (await listener.accept())!;
    const recv = server.recv();
    recv.catch(() => {});
    const sends = Array.from({ length: 64 }, () => server.send(Buffer.alloc(256 * 1024)));
    for (const p of sends) p.catch(() => {});
    await sleep(30);
    assert.ok(server.queuedBytes > 1024 * 1024, 'sends back up behind the peer that does not read');
    socket.resetAndDestroy(); // what the kernel does for a killed process with unread data
    assert.ok(CLEAR.has(await outcome(recv)), 'recv');
    const outcomes = await Promise.all(sends.map((p) => outcome(p)));
    assert.not.ok(outcomes.includes('pending'), 'no send hangs');
    for (const o of outcomes) assert.ok(o === 'resolved' || CLEAR.has(o), o);
    assert.ok(
      outcomes.some((o) => o !== 'resolved'),
      'the sends that could not be written fail',
    );
    const closed = (await server.closed) as { code?: string } | undefined;
    assert.ok(closed !== undefined && CLEAR.has(closed.code!), `closed with ${String(closed)}`);
    assert.is(server.queuedBytes, 0);
  } finally {
    socket.destroy();
    await listener.close();
  }
});

test('a peer that goes away with its un-awaited sends pending: we get a prefix of whole messages, in order, then a clear end', async () => {
  const { listener, port } = await listen();
  const client = await Channel.connect('127.0.0.1', port);
  try {
    const server = (await listener.accept())!;
    const total = 200;
    const body = (i: number): Buffer => Buffer.alloc(32 * 1024, i & 0xff);
    for (let i = 0; i < 10; i++) await client.send(body(i));
    for (let i = 10; i < total; i++) void client.send(body(i)).catch(() => {});
    client.destroy();
    let got = 0;
    let end = 'none';
    for (;;) {
      const o = await server.recv({ timeout: 2000 }).then(
        (m) => {
          assert.equal(m, body(got), `message ${got} whole and in order`);
          got++;
          return undefined;
        },
        (e: { code?: string }) => e.code ?? String(e),
      );
      if (o !== undefined) {
        end = o;
        break;
      }
    }
    assert.ok(CLEAR.has(end), end);
    assert.ok(got >= 10 && got <= total, `${got} messages`);
  } finally {
    client.destroy();
    await listener.close();
  }
});

test('sends and recvs on a channel ended every way leave no unhandled rejection, socket or timer', async () => {
  for (let i = 0; i < 100 && openHandles().length > 0; i++) await sleep(10);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
