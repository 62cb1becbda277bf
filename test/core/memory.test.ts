/**
 * Channel.pair's in-memory transport (src/core/memory.ts) on its own: each write reaches the peer
 * as a copy, and its failures are error classes with a socket's codes (EPIPE for a write to a
 * closed peer, ECONNRESET for a peer destroyed with an error), branded as every msgchannel error.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryPeerResetError, MemoryPipeClosedError, MsgChannelError } from '../../channel.js';
import { memoryPair } from '../../src/core/memory.js';

/** The error a write on `end` calls back with. */
const writeError = (end: NodeJS.WritableStream, chunk: Buffer): Promise<Error | null | undefined> =>
  new Promise((resolve) => end.write(chunk, (error) => resolve(error)));

test('a write reaches the peer as a copy: changing the buffer afterwards changes nothing there', async () => {
  const [a, b] = memoryPair();
  const buf = Buffer.from('abc');
  const got = new Promise<Buffer>((resolve) => b.once('data', resolve));
  await writeError(a, buf);
  buf.fill(0);
  assert.is(String(await got), 'abc');
  a.destroy();
  b.destroy();
});

test('a write to a destroyed peer: MemoryPipeClosedError, code EPIPE', async () => {
  const [a, b] = memoryPair();
  a.on('error', () => {});
  b.destroy();
  const error = await writeError(a, Buffer.from('x'));
  assert.instance(error, MemoryPipeClosedError);
  assert.instance(error, MsgChannelError);
  assert.is((error as MemoryPipeClosedError).code, 'EPIPE');
  assert.is(error!.message, 'write to a closed in-memory channel');
  a.destroy();
});

test('a write held for room when the peer is destroyed: MemoryPipeClosedError, code EPIPE', async () => {
  const [a, b] = memoryPair(16);
  a.on('error', () => {});
  const held = writeError(a, Buffer.alloc(64)); // over the peer's mark: the callback waits for room
  await new Promise((r) => setImmediate(r));
  b.destroy();
  const error = await held;
  assert.instance(error, MemoryPipeClosedError);
  assert.is((error as MemoryPipeClosedError).code, 'EPIPE');
  assert.is(error!.message, 'in-memory peer was destroyed');
  a.destroy();
});

test('a peer destroyed with an error resets this end: MemoryPeerResetError, code ECONNRESET', async () => {
  const [a, b] = memoryPair();
  const reset = new Promise<Error>((resolve) => a.once('error', resolve));
  b.on('error', () => {});
  b.destroy(new Error('boom'));
  const error = await reset;
  assert.instance(error, MemoryPeerResetError);
  assert.is((error as MemoryPeerResetError).code, 'ECONNRESET');
  assert.is(error.name, 'MemoryPeerResetError');
});

test.run();
