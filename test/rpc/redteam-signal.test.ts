/**
 * Red team: handlers share one `ctx.signal` (one per RequestChannel), and up to `maxPending` of
 * them run at once. A handler that listens to it while it runs (and stops listening when done) is
 * correct code; with more than 10 in flight Node used to print "MaxListenersExceededWarning:
 * Possible EventTarget memory leak detected" for it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, RequestChannel } from '../../channel.js';
import { sleep } from '../helpers.js';

test('maxPending handlers each listening to ctx.signal: no MaxListenersExceededWarning', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  try {
    const [a, b] = Channel.pair();
    let running = 0;
    let most = 0;
    const server = new RequestChannel(b, {
      onRequest: async (body: Buffer, ctx) => {
        const onAbort = (): void => {};
        ctx.signal.addEventListener('abort', onAbort);
        most = Math.max(most, ++running);
        await sleep(50);
        running--;
        ctx.signal.removeEventListener('abort', onAbort);
        return body;
      },
    });
    const client = new RequestChannel(a);
    await Promise.all(Array.from({ length: 256 }, (_, i) => client.request(String(i))));
    await sleep(20); // warnings are emitted on a later tick
    assert.ok(most > 10, `${most} handlers ran at once`);
    assert.equal(warnings, []);
    await Promise.all([client.close(), server.close()]);
  } finally {
    process.off('warning', onWarning);
  }
});

test.run();
