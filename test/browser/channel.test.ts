/**
 * The browser's Channel and RequestChannel (src/browser/), run here on `ws`'s WebSocket class
 * (the same API as the browser's; test/browser/chromium.test.ts runs them in a real browser),
 * against a Node Server listening with `ws`: messages both ways, large ones cut into 64 KiB
 * WebSocket messages, requests both ways, broadcast, the peer's malformed frame and oversized
 * message, the unread bound, send backpressure on bufferedAmount, and a clean close.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket, { WebSocketServer } from 'ws';
import { Channel as NodeChannel, Server, type Connection } from '../../channel.js';
import { Channel, RequestChannel } from '../../src/browser/index.js';

const Impl = WebSocket as unknown as new (url: string) => globalThis.WebSocket;
const text = (m: Uint8Array): string => new TextDecoder().decode(m);

async function wsListener(options: Parameters<typeof NodeChannel.listen>[0] = {}) {
  const listener = NodeChannel.listen({ host: '127.0.0.1', port: 0, ws: true, ...options });
  const { port } = await listener.listening;
  return { listener, url: `ws://127.0.0.1:${port}/` };
}

test('messages both ways, empty and large ones (assembled across WebSocket messages), then a clean close', async () => {
  const { listener, url } = await wsListener();
  const page = await Channel.connect(url, { WebSocket: Impl });
  const server = (await listener.accept())!;
  const big = new Uint8Array(200_000).fill(9);
  await page.send('hello');
  await page.send(new Uint8Array(0));
  await page.send(big);
  assert.is((await server.recv()).toString(), 'hello');
  assert.is((await server.recv()).length, 0);
  assert.ok((await server.recv()).equals(big));
  await server.send(Buffer.alloc(150_000, 4));
  await server.send('back');
  const got = await page.recv();
  assert.is(got.length, 150_000);
  assert.ok(got.every((b) => b === 4));
  assert.is(text(await page.recv()), 'back');
  await page.close();
  assert.is(await page.closed, undefined);
  await server.closed;
  await listener.close();
});

test('a malformed frame, a message above maxMessageSize and an end mid-frame from the server fail the channel with typed errors', async () => {
  // A raw WebSocket server, to send bytes no msgchannel peer would.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}/`;
  for (const [bytes, code] of [
    ['\r\nMSX 1\r\nx', 'ERR_PROTOCOL'],
    ['\r\nMSG 2000\r\n', 'ERR_MESSAGE_TOO_LARGE'],
    ['\r\nMSG 5\r\nab', 'ERR_UNEXPECTED_EOF'],
  ] as const) {
    wss.once('connection', (ws) => {
      ws.send(Buffer.from(bytes, 'latin1'));
      if (code === 'ERR_UNEXPECTED_EOF') ws.close();
    });
    const page = await Channel.connect(url, { WebSocket: Impl, maxMessageSize: 1000 });
    const error = (await page.closed) as Error & { code?: string };
    assert.is(error?.code, code, bytes);
    const recvError = (await page.recv().then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    )) as Error & { code?: string };
    assert.is(recvError.code, code);
  }
  await new Promise((r) => wss.close(r));
});

test('the unread bound: a page that does not read fails with SlowConsumerError instead of growing', async () => {
  const { listener, url } = await wsListener();
  const page = await Channel.connect(url, { WebSocket: Impl, maxUnreadBytes: 100_000 });
  const server = (await listener.accept())!;
  for (let i = 0; i < 20; i++) void server.send(Buffer.alloc(10_000)).catch(() => undefined);
  const error = (await page.closed) as Error & { code?: string };
  assert.is(error?.code, 'ERR_SLOW_CONSUMER');
  assert.ok(page.bufferedMessages <= 11);
  server.destroy();
  await listener.close();
});

test('send backpressure: sends wait on bufferedAmount while the server does not read, and all arrive in order', async () => {
  const { listener, url } = await wsListener({ highWaterMark: 64 * 1024 });
  const page = await Channel.connect(url, { WebSocket: Impl, sendHighWaterMark: 64 * 1024 });
  const server = (await listener.accept())!;
  const sends: Promise<void>[] = [];
  let settled = 0;
  for (let i = 0; i < 200; i++) {
    const m = new Uint8Array(32 * 1024).fill(i & 0xff);
    sends.push(page.send(m).then(() => void settled++));
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(settled < 200, `${settled} of 200 sends settled while nobody reads`);
  for (let i = 0; i < 200; i++) assert.is((await server.recv())[0], i & 0xff);
  await Promise.all(sends);
  await page.close();
  await listener.close();
});

test('RequestChannel in the page: requests to a Server onRequest, requests from the server, one-way messages and broadcast', async () => {
  let conn: Connection | undefined;
  const server: Server = new Server({
    onConnection: (c) => void (conn = c),
    onRequest: (_c, body) => `server:${body.toString()}`,
    onMessage: (_c, message): Promise<unknown> => server.broadcast(message as Buffer),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0, ws: true });
  const page = new RequestChannel(await Channel.connect(`ws://127.0.0.1:${port}/`, { WebSocket: Impl }), {
    onRequest: (body) => `page:${text(body)}`,
  });
  assert.is(text(await page.request('ping')), 'server:ping');
  while (conn === undefined) await new Promise((r) => setTimeout(r, 5));
  assert.is((await conn.request('hi')).toString(), 'page:hi');
  await page.send('to all');
  assert.is(text(await page.recv()), 'to all');
  const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => page.request(String(i))));
  assert.equal(
    replies.map(text),
    Array.from({ length: 100 }, (_, i) => `server:${i}`),
  );
  await page.close();
  await server.close();
});

test.run();
