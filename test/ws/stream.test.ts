/**
 * WebSocketStream (src/ws/stream.ts), the Duplex a Channel runs on over WebSocket: while its
 * reader is paused, small messages are held copied together, so a peer sending one-byte
 * messages cannot make it hold one object per byte (ws emits every message of a socket read,
 * paused or not); what it holds is counted in bytes plus 64 per chunk, as the Channel counts
 * its read-ahead.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import WebSocket, { WebSocketServer } from 'ws';
import { WebSocketStream } from '../../src/ws/stream.js';

test('paused, one-byte WebSocket messages are held copied together, not one object each; resumed, all arrive in order', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`);
  await once(client, 'open');
  const [ws] = await accepted;
  const stream = new WebSocketStream(ws, {}, 65536);
  stream.pause();
  const one = Buffer.from([1]);
  for (let i = 0; i < 5000; i++) client.send(one);
  // Let everything arrive.
  await new Promise((r) => setTimeout(r, 300));
  // Resumed: every byte arrives, in order, in a few chunks rather than one object per message.
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.resume();
  for (let i = 0; i < 200 && Buffer.concat(chunks).length < 5000; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(Buffer.concat(chunks).length, 5000);
  assert.ok(chunks.length <= 10, `${chunks.length} chunks held for 5000 one-byte messages`);
  stream.destroy();
  client.terminate();
  await new Promise((r) => wss.close(r));
});

test.run();
