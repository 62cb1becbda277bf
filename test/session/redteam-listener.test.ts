/**
 * Red-team checks of a session listener's shared resources: the replay budget when a few
 * sessions never acknowledge, and what a closed listener leaves behind for its detached sessions.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, SessionLostError } from '../../channel.js';
import { PING_SEGMENT, SERVER_HELLO_LENGTH, decodeServerHello, encodeClientHello } from '../../src/session/wire.js';
import { openHandles, sleep, unhandled, until } from '../helpers.js';
import { ChaosProxy } from './chaos.js';

/**
 * A hostile session client: opens a new session, then never acknowledges a byte (it keeps the
 * connection alive with PINGs, so the heartbeat sees it). Returns a stopper.
 */
async function nonAcker(port: number): Promise<() => void> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(encodeClientHello({ token: Buffer.alloc(16), received: 0, messages: 0, window: 2 ** 32 - 1 }));
  let got = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.length < SERVER_HELLO_LENGTH) return;
      socket.removeListener('data', onData);
      resolve();
    };
    socket.on('data', onData);
  });
  assert.is(decodeServerHello(got.subarray(0, SERVER_HELLO_LENGTH)).status, 0);
  socket.on('data', () => {}); // read and drop: the TCP window never pushes back, no ACK ever goes out
  const pinger = setInterval(() => socket.write(PING_SEGMENT), 40);
  return () => {
    clearInterval(pinger);
    socket.destroy();
  };
}

/** What `promise` resolves with, or 'still open' after `ms` (the timer cleared either way). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'still open'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still open'>((resolve) => (timer = setTimeout(() => resolve('still open'), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

test('replayBudget: sessions that never acknowledge cannot stall the sends of every other session', async () => {
  const window = 16 * 1024;
  const listener = Channel.listen('127.0.0.1', 0, {
    resume: { window, replayBudget: 64 * 1024, heartbeat: 400 },
  });
  const { port } = await listener.listening;
  const body = Buffer.alloc(8 * 1024, 1);
  // The application pushes to every session (a broadcast): each of its sessions gets 40 messages.
  const pushes: Promise<unknown>[] = [];
  void (async () => {
    for await (const ch of listener) {
      pushes.push(
        (async () => {
          for (let i = 0; i < 40; i++) await ch.send(body);
        })().catch(() => {}),
      );
    }
  })();
  const stoppers = [];
  for (let i = 0; i < 6; i++) stoppers.push(await nonAcker(port));
  // Six sessions each hold a window (16 KiB) and more: the 64 KiB budget is full.
  await until(() => listener.replayBytes > 64 * 1024, 3000, 'the hostile sessions fill the budget');
  const good = await Channel.connect('127.0.0.1', port, { resume: { window } });
  let received = 0;
  try {
    for (; received < 40; received++) await good.recv({ timeout: 3000 });
  } catch {
    // reported below
  }
  assert.is(received, 40, `the good session got ${received} of 40 messages while the budget was held by others`);
  for (const stop of stoppers) stop();
  good.destroy();
  await listener.close();
  await until(() => listener.sessions === 0, 3000, 'the sessions ended');
});

test('a listener that closes loses its detached sessions at once (they can never come back): no timer left', async () => {
  const resume = { heartbeat: 100, keep: 20_000 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), listener.accept()]);
  await server!.send('unacknowledged?');
  assert.is((await ch.recv()).toString(), 'unacknowledged?');
  await proxy.close(); // the link drops and the client cannot come back
  await until(() => listener.detached === 1, 3000, 'the session detached');
  ch.destroy();
  await listener.close();
  const error = await within(server!.closed, 1000);
  assert.instance(error, SessionLostError, `the detached session after the listener closed: ${String(error)}`);
  assert.is(listener.sessions, 0);
  assert.is(listener.detached, 0);
  await sleep(50);
  assert.equal(openHandles(), []);
});

test('a session that drops after its listener closed is lost at once', async () => {
  const resume = { heartbeat: 100, keep: 20_000 };
  const listener = Channel.listen('127.0.0.1', 0, { resume });
  const proxy = await ChaosProxy.start((await listener.listening).port);
  const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', proxy.port, { resume }), listener.accept()]);
  await listener.close();
  await ch.send('still served while connected');
  assert.is((await server!.recv()).toString(), 'still served while connected');
  await proxy.close();
  ch.destroy();
  const error = await within(server!.closed, 1000);
  assert.instance(error, SessionLostError, `after the drop: ${String(error)}`);
  assert.is(listener.sessions, 0);
  await sleep(50);
  assert.equal(openHandles(), []);
});

test('a new session ended by what came with its hello (bad segments, ABORT) is refused, never handed out', async () => {
  const listener = Channel.listen('127.0.0.1', 0, { resume: { heartbeat: 200 } });
  const { port } = await listener.listening;
  const tails = [
    Buffer.from([9]), // an unknown segment
    Buffer.from([5]), // ABORT
    Buffer.from([4, 4]), // FIN twice
    Buffer.from([1, 0, 0, 0, 0]), // an empty DATA segment
    Buffer.concat([Buffer.from([2]), Buffer.alloc(11), Buffer.from([9])]), // an ACK of 9 messages never sent
  ];
  for (const tail of tails) {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(
      Buffer.concat([encodeClientHello({ token: Buffer.alloc(16), received: 0, messages: 0, window: 1 << 20 }), tail]),
    );
    socket.resume(); // read (and drop) the answer, to see the end
    await closed;
  }
  assert.is(listener.stats.refused, tails.length);
  const [ch, first] = await Promise.all([Channel.connect('127.0.0.1', port, { resume: true }), listener.accept()]);
  await ch.send('the first session handed out is mine');
  assert.is((await first!.recv()).toString(), 'the first session handed out is mine');
  assert.is(listener.pending, 0);
  await Promise.all([ch.close(), first!.close()]);
  await listener.close();
});

test('nothing left behind: no unhandled rejection, no open handle', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
