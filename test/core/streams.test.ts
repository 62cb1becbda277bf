/**
 * Web Streams over a Channel (src/core/streams.ts, docs/websocket.md "Web Streams"): ch.readable
 * yields the messages and ends at the peer's clean close, errors on any other end; ch.writable
 * sends and closes; backpressure maps both ways (the readable never reads ahead of its reader, so
 * the channel's highWaterMark pauses the transport; the writable waits on send()); a file piped
 * through pipeTo() arrives intact over TCP and over WebSocket with the queues bounded; in Node,
 * Duplex.fromWeb makes a stream.Duplex of the two.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import { Channel, type Listener } from '../../channel.js';

const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function connected(ws: boolean, options: { highWaterMark?: number; sendHighWaterMark?: number } = {}) {
  const listener: Listener = Channel.listen({ host: '127.0.0.1', port: 0, ...(ws && { ws: true }), ...options });
  const { port } = await listener.listening;
  const client = ws
    ? await Channel.connect(`ws://127.0.0.1:${port}/`, options)
    : await Channel.connect('127.0.0.1', port, options);
  const server = (await listener.accept())!;
  return { listener, client, server };
}

test('ch.readable yields every message in order and ends when the peer closes; the getter returns one stream', async () => {
  const { listener, client, server } = await connected(false);
  assert.is(server.readable, server.readable);
  for (const m of ['a', 'b', 'c']) await client.send(m);
  await client.close();
  const got: string[] = [];
  for await (const m of server.readable) got.push(m.toString());
  assert.equal(got, ['a', 'b', 'c']);
  await server.close();
  await listener.close();
});

test('ch.readable errors with the error that ended the channel (a malformed frame)', async () => {
  const [a, b] = Channel.pair();
  const reader = b.readable.getReader();
  b.destroy(Object.assign(new Error('boom'), { code: 'EBOOM' }));
  const error = await reader.read().then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  assert.is(error?.code, 'EBOOM');
  a.destroy();
  await Promise.all([a.closed, b.closed]);
});

test('ch.writable sends each chunk as one message; close() closes the channel after delivering them', async () => {
  const { listener, client, server } = await connected(false);
  const writer = client.writable.getWriter();
  await writer.write(new Uint8Array([1, 2, 3]));
  await writer.write('text');
  await writer.close();
  assert.equal([...(await server.recv())], [1, 2, 3]);
  assert.is((await server.recv()).toString(), 'text');
  await server.close();
  assert.not.ok(client.isOpen);
  await listener.close();
});

test('backpressure: the readable does not read ahead of its reader, so the channel pauses the transport', async () => {
  const { listener, client, server } = await connected(false, { highWaterMark: 64 * 1024 });
  const reader = server.readable.getReader();
  const first = reader.read(); // one pending read: one message taken, no more
  await client.send(Buffer.alloc(1000));
  assert.is((await first).value?.length, 1000);
  const writer = client.writable.getWriter();
  let written = 0;
  let stop = false;
  const writing = (async () => {
    while (!stop) {
      await writer.write(Buffer.alloc(32 * 1024));
      written++;
    }
  })();
  await tick(300);
  const stalled = written;
  await tick(100);
  assert.is(written, stalled, 'the writer is stalled while nobody reads');
  assert.ok(server.peerBlocked, 'the server stopped reading the transport');
  stop = true;
  client.destroy();
  server.destroy();
  await writing.catch(() => undefined); // its blocked write fails with the channel
  await Promise.all([client.closed, server.closed]);
  await listener.close();
});

for (const ws of [false, true]) {
  test(`a 16 MiB file piped through pipeTo() arrives intact over ${ws ? 'WebSocket' : 'TCP'}, the queues bounded`, async () => {
    const sendHighWaterMark = 256 * 1024;
    const highWaterMark = 256 * 1024;
    const { listener, client, server } = await connected(ws, { sendHighWaterMark, highWaterMark });
    const file = randomBytes(16 * 1024 * 1024);
    const chunk = 64 * 1024;
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < file.length; at += chunk) controller.enqueue(file.subarray(at, at + chunk));
        controller.close();
      },
    });
    const hash = createHash('sha256');
    let received = 0;
    let maxQueued = 0;
    let maxUnread = 0;
    const sink = new WritableStream<Buffer>({
      async write(m) {
        hash.update(m);
        received += m.length;
        maxQueued = Math.max(maxQueued, client.queuedBytes);
        maxUnread = Math.max(maxUnread, server.bufferedMessages * chunk);
        if ((received / chunk) % 16 === 0) await tick(1); // a slow consumer now and then
      },
    });
    await Promise.all([source.pipeTo(client.writable), server.readable.pipeTo(sink)]);
    assert.is(received, file.length);
    assert.is(hash.digest('hex'), createHash('sha256').update(file).digest('hex'));
    // What a pipe may hold at once: about a send high-water mark on the sender (plus one chunk and
    // its header) and a receive high-water mark (plus one message) on the receiver.
    assert.ok(maxQueued <= sendHighWaterMark + 2 * chunk, `sender queued ${maxQueued}`);
    assert.ok(maxUnread <= highWaterMark + 2 * chunk, `receiver held ${maxUnread}`);
    await server.close();
    await client.closed;
    await listener.close();
  });
}

test('Duplex.fromWeb(ch, { objectMode: true }): a Node stream.Duplex over the channel, one message per chunk', async () => {
  const { listener, client, server } = await connected(false);
  const duplex = Duplex.fromWeb(client, { objectMode: true });
  duplex.write(Buffer.from('to server'));
  assert.is((await server.recv()).toString(), 'to server');
  await server.send('to client');
  const [m] = (await new Promise((r) => duplex.once('data', (d) => r([d])))) as [Buffer];
  assert.is(Buffer.from(m).toString(), 'to client');
  duplex.destroy();
  server.destroy();
  await Promise.all([client.closed, server.closed]);
  await listener.close();
});

test.run();
