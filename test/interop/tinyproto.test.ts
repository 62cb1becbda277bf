/** tinyproto against a Python peer written from the wire format (test/interop/peers/tinyproto_peer.py). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, tinyproto } from '../../channel.js';
import { pythonTest, startPeer, startServerPeer, within } from './python.js';

/** Skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without python3. */
const peerTest = pythonTest('interop/tinyproto');

/** Strictly request/response, as tinyproto requires: the peer speaks first, then echoes each message. */
async function exchange(ch: Channel, refusedSize?: number): Promise<void> {
  assert.is(String(await ch.recv({ timeout: 5000 })), 'hello from tinyproto');
  if (refusedSize !== undefined) {
    try {
      await ch.send(Buffer.alloc(refusedSize));
      assert.unreachable('the peer accepted a message above its maximum');
    } catch (error) {
      assert.is((error as { code?: string }).code, 'ERR_MESSAGE_REFUSED');
    }
  }
  for (const body of [Buffer.from('ping'), Buffer.alloc(0), Buffer.alloc(150_000, 9)]) {
    await ch.send(body);
    assert.ok((await ch.recv({ timeout: 5000 })).equals(body));
  }
  await ch.close();
}

peerTest('we connect to a Python tinyproto server (and it refuses a message above its max)', async () => {
  const peer = await startServerPeer('tinyproto_peer.py', ['server', '200000']);
  try {
    await within(10_000, async () => {
      const ch = await Channel.connect('127.0.0.1', peer.port, { framing: tinyproto, timeout: 5000 });
      await exchange(ch, 300_000);
      await peer.waitLine(/^EOF$/);
    });
    assert.ok(peer.lines.includes('REFUSED 300000'));
    assert.is(await peer.exited, 0);
  } finally {
    await peer.stop();
  }
});

peerTest('a Python tinyproto client connects to us', async () => {
  const listener = Channel.listen('127.0.0.1', 0, { framing: tinyproto });
  const { port } = await listener.listening;
  const peer = startPeer('tinyproto_peer.py', ['client', String(port)]);
  try {
    await within(10_000, async () => {
      const ch = (await listener.accept())!;
      await exchange(ch);
      await peer.waitLine(/^EOF$/);
    });
    assert.is(await peer.exited, 0);
  } finally {
    await listener.close();
    await peer.stop();
  }
});

peerTest('we refuse a message above our maxMessageSize; the Python peer sees 00', async () => {
  const peer = await startServerPeer('tinyproto_peer.py', ['server']);
  try {
    await within(10_000, async () => {
      // Our limit is below the peer's greeting: we answer its header with 00 and it gives up.
      const ch = await Channel.connect('127.0.0.1', peer.port, {
        framing: tinyproto,
        maxMessageSize: 8,
        timeout: 5000,
      });
      assert.not.equal(await peer.exited, 0);
      await ch.closed;
    });
  } finally {
    await peer.stop();
  }
});

test.run();
