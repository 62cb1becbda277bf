/** Interop with a Python peer written from the Channel gist's wire format, both directions. */
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel } from '../../channel.js';
import { pythonTest, startPeer, startServerPeer, within } from './python.js';

/** Skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without python3. */
const peerTest = pythonTest('interop/gist');

const SIZES = [0, 1, 11, 1000, 70_000, 3 * 1024 * 1024];
const pattern = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));

peerTest('msgchannel client <-> Python gist-format server', () =>
  within(20_000, async () => {
    const peer = await startServerPeer('gist_peer.py', ['server']);
    try {
      const ch = await Channel.connect('127.0.0.1', peer.port);
      // Sent concurrently, not awaited one by one: frames must not interleave.
      const sends = SIZES.map((n) => ch.send(pattern(n)));
      sends.push(ch.send('Hello World'));
      await Promise.all(sends);
      for (const n of SIZES) {
        const reply = await ch.recv();
        assert.ok(reply.equals(Buffer.concat([Buffer.from('py:'), pattern(n)])), `echo of ${n} bytes`);
      }
      assert.is((await ch.recv()).toString(), 'py:Hello World');
      await ch.close();
      assert.is(await peer.exited, 0);
    } finally {
      await peer.stop();
    }
  }),
);

peerTest('Python gist-format client <-> msgchannel server', () =>
  within(20_000, async () => {
    const listener = Channel.listen('127.0.0.1', 0);
    const { port } = await listener.listening;
    const peer = startPeer('gist_peer.py', ['client', String(port), ...SIZES.map(String)]);
    try {
      const ch = (await listener.accept())!;
      let count = 0;
      for await (const m of ch) {
        assert.ok(m.equals(pattern(SIZES[count]!)), `message ${count}`);
        count++;
        await ch.send(Buffer.concat([m, Buffer.from('!')]));
      }
      assert.is(count, SIZES.length);
      assert.is(await peer.exited, 0);
      const expected = SIZES.map(
        (n) =>
          `${n + 1} ${createHash('sha256')
            .update(Buffer.concat([pattern(n), Buffer.from('!')]))
            .digest('hex')}`,
      );
      assert.equal(peer.lines, expected);
      await ch.close();
    } finally {
      await peer.stop();
      await listener.close();
    }
  }),
);

test.run();
