/**
 * Un-awaited typed sends cannot crash the process: every way TypedChannel.send and
 * PacketmqSession.send can fail (closed, the peer quit, a codec error, too large, an unknown
 * name, a failed handshake) rejects for whoever awaits, and is marked handled for whoever does
 * not. The un-awaited case runs in a child process with Node's own unhandled-rejection handling.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  type Connection,
  PacketmqSession,
  Protocol,
  Server,
  TypedChannel,
  ltprotocol,
  packetmqChannelOptions,
  packetmqProtocol,
  raw,
  uint32,
} from '../../channel.js';
import { openHandles, rejectsWith, sleep, unhandled } from '../helpers.js';
import { childKind, spawnChild, tell } from './child.js';

const LT = new Protocol({ maxId: 255 }).define('num', 1, uint32).define('blob', 2, raw);
const PM = packetmqProtocol().define('pm:num', 16, uint32).define('pm:blob', 17, raw);

/** A typed pair over ltprotocol with a 1 KiB message limit. */
function typedPair() {
  const [a, b] = Channel.pair({ framing: ltprotocol(), maxMessageSize: 1024 });
  return { t: new TypedChannel(LT, a), peer: b };
}

/** Two packetmq sessions in memory, handshaken. */
async function sessions() {
  const [a, b] = Channel.pair(packetmqChannelOptions());
  const s = new PacketmqSession(PM, a, { adaptive: true });
  const peer = new PacketmqSession(PM, b, { adaptive: false });
  await Promise.all([s.ready, peer.ready]);
  return { s, peer };
}

/** Two packetmq sessions whose handshake fails (both adaptive). */
function failedSessions() {
  const [a, b] = Channel.pair(packetmqChannelOptions());
  return { s: new PacketmqSession(PM, a, { adaptive: true }), peer: new PacketmqSession(PM, b, { adaptive: true }) };
}

// ------------------------------------------------------------------ child process

if (childKind === 'unawaited-sends') {
  // Node's default for an unhandled rejection is to crash; the test helpers' collector (imported
  // above) would hide that here, so count them ourselves and fail the exit code.
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`unhandledRejection: ${(reason as { code?: string })?.code ?? ''} ${String(reason)}\n`);
    process.exitCode = 1;
  });

  // TypedChannel: a codec error, an unknown name, too large, then closed.
  const { t, peer } = typedPair();
  void t.send('num', -1);
  void t.send('nope' as 'num', 1);
  void t.send('blob', Buffer.alloc(4096));
  await t.close();
  void t.send('num', 1);
  await peer.closed;

  // PacketmqSession: too large, a codec error, then the peer quits, then after our own close.
  const { s, peer: p } = await sessions();
  void s.send('pm:blob', Buffer.alloc(200_000));
  void s.send('pm:num', -1);
  void s.send('nope' as 'pm:num', 1);
  await p.softquit('reason.bye');
  await s.closed;
  void s.send('pm:num', 1);
  void s.softquit('');

  // A session whose handshake fails: a send made before it does.
  const failed = failedSessions();
  void failed.s.send('pm:num', 1);
  await failed.s.ready.catch(() => {});
  await failed.peer.ready.catch(() => {});
  void failed.s.send('pm:num', 2);

  // The reported case: a packetmq Server's conn.send(name, data) after the peer left.
  let conn: Connection<{ 'pm:num': number; 'pm:blob': Uint8Array }> | undefined;
  const server = new Server({ protocol: PM, packetmq: true, onConnection: (c) => void (conn = c), onError: () => {} });
  const { port } = await server.listen(0, '127.0.0.1');
  const client = new PacketmqSession(PM, await Channel.connect('127.0.0.1', port, packetmqChannelOptions()), {
    adaptive: true,
  });
  await client.ready;
  while (conn === undefined) await sleep(5);
  client.destroy();
  await conn.closed;
  void conn.send('pm:num', 1);
  await server.close();

  await sleep(100); // unhandled rejections are reported after the microtask queue drains
  tell({ done: true });
}

// ------------------------------------------------------------------ tests

if (childKind === undefined) {
  test('un-awaited typed and packetmq sends that fail every way: no unhandled rejection, the process exits 0', async () => {
    const child = spawnChild(import.meta.url, 'unawaited-sends');
    const answer = await child.next().catch((e: Error) => e);
    const code = await child.exited;
    assert.not.match(child.stderr, /unhandledRejection/, child.stderr);
    assert.equal(answer, { done: true });
    assert.is(code, 0, child.stderr);
  });

  test('awaited TypedChannel sends still reject with their codes', async () => {
    const { t, peer } = typedPair();
    assert.instance(await t.send('num', -1).catch((e: unknown) => e), RangeError);
    await rejectsWith(t.send('nope' as 'num', 1), 'ERR_UNKNOWN_TYPE');
    await rejectsWith(t.send('blob', Buffer.alloc(4096)), 'ERR_MESSAGE_TOO_LARGE');
    await t.close();
    await rejectsWith(t.send('num', 1), 'ERR_CHANNEL_CLOSED');
    await peer.closed;
  });

  test('awaited PacketmqSession sends still reject with their codes', async () => {
    const { s, peer } = await sessions();
    await rejectsWith(s.send('pm:blob', Buffer.alloc(200_000)), 'ERR_MESSAGE_TOO_LARGE');
    assert.instance(await s.send('pm:num', -1).catch((e: unknown) => e), RangeError);
    await rejectsWith(s.send('nope' as 'pm:num', 1), 'ERR_UNKNOWN_TYPE');
    await peer.softquit('reason.bye');
    await s.closed;
    await rejectsWith(s.send('pm:num', 1), 'ERR_CHANNEL_CLOSED'); // before it read the softquit
    await rejectsWith(s.recv(), 'ERR_CHANNEL_CLOSED');
    const closed = await rejectsWith(s.send('pm:num', 1), 'ERR_CHANNEL_CLOSED'); // after
    assert.is((closed as { reason?: string }).reason, 'reason.bye');
    assert.instance(await s.softquit('').catch((e: unknown) => e), TypeError);

    const failed = failedSessions();
    const early = failed.s.send('pm:num', 1);
    await rejectsWith(early, 'ERR_HANDSHAKE');
    await failed.peer.ready.catch(() => {});
    await rejectsWith(failed.s.send('pm:num', 2), 'ERR_HANDSHAKE');
    await Promise.all([failed.s.closed, failed.peer.closed]);
  });

  test('typed-sends suite leaves no unhandled rejection, socket, timer or child process behind', async () => {
    await sleep(50);
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
