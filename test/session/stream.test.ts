/**
 * The session stream's sending side against a transport it can watch (src/session/stream.ts):
 * what the window allows is transmitted as it is written, not a tick later, and nothing more goes
 * to a transport that holds a high-water mark of bytes until it drains; over a real session, what
 * waits for the window arrives intact.
 */
import { randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel } from '../../channel.js';
import { SessionStream } from '../../src/session/stream.js';
import { intactWhileUnreadOver } from '../helpers.js';

const KiB = 1024;
const WINDOW = 1024 * KiB;

/** A transport that records what it is given and calls each write back at once, or when told. */
function transport(callBackAtOnce: boolean) {
  const written: Buffer[] = [];
  const held: (() => void)[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk);
      if (callBackAtOnce) callback();
      else held.push(() => callback());
    },
  });
  return {
    stream,
    bytes: () => written.reduce((n, b) => n + b.length, 0),
    callBack: () => held.splice(0).forEach((cb) => cb()),
  };
}

function session(t: Duplex): SessionStream {
  const token = randomBytes(16);
  const s = new SessionStream(
    { token, window: WINDOW, peerWindow: WINDOW, heartbeat: 10_000, owner: { detached() {}, ended() {} } },
    {},
  );
  s.attach(t, { token, received: 0, messages: 0, window: WINDOW }, Buffer.alloc(0));
  return s;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('what the window allows leaves as it is written, although each piece is over the transport high-water mark', async () => {
  const t = transport(true);
  const s = session(t.stream);
  const before = t.bytes();
  // Written without yielding, as sends that resolve at once are: each 64 KiB write (past the
  // transport's 16 KiB mark) must go out now, not once a 'drain' a tick later lets the next one.
  for (let i = 0; i < 8; i++) s.write(Buffer.alloc(64 * KiB, i));
  assert.ok(t.bytes() - before >= 8 * 64 * KiB, `${t.bytes() - before} bytes transmitted synchronously`);
  s.destroy();
  await tick();
});

test('a transport that holds a high-water mark of bytes gets nothing more until it drains, then the rest', async () => {
  const t = transport(false);
  const s = session(t.stream);
  for (let i = 0; i < 8; i++) s.write(Buffer.alloc(64 * KiB, i));
  const first = t.bytes();
  assert.ok(first < 2 * 64 * KiB, `${first} bytes given to a transport that took none`);
  await tick();
  assert.is(t.bytes(), first, 'still nothing more while it holds them');
  t.callBack();
  await tick();
  assert.ok(t.bytes() > first, 'more once it drained');
  s.destroy();
  await tick();
});

test('with resume, every message arrives intact while the window holds queued writes (write slabs are refilled only once copied)', async () => {
  await intactWhileUnreadOver(Channel.listen('127.0.0.1', 0, { resume: true }), (port) =>
    Channel.connect('127.0.0.1', port, { resume: true, highWaterMark: 16 * 1024 }),
  );
});

test.run();
