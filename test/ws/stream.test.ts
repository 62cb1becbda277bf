/**
 * WebSocketStream (src/ws/stream.ts), the Duplex a Channel runs on over WebSocket: while its
 * reader is paused, small messages are held copied together, so a peer sending one-byte
 * messages cannot make it hold one object per byte (ws emits every message of a socket read,
 * paused or not); what it holds is counted in bytes plus 64 per chunk, as the Channel counts
 * its read-ahead. Through its `reader` (how a Channel reads it) each message goes to the target
 * as it arrives, what came before the target attached goes first, and the end comes after
 * everything held.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import WebSocket, { WebSocketServer } from 'ws';
import { WebSocketStream } from '../../src/ws/stream.js';
import type { ReadTarget } from '../../src/core/reader.js';
import { until } from '../helpers.js';

/** A server-side WebSocketStream and the raw client talking to it. */
async function wsPair(): Promise<{ stream: WebSocketStream; client: WebSocket; done: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`);
  await once(client, 'open');
  const [ws] = await accepted;
  const stream = new WebSocketStream(ws, {}, 65536);
  const done = async (): Promise<void> => {
    stream.destroy();
    client.terminate();
    await new Promise((r) => wss.close(r));
  };
  return { stream, client, done };
}

/** A read target that keeps what it is handed, as the Channel's would decode it. */
function collector(): ReadTarget & { chunks: Buffer[]; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    chunks,
    bytes: () => Buffer.concat(chunks),
    data: (c) => chunks.push(c),
    space: () => null,
    filled: () => {},
  };
}

test('paused, one-byte WebSocket messages are held copied together, not one object each; resumed, all arrive in order', async () => {
  const { stream, client, done } = await wsPair();
  stream.pause();
  const one = Buffer.from([1]);
  for (let i = 0; i < 5000; i++) client.send(one);
  // Let everything arrive.
  await new Promise((r) => setTimeout(r, 300));
  // Resumed: every byte arrives, in order, in a few chunks rather than one object per message.
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.resume();
  await until(() => Buffer.concat(chunks).length >= 5000);
  assert.is(Buffer.concat(chunks).length, 5000);
  assert.ok(chunks.length <= 10, `${chunks.length} chunks held for 5000 one-byte messages`);
  await done();
});

test('through its reader: each message goes to the target as it arrives; paused, held copied together; the end comes after all of it', async () => {
  const { stream, client, done } = await wsPair();
  const target = collector();
  stream.reader.attach(target);
  stream.resume(); // as the Channel does once it has attached
  let ended = false;
  stream.on('end', () => (ended = true));
  for (let i = 0; i < 10; i++) client.send(Buffer.from([i]));
  await until(() => target.chunks.length === 10, 3000);
  assert.equal(target.bytes(), Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), 'one chunk per message, in order');
  assert.equal(stream.listenerCount('data'), 0);
  // The target pauses on the next message, as a Channel does when its read-ahead is full: the
  // rest of that socket read, which ws still emits, waits copied together.
  const data = target.data;
  target.data = (chunk) => {
    data(chunk);
    stream.pause();
  };
  const pattern = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
  for (let i = 0; i < pattern.length; i++) client.send(pattern.subarray(i, i + 1));
  client.close(1000);
  await new Promise((r) => setTimeout(r, 300));
  assert.is(target.chunks.length, 11, 'one message, then nothing while paused');
  assert.is(ended, false, 'the end waits behind what is held');
  target.data = data;
  stream.resume();
  const handedAtOnce = target.chunks.length - 11;
  assert.ok(handedAtOnce >= 1 && handedAtOnce <= 10, `what was held is handed over at once, in ${handedAtOnce} chunks`);
  await until(() => ended, 3000);
  assert.equal(target.bytes().subarray(10), pattern, 'every byte, in order');
  assert.ok(ended, 'then the end');
  await done();
});

test('through its reader: what arrived before the target attached (an accept queue held the stream) goes first, in order', async () => {
  const { stream, client, done } = await wsPair();
  client.send(Buffer.from('early-1 '));
  client.send(Buffer.alloc(5000, 0x61)); // over the coalescing size: held as it is
  client.send(Buffer.from(' early-2'));
  await new Promise((r) => setTimeout(r, 100));
  const target = collector();
  stream.reader.attach(target);
  stream.resume();
  client.send(Buffer.from(' late'));
  await until(() => target.bytes().toString().endsWith(' late'), 3000);
  assert.is(target.bytes().toString(), `early-1 ${'a'.repeat(5000)} early-2 late`);
  await done();
});

test.run();
