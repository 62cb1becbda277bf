/**
 * Our packetmq session against a Python peer written from the wire format
 * (test/interop/peers/packetmq_peer.py: python3 + msgpack, strings packed as bin like Python 2's
 * packetmq), in both roles. Skipped when `python3` on PATH cannot import msgpack, saying how to
 * install it; failed instead under MSGCHANNEL_STRICT_PEERS=1 (.ci/run sets it and installs msgpack).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  ChannelClosedError,
  HandshakeError,
  PacketmqSession,
  msgpack,
  type MessagesOf,
  packetmqChannelOptions,
  packetmqProtocol,
} from '../../channel.js';
import { MSGPACK, type Peer, pythonTest, startPeer as startPythonPeer } from './python.js';

/** Skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without python3 and its msgpack module. */
const peerTest = pythonTest('interop/packetmq', [MSGPACK]);

function startPeer(args: string[]): Peer {
  return startPythonPeer('packetmq_peer.py', args);
}

/** Our side's ids: 16.., the peer's IDBASE differs, so the adaptive side really adapts. */
const chat = () =>
  packetmqProtocol()
    .define('chat:say', 16, msgpack<{ text: string }>())
    .define('chat:echo', 17, msgpack<{ text: string; seen: number }>({ binAsString: true }))
    .define('chat:quit', 18, msgpack<{ reason: string }>());

async function exchange(session: PacketmqSession<MessagesOf<ReturnType<typeof chat>>>) {
  await session.ready;
  await session.send('chat:say', { text: 'hello' });
  await session.send('chat:say', { text: 'again' });
  const a = await session.recv();
  const b = await session.recv();
  assert.equal([a.name, a.data], ['chat:echo', { text: 'HELLO', seen: 1 }]);
  assert.equal([b.name, b.data], ['chat:echo', { text: 'AGAIN', seen: 2 }]);
  await session.send('chat:quit', { reason: 'reason.peerdone' });
  const e = (await session.recv().catch((x: unknown) => x)) as ChannelClosedError;
  assert.instance(e, ChannelClosedError);
  assert.is(e.reason, 'reason.peerdone', 'the Python side softquit: its reason reaches us');
  return a.id;
}

peerTest('python packetmq server (non-adaptive, ids 40..) and us as the adaptive client', async () => {
  const peer = startPeer(['server', '0', '0', '40']);
  try {
    const port = Number((await peer.waitLine(/^PORT \d+$/)).slice(5));
    const ch = await Channel.connect('127.0.0.1', port, packetmqChannelOptions());
    const session = new PacketmqSession(chat(), ch, { adaptive: true, handshakeTimeout: 5000 });
    const echoId = await exchange(session);
    assert.is(echoId, 41, "we adapted to the peer's id of chat:echo");
    assert.equal(Object.fromEntries(session.wireIds), { 'chat:say': 40, 'chat:echo': 41, 'chat:quit': 42 });
    await peer.waitLine(/^SENT-SOFTQUIT reason.peerdone$/);
    await peer.waitLine(/^CLOSED$/);
    assert.ok(peer.lines.includes('GOT-FINISH'), 'we sent finish');
    assert.not.ok(peer.lines.some((l) => l.startsWith('DROPPED') || l.startsWith('UNKNOWN')));
    await session.closed;
  } finally {
    await peer.stop();
  }
});

peerTest('python packetmq client (adaptive) and us as the non-adaptive server', async () => {
  const listener = Channel.listen('127.0.0.1', 0, packetmqChannelOptions());
  const { port } = await listener.listening;
  const peer = startPeer(['client', String(port), '1', '100']);
  try {
    const ch = (await listener.accept())!;
    const session = new PacketmqSession(chat(), ch, { adaptive: false, handshakeTimeout: 5000 });
    const echoId = await exchange(session);
    assert.is(echoId, 17, 'the adaptive Python side uses our ids');
    await peer.waitLine(/^IDS .*chat:echo=17 chat:quit=18 chat:say=16/);
    await peer.waitLine(/^CLOSED$/);
    await session.closed;
  } finally {
    await peer.stop();
    await listener.close();
  }
});

peerTest('python peer with the same adaptive policy: both sides softquit reason.sameadaptivepolicy', async () => {
  const peer = startPeer(['server', '0', '1', '16']);
  try {
    const port = Number((await peer.waitLine(/^PORT \d+$/)).slice(5));
    const ch = await Channel.connect('127.0.0.1', port, packetmqChannelOptions());
    const session = new PacketmqSession(chat(), ch, { adaptive: true, handshakeTimeout: 5000 });
    const e = (await session.ready.catch((x: unknown) => x)) as HandshakeError | ChannelClosedError;
    assert.ok(e instanceof HandshakeError || e instanceof ChannelClosedError, String(e));
    assert.is(e.reason, 'reason.sameadaptivepolicy');
    await peer.waitLine(/^SENT-SOFTQUIT reason.sameadaptivepolicy$/);
    await peer.waitLine(/^CLOSED$/);
    await session.closed;
  } finally {
    await peer.stop();
  }
});

peerTest('we softquit a python peer: it gets our reason', async () => {
  const peer = startPeer(['server', '0', '0', '20']);
  try {
    const port = Number((await peer.waitLine(/^PORT \d+$/)).slice(5));
    const session = new PacketmqSession(chat(), await Channel.connect('127.0.0.1', port, packetmqChannelOptions()), {
      adaptive: true,
    });
    await session.ready;
    await session.softquit('reason.clientdone');
    await peer.waitLine(/^SOFTQUIT reason.clientdone$/);
    await peer.waitLine(/^CLOSED$/);
    assert.is(await session.closed, undefined);
  } finally {
    await peer.stop();
  }
});

test.run();
