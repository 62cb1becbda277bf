/**
 * Red team: a session peer that sends PINGs, each in its own TCP segment, and never reads. Each
 * PING was answered with an ACK written into the transport, however full its buffer: once the
 * kernel's buffers toward the non-reader were full, every answer waited in the victim's memory,
 * without bound (326,149 queued in 5 s). Now an ACK due while the transport needs 'drain' is
 * owed, and one cumulative ACK goes out on 'drain'.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel } from '../../channel.js';
import { ACK, ACK_LENGTH, PING_SEGMENT, SERVER_HELLO_LENGTH, encodeClientHello } from '../../src/session/wire.js';
import { openHandles, sleep, unhandled } from '../helpers.js';

test('a peer that floods PINGs one segment at a time and never reads: no ACK waits in a full transport', async () => {
  // Watch every socket write: an ACK written while the socket's buffer is over its high-water mark waits in memory.
  const ackWriters = new Set<net.Socket>();
  let acksIntoFull = 0;
  let sawFull = false;
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
    if (Buffer.isBuffer(chunk) && chunk.length === ACK_LENGTH && chunk[0] === ACK) {
      ackWriters.add(this);
      if (this.writableNeedDrain) acksIntoFull++;
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof write;
  const listener = Channel.listen('127.0.0.1', 0, { resume: { heartbeat: 5000 } });
  const socket = net.connect((await listener.listening).port, '127.0.0.1');
  try {
    socket.on('error', () => {});
    socket.setNoDelay(true);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(encodeClientHello({ token: Buffer.alloc(16), received: 0, messages: 0, window: 1 << 20 }));
    let got = 0;
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer): void => {
        got += d.length;
        if (got < SERVER_HELLO_LENGTH) return;
        socket.off('data', onData);
        resolve();
      };
      socket.on('data', onData);
    });
    socket.pause(); // never read again
    const server = (await listener.accept())!;
    server.send(Buffer.alloc(1 << 20)).catch(() => {}); // a window of data toward the non-reader fills the kernel's buffers
    const end = Date.now() + 3000;
    let pings = 0;
    while (Date.now() < end) {
      socket.write(PING_SEGMENT);
      pings++;
      for (const s of ackWriters) if (s.writableNeedDrain) sawFull = true;
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(sawFull, `the victim's transport never filled (${pings} PINGs)`);
    assert.ok(acksIntoFull < 10, `${acksIntoFull} ACKs of ${pings} PINGs written into a full transport`);
    server.destroy();
  } finally {
    net.Socket.prototype.write = write;
    socket.destroy();
    await listener.close();
  }
});

test('nothing left behind: no unhandled rejection, no open handle', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
