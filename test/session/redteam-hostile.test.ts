/**
 * Red-team hostile resume traffic not in hostile.test.ts: a hello trickled a byte at a time
 * (slowloris), a resume whose fields are all at their maximum, and, in a child process where
 * memory is the question, thousands of new sessions opened and dropped at once (each left
 * detached): the listener keeps at most `maxDetached` of them and its heap stays bounded.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel } from '../../channel.js';
import { sessionOf } from '../../src/session/connect.js';
import { MAX_OFFSET, encodeClientHello, encodeServerHello } from '../../src/session/wire.js';
import { childKind, spawnChild, tell } from '../hardening/child.js';
import { openHandles, sleep, unhandled, until } from '../helpers.js';

const MiB = 2 ** 20;
const SESSIONS = 3000;
const MAX_DETACHED = 500;

if (childKind === 'redteam-session-victim') {
  const listener = Channel.listen('127.0.0.1', 0, { resume: { maxDetached: MAX_DETACHED, heartbeat: 1000 } });
  const { port } = await listener.listening;
  void (async () => {
    for await (const ch of listener)
      ch.closed.then(
        () => {},
        () => {},
      );
  })();
  tell({ port });
  setInterval(() => {
    tell({ heap: process.memoryUsage().heapUsed, detached: listener.detached, sessions: listener.sessions });
  }, 50).unref();
}

/** A new session's hello, then the connection dropped at once: the session is left detached. */
async function openAndDrop(port: number): Promise<void> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(encodeClientHello({ token: Buffer.alloc(16), received: 0, messages: 0, window: 2 ** 32 - 1 }));
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.destroy();
}

if (childKind === undefined) {
  test('a hello trickled a byte at a time is cut at handshakeTimeout; the listener serves meanwhile', async () => {
    const listener = Channel.listen('127.0.0.1', 0, { resume: true, handshakeTimeout: 300 });
    const { port } = await listener.listening;
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise((resolve) => socket.once('connect', resolve));
    const hello = encodeClientHello({ token: Buffer.alloc(16), received: 0, messages: 0, window: 1 << 20 });
    let i = 0;
    const trickle = setInterval(() => {
      if (i < hello.length - 1 && !socket.destroyed) socket.write(hello.subarray(i, ++i));
    }, 30);
    const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', port, { resume: true }), listener.accept()]);
    await ch.send('served');
    assert.is((await server!.recv()).toString(), 'served');
    await closed;
    clearInterval(trickle);
    assert.ok(i < hello.length, 'the whole hello went out before the cut');
    assert.is(listener.stats.refused, 1);
    assert.is(listener.sessions, 1);
    await Promise.all([ch.close(), server!.close()]);
    await listener.close();
  });

  test('a resume with every field at its maximum is refused on that connection; the session goes on', async () => {
    const listener = Channel.listen('127.0.0.1', 0, { resume: { heartbeat: 200 } });
    const { port } = await listener.listening;
    const [ch, server] = await Promise.all([Channel.connect('127.0.0.1', port, { resume: true }), listener.accept()]);
    const token = sessionOf(ch)!.token;
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(encodeClientHello({ token, received: MAX_OFFSET, messages: MAX_OFFSET, window: 2 ** 32 - 1 }));
    await closed;
    assert.is(listener.stats.refused, 1);
    assert.ok(ch.stats.session!.connected);
    await ch.send('still mine');
    assert.is((await server!.recv()).toString(), 'still mine');
    await Promise.all([ch.close(), server!.close()]);
    await listener.close();
  });

  test(`child: ${SESSIONS} new sessions opened and dropped: at most maxDetached kept, the heap bounded`, async () => {
    const child = spawnChild(import.meta.url, 'redteam-session-victim', ['--max-old-space-size=128']);
    try {
      const { port } = await child.next();
      let base = Infinity;
      for (let i = 0; i < 5; i++) base = Math.min(base, ((await child.next()) as { heap: number }).heap);
      let peak = 0;
      let peakDetached = 0;
      let last = { detached: 0, sessions: 0 };
      let opening = true;
      const watching = (async () => {
        while (opening) {
          const m = (await child.next(5000)) as { heap: number; detached: number; sessions: number };
          peak = Math.max(peak, m.heap);
          peakDetached = Math.max(peakDetached, m.detached);
          last = m;
        }
      })();
      for (let i = 0; i < SESSIONS; i += 50) {
        await Promise.all(Array.from({ length: 50 }, () => openAndDrop(port)));
      }
      await until(() => last.sessions <= MAX_DETACHED && last.detached === last.sessions, 5000, 'detached').catch(
        () => {},
      );
      opening = false;
      await watching;
      const grown = (peak - base) / MiB;
      console.log(
        `  ${SESSIONS} sessions dropped: ${peakDetached} detached at most, ${last.sessions} left, heap +${grown.toFixed(1)} MiB`,
      );
      assert.ok(peakDetached <= MAX_DETACHED, `${peakDetached} detached sessions`);
      assert.ok(last.sessions <= MAX_DETACHED, `${last.sessions} sessions left`);
      assert.ok(grown < 48, `the listener's heap grew by ${grown.toFixed(1)} MiB`);
    } finally {
      await child.kill();
    }
  });

  test('a server that never acknowledges: the client holds a window (and its send queue), no more', async () => {
    const window = 64 * 1024;
    const fake = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        socket.write(
          encodeServerHello({ status: 0, token: Buffer.alloc(16, 9), received: 0, messages: 0, window: 2 ** 32 - 1 }),
        );
        socket.on('data', () => {}); // read and drop everything, acknowledge nothing
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const { port } = fake.address() as net.AddressInfo;
    const ch = await Channel.connect('127.0.0.1', port, { resume: { window, heartbeat: 200 }, maxQueuedBytes: MiB });
    const body = Buffer.alloc(32 * 1024, 1);
    const sends = Array.from({ length: 100 }, () =>
      ch.send(body).then(
        () => 'sent',
        (e: unknown) => (e as { code?: string }).code,
      ),
    );
    await sleep(300);
    const held = ch.stats.session!.unacknowledgedBytes;
    assert.ok(held <= window + body.length + 64, `${held} bytes unacknowledged held by the session`);
    ch.destroy();
    const outcomes = await Promise.all(sends);
    assert.ok(outcomes.includes('ERR_SEND_QUEUE_FULL'), 'the send queue bound was never reached');
    await new Promise<void>((resolve) => fake.close(() => resolve()));
  });

  test('nothing left behind: no unhandled rejection, no open handle', async () => {
    await sleep(50);
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
