/** pythonConnection against Python's own multiprocessing.connection Listener and Client (test/interop/peers/mp_peer.py). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, pythonConnection, type PythonConnectionOptions } from '../../channel.js';
import { pythonTest, startPeer, startServerPeer, within } from './python.js';

/** Skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without python3. */
const peerTest = pythonTest('interop/multiprocessing');

async function echoExchange(ch: Channel): Promise<void> {
  assert.is(String(await ch.recv({ timeout: 5000 })), 'hello from python');
  const bodies = [Buffer.from('ping'), Buffer.alloc(0), Buffer.alloc(200_000, 7)];
  for (const b of bodies) await ch.send(b);
  for (const b of bodies) assert.ok((await ch.recv({ timeout: 5000 })).equals(b));
  await ch.close();
}

const variants: [string, PythonConnectionOptions, string[]][] = [
  ['without authkey', {}, []],
  ['with authkey ({sha256} challenge)', { authkey: 's3cret' }, ['s3cret']],
  ['with authkey (legacy challenge)', { authkey: 's3cret', challenge: 'legacy' }, ['s3cret']],
];

for (const [name, options, key] of variants) {
  peerTest(`Python Listener, our client, ${name}`, async () => {
    const peer = await startServerPeer('mp_peer.py', ['server', ...key]);
    try {
      await within(10_000, async () => {
        const ch = await Channel.connect('127.0.0.1', peer.port, { framing: pythonConnection(options), timeout: 5000 });
        await echoExchange(ch);
        await peer.waitLine(/^EOF$/);
      });
      assert.is(await peer.exited, 0);
    } finally {
      await peer.stop();
    }
  });

  peerTest(`our Listener, Python Client, ${name}`, async () => {
    const listener = Channel.listen('127.0.0.1', 0, { framing: pythonConnection(options) });
    const { port } = await listener.listening;
    const peer = startPeer('mp_peer.py', ['client', String(port), ...key]);
    try {
      await within(10_000, async () => {
        const ch = (await listener.accept())!;
        await echoExchange(ch);
        await peer.waitLine(/^EOF$/);
      });
      assert.is(await peer.exited, 0);
    } finally {
      await listener.close();
      await peer.stop();
    }
  });
}

peerTest('wrong authkey against a Python Listener: ERR_AUTH here, AuthenticationError there', async () => {
  const peer = await startServerPeer('mp_peer.py', ['server', 'right']);
  try {
    await within(10_000, async () => {
      try {
        await Channel.connect('127.0.0.1', peer.port, {
          framing: pythonConnection({ authkey: 'wrong' }),
          timeout: 5000,
        });
        assert.unreachable('authenticated with a wrong key');
      } catch (error) {
        assert.is((error as { code?: string }).code, 'ERR_AUTH');
      }
      await peer.waitLine(/^AUTH_ERROR /);
      assert.is(await peer.exited, 3);
    });
  } finally {
    await peer.stop();
  }
});

peerTest('wrong authkey from a Python Client: ERR_AUTH here, AuthenticationError there', async () => {
  // A raw server so the failed channel itself can be observed (a Listener drops it silently).
  const { createServer } = await import('node:net');
  const server = createServer();
  const accepted = new Promise<Channel>((resolve) =>
    server.once('connection', (socket) =>
      resolve(new Channel(socket, { framing: pythonConnection({ authkey: 'right' }), isServer: true })),
    ),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const peer = startPeer('mp_peer.py', ['client', String(port), 'wrong']);
  try {
    await within(10_000, async () => {
      const ch = await accepted;
      try {
        await ch.ready;
        assert.unreachable('authenticated a wrong key');
      } catch (error) {
        assert.is((error as { code?: string }).code, 'ERR_AUTH');
      }
      await peer.waitLine(/^AUTH_ERROR /);
      assert.is(await peer.exited, 3);
      await ch.closed;
    });
  } finally {
    await peer.stop();
    await new Promise((resolve) => server.close(resolve));
  }
});

peerTest(
  'authkey on our side only: the Python Client (no authkey) sends its greeting where our challenge wants an answer: ERR_AUTH here at once, our challenge and #FAILURE# reach it as messages',
  async () => {
    // A raw server so the failed channel itself can be observed (a Listener drops it silently).
    const { createServer } = await import('node:net');
    const server = createServer();
    const accepted = new Promise<Channel>((resolve) =>
      server.once('connection', (socket) =>
        resolve(
          new Channel(socket, { framing: pythonConnection({ authkey: 'k' }), isServer: true, handshakeTimeout: 2000 }),
        ),
      ),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const peer = startPeer('mp_peer.py', ['client', String(port)]);
    try {
      await within(10_000, async () => {
        const ch = await accepted;
        const started = Date.now();
        const code = await ch.ready.then(
          () => 'open',
          (e: { code?: string }) => e.code,
        );
        assert.is(code, 'ERR_AUTH');
        assert.ok(Date.now() - started < 2000, 'refused at once, not at handshakeTimeout');
        assert.is(ch.isOpen, false);
        await ch.closed;
        // What the client echoed shows what it got: our {sha256} challenge, then the verdict.
        await peer.exited;
        const got = peer.lines.filter((l) => l.startsWith('GOT ')).map((l) => Buffer.from(l.slice(4), 'hex'));
        assert.is(peer.lines[0], 'READY', 'no authkey: the Python Client connects without a handshake');
        assert.is(got.length, 2, JSON.stringify(peer.lines));
        assert.is(got[0]!.subarray(0, 19).toString('latin1'), '#CHALLENGE#{sha256}');
        assert.is(got[0]!.length, 19 + 40, 'the {sha256} challenge carries 40 random bytes');
        assert.is(got[1]!.toString('latin1'), '#FAILURE#');
      });
    } finally {
      await peer.stop();
      await new Promise((resolve) => server.close(resolve));
    }
    // Through a Listener: that connection is never handed out, and nothing of it is left.
    const listener = Channel.listen('127.0.0.1', 0, {
      framing: pythonConnection({ authkey: 'k' }),
      handshakeTimeout: 2000,
    });
    const { port: listenerPort } = await listener.listening;
    const second = startPeer('mp_peer.py', ['client', String(listenerPort)]);
    try {
      await within(10_000, async () => {
        await second.exited;
        assert.ok(
          second.lines.includes(`GOT ${Buffer.from('#FAILURE#').toString('hex')}`),
          JSON.stringify(second.lines),
        );
        while (listener.connections > 0) await new Promise((r) => setTimeout(r, 10));
        assert.is(listener.pending, 0);
        assert.is(listener.handshaking, 0);
      });
    } finally {
      await listener.close();
      await second.stop();
    }
  },
);

test.run();
