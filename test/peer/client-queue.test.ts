/**
 * The Client's offline queue (src/peer/client.ts, `#requeueable` to `send()`), fast: a Client
 * against servers in this process on 127.0.0.1 port 0 (a Server, or a raw net.Server speaking
 * msg or tinyproto by hand where the test needs to decide when the connection breaks), with
 * reconnect delays of a few ms. What docs/server-client.md ("Sends while disconnected") promises:
 * sends made while disconnected are kept and go out in order after the reconnect, before later
 * ones; `queueLimit` and `offline: 'reject'`; a send taken by a connection that is not established
 * yet resolves only once it is, and goes out again if the connection ends first; a send the lost
 * connection never wrote goes out again; every other failure, and every send once the client is
 * closed or stopped, rejects with MessageNotSentError (ERR_NOT_SENT: the message, its seq, why).
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Client,
  MessageNotSentError,
  Protocol,
  Server,
  ltprotocol,
  msg,
  tinyproto,
  type ClientOptions,
  type Codec,
  type Connection,
  type MessageMap,
  type ServerOptions,
} from '../../channel.js';
import { openHandles, rejectsWith, resultWithin, sleep, unhandled } from '../helpers.js';

const MiB = 1024 * 1024;

/** Options of a client that retries at once (5 ms, no growth, no jitter) and keeps its errors. */
function quick<M extends MessageMap = never>(errors: Error[] = [], more: ClientOptions<M> = {}): ClientOptions<M> {
  return { initialDelay: 5, factor: 1, jitter: 0, onError: (e) => void errors.push(e), ...more };
}

/** Wait until `cond()` holds; fail (never hang) after `ms`. */
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** `p`'s value; fail (never hang) if it has not settled within `ms`. */
async function within<T>(p: Promise<T>, what: string, ms = 3000): Promise<T> {
  const r = await resultWithin(p, ms);
  if (r === 'pending') throw new Error(`${what}: still pending after ${ms} ms`);
  return r;
}

type Coded = Error & { code?: string };
type NotSent = MessageNotSentError & { cause?: Coded & { cause?: Coded } };

/** The MessageNotSentError `p` rejects with (within 3 s). */
async function notSent(p: Promise<unknown>, what: string): Promise<NotSent> {
  const e = await within(rejectsWith(p, 'ERR_NOT_SENT'), what);
  assert.instance(e, MessageNotSentError, what);
  return e as NotSent;
}

/**
 * A Server on 127.0.0.1:0 that records every message (as text) in `got`, and with `greet`
 * sends 'hi' to each new connection (so the client's connection is established at once).
 */
async function recordingServer(
  greet: boolean,
  options: ServerOptions = {},
  onMessage?: (conn: Connection, index: number) => void,
) {
  const got: string[] = [];
  const conns: Connection[] = [];
  const server = new Server({
    ...options,
    onConnection: (conn) => {
      conns.push(conn);
      if (greet) void conn.send('hi').catch(() => {});
    },
    onMessage: (conn, m) => {
      got.push(String(m));
      onMessage?.(conn, conns.indexOf(conn));
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, port, got, conns };
}

/**
 * A tinyproto peer by hand on 127.0.0.1:0: each connection gets the init byte; connection `i`
 * either answers every header FF and records the body (`answer(i)`), or resets the connection as
 * soon as the first header arrives (the client's send is then waiting for its answer: not written).
 */
async function tinyprotoPeer(answer: (index: number) => boolean) {
  const got: string[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    const index = sockets.length;
    sockets.push(s);
    s.on('error', () => {});
    s.write(Buffer.from([0xff]));
    let buf = Buffer.alloc(0);
    let inited = false;
    let want = -1;
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        if (!inited) {
          if (buf.length < 1) return;
          buf = buf.subarray(1); // the client's init byte
          inited = true;
        } else if (want < 0) {
          if (buf.length < 4) return;
          if (!answer(index)) {
            s.resetAndDestroy();
            return;
          }
          want = buf.readUInt32BE(0);
          buf = buf.subarray(4);
          s.write(Buffer.from([0xff]));
        } else {
          if (buf.length < want) return;
          got.push(String(buf.subarray(0, want)));
          buf = buf.subarray(want);
          want = -1;
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return { port, got, sockets, close };
}

test('sends made before connect() wait in the queue and go out first, in order; later sends follow', async () => {
  const { server, port, got } = await recordingServer(true);
  const client = new Client(quick());
  const early = ['a', 'b', 'c'].map((s) => client.send(s));
  assert.is(client.queued, 3);
  await client.connect('127.0.0.1', port);
  assert.is(client.queued, 0, 'the queue is handed to the connection at once');
  const late = client.send('d');
  await within(Promise.all([...early, late]), 'the sends');
  await until(() => got.length === 4, 'four messages');
  assert.equal(got, ['a', 'b', 'c', 'd']);
  await client.close();
  await server.close();
});

test('a send taken by a connection not established yet resolves only once the server speaks; it is written meanwhile', async () => {
  const { server, port, got, conns } = await recordingServer(false);
  const client = new Client(quick());
  await client.connect('127.0.0.1', port);
  const a = client.send('a');
  const b = client.send('b');
  assert.is(await resultWithin(a, 60), 'pending', 'not resolved before the connection is established');
  await until(() => got.length === 2, 'the two messages');
  assert.equal(got, ['a', 'b']);
  assert.is(await resultWithin(b, 0), 'pending');
  await conns[0]!.send('hello'); // the server speaks: the connection is established
  await within(Promise.all([a, b]), 'the held sends');
  await client.send('c'); // established: straight through
  await until(() => got.length === 3, 'the third message');
  assert.equal(got, ['a', 'b', 'c']);
  await client.close();
  await server.close();
});

test('a connection that ends before it is established: its sends go out again after the reconnect, before those queued since', async () => {
  // The first connection reads 'A' and 'B' and closes (cleanly, before saying anything); the
  // second greets (established at once) and keeps them.
  const { server, port, got } = await recordingServer(false, {}, (conn, index) => {
    if (index === 0 && got.length === 2) void conn.close();
  });
  let connections = 0;
  const client = new Client(quick([], { onConnect: () => void connections++ }));
  await client.connect('127.0.0.1', port);
  const channel = client.channel!;
  let c: Promise<void> | undefined;
  // Runs before the client sees the end of the connection: 'C' is queued behind nothing yet.
  void channel.closed.then(() => (c = client.send('C')));
  const a = client.send('A');
  const b = client.send('B');
  await until(() => connections === 2, 'the reconnect');
  assert.ok(c !== undefined);
  // The second connection is not established until the server speaks (it greets nobody here).
  server.connections.forEach((conn) => void conn.send('hi').catch(() => {}));
  await within(Promise.all([a, b, c!]), 'the sends');
  await until(() => got.length === 5, 'five messages');
  assert.equal(got, ['A', 'B', 'A', 'B', 'C'], 'the first connection got A and B, the second all three in order');
  await client.close();
  await server.close();
});

test("offline: 'reject': a send taken by a connection that ends before it is established rejects instead of waiting", async () => {
  const { server, port, got } = await recordingServer(false, {}, (conn) => void conn.close());
  const client = new Client(quick([], { offline: 'reject' }));
  await client.connect('127.0.0.1', port);
  const e = await notSent(client.send('A'), 'the held send');
  assert.is(e.data, 'A');
  assert.is(e.seq, 1);
  assert.match(e.message, /^message #1 not sent: the client is disconnected \(offline: 'reject'\)$/);
  assert.equal(got.slice(0, 1), ['A']);
  await client.close();
  await server.close();
});

test('tinyproto: sends the lost connection never wrote (waiting for their answer) go out again after the reconnect, once each, in order', async () => {
  const peer = await tinyprotoPeer((i) => i > 0);
  let connections = 0;
  const client = new Client(quick([], { framing: tinyproto, onConnect: () => void connections++ }));
  const sends = [client.send('A'), client.send('B')]; // queued, then handed over at connect
  await client.connect('127.0.0.1', peer.port);
  sends.push(client.send('C'), client.send('D')); // straight to the established connection
  await within(Promise.all(sends), 'the sends');
  assert.is(connections, 2);
  await until(() => peer.got.length === 4, 'four messages');
  // A waited for its answer when the connection was lost: it is rejected (and queued again) before
  // the sends behind it, so the order holds ("queued again, in order"), as for msg below.
  assert.equal(peer.got, ['A', 'B', 'C', 'D']);
  await client.close();
  await peer.close();
});

test('msg over TCP: sends still queued in the channel when the connection is reset go out again, in order, after the reconnect', async () => {
  // The first connection greets (established) and never reads, so most of 32 MiB waits in the
  // client's channel; then it is reset. The second connection reads.
  const got: string[] = [];
  const sockets: net.Socket[] = [];
  const raw = net.createServer({ pauseOnConnect: true }, (s) => {
    const index = sockets.length;
    sockets.push(s);
    s.on('error', () => {});
    s.write('\r\nMSG 2\r\nhi');
    if (index === 0) return;
    const decoder = msg.createDecoder({ maxMessageSize: 2 * MiB });
    s.on('data', (c: Buffer) =>
      decoder.push(c, (body) => void got.push(`${String.fromCharCode(body[0]!)}${body.length}`)),
    );
    s.resume();
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  let greetings = 0;
  const client = new Client(quick([], { maxQueuedBytes: 64 * MiB, onMessage: () => void greetings++ }));
  const names = 'ABCDEFGHIJKLMNOPabcdefghijklmnop'; // 16 queued before connect, 16 sent once established
  const big = (c: string): Buffer => Buffer.alloc(MiB, c);
  const sends = [...names.slice(0, 16)].map((c) => client.send(big(c)));
  await client.connect('127.0.0.1', (raw.address() as net.AddressInfo).port);
  await until(() => greetings === 1, 'the greeting');
  for (const c of names.slice(16)) sends.push(client.send(big(c)));
  await sleep(20);
  sockets[0]!.resetAndDestroy();
  await within(Promise.all(sends), 'the sends');
  await until(() => greetings === 2 && got.length > 0 && got[got.length - 1] === `p${MiB}`, 'the last message');
  // What the reset connection had taken is lost (the kernel had it); the rest came again, in order.
  const expected = [...names].map((c) => `${c}${MiB}`);
  assert.ok(got.length >= 16, `at least the 16 sent last came again: ${got.length}`);
  assert.equal(got, expected.slice(expected.length - got.length));
  await client.close();
  for (const s of sockets) s.destroy();
  await new Promise((r) => raw.close(r));
});

test('reconnect: false: a send the lost connection never wrote rejects (not queued again); the stopped client rejects sends', async () => {
  const peer = await tinyprotoPeer(() => false);
  const client = new Client(quick([], { framing: tinyproto, reconnect: false }));
  const queued = client.send('A'); // handed over at connect
  await client.connect('127.0.0.1', peer.port);
  const direct = client.send('B');
  for (const [p, seq, data] of [
    [queued, 1, 'A'],
    [direct, 2, 'B'],
  ] as const) {
    const e = await notSent(p, data);
    assert.is(e.seq, seq);
    assert.is(e.data, data);
    assert.is(e.cause?.code, 'ERR_CHANNEL_CLOSED', `the channel's error: ${e.cause?.code}`);
    assert.match(e.message, new RegExp(`^message #${seq} not sent: ${e.cause!.message}$`));
  }
  const stopped = await within(client.stopped, 'stopped');
  assert.is((stopped as { code?: string } | undefined)?.code, 'ECONNRESET');
  assert.is(client.state, 'closed');
  const late = await notSent(client.send('C'), 'a send after the stop');
  assert.match(late.message, /^message #3 not sent: the client is closed$/);
  assert.is(late.data, 'C');
  await client.close();
  await peer.close();
});

test('close() cuts off a send waiting for its answer: it rejects with why (not queued again)', async () => {
  // A tinyproto peer that sends its init byte and never answers a header.
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    s.write(Buffer.from([0xff]));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const client = new Client(quick([], { framing: tinyproto }));
  await client.connect('127.0.0.1', (silent.address() as net.AddressInfo).port);
  const p = client.send('A');
  assert.is(await resultWithin(p, 20), 'pending');
  await within(client.close({ timeout: 50 }), 'close');
  const e = await notSent(p, 'the cut-off send');
  assert.is(e.seq, 1);
  assert.is(e.cause?.code, 'ERR_CHANNEL_CLOSED');
  assert.is(e.cause?.cause?.code, 'ERR_TIMEOUT', 'the close timed out');
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
});

test('send() during and after close() rejects at once: the client is closed', async () => {
  const never = new Client(quick());
  await never.close();
  const e0 = await notSent(never.send('x'), 'after close, never connected');
  assert.match(e0.message, /^message #1 not sent: the client is closed$/);
  assert.is(e0.data, 'x');
  assert.is(e0.seq, 1);

  const { server, port, got } = await recordingServer(true);
  const client = new Client(quick());
  await client.connect('127.0.0.1', port);
  await client.send('before');
  const closing = client.close();
  const during = client.send('during');
  assert.is(client.state, 'connected', 'still closing');
  const e1 = await notSent(during, 'during close');
  assert.match(e1.message, /^message #2 not sent: the client is closed$/);
  await closing;
  assert.is(client.state, 'closed');
  const e2 = await notSent(client.send('after'), 'after close');
  assert.is(e2.seq, 3);
  await until(() => got.length === 1, 'the first message');
  await sleep(10);
  assert.equal(got, ['before']);
  await server.close();
});

test("offline: 'reject' rejects sends while disconnected, before connect() and after a loss; connected, they go out", async () => {
  const { server, port, got, conns } = await recordingServer(true);
  let lost = 0;
  const client = new Client(quick([], { offline: 'reject', initialDelay: 60_000, onDisconnect: () => void lost++ }));
  const e0 = await notSent(client.send('early'), 'before connect');
  assert.match(e0.message, /^message #1 not sent: the client is disconnected \(offline: 'reject'\)$/);
  assert.is(e0.data, 'early');
  assert.is(e0.seq, 1);
  assert.is(client.queued, 0);
  await client.connect('127.0.0.1', port);
  await within(client.send('now'), 'a connected send');
  await until(() => got.length === 1, 'the message');
  assert.equal(got, ['now']);
  conns[0]!.destroy();
  await until(() => lost === 1, 'the loss');
  assert.is(client.state, 'waiting');
  const e1 = await notSent(client.send('later'), 'while waiting');
  assert.is(e1.seq, 3);
  assert.match(e1.message, /offline: 'reject'/);
  await client.close();
  await server.close();
});

test('queueLimit: the queue holds that many; the next send rejects naming the limit; the queued ones go out', async () => {
  const { server, port, got } = await recordingServer(true);
  const client = new Client(quick([], { queueLimit: 2 }));
  const a = client.send('a');
  const b = client.send('b');
  const e = await notSent(client.send('c'), 'past the limit');
  assert.is(e.data, 'c');
  assert.is(e.seq, 3);
  assert.match(e.message, /^message #3 not sent: the client is disconnected and its queue is full \(queueLimit 2\)$/);
  assert.is(client.queued, 2);
  await client.connect('127.0.0.1', port);
  await within(Promise.all([a, b]), 'the queued sends');
  await until(() => got.length === 2, 'two messages');
  assert.equal(got, ['a', 'b']);
  await client.close();
  await server.close();

  const none = new Client(quick([], { queueLimit: 0 }));
  const e0 = await notSent(none.send('x'), 'queueLimit 0');
  assert.match(e0.message, /queueLimit 0/);
  assert.is(none.queued, 0);
  await none.close();
});

test('a send the connection refuses rejects with MessageNotSentError, cause why; the connection stays and later sends go out', async () => {
  const { server, port, got } = await recordingServer(true);
  const errors: Error[] = [];
  const client = new Client(quick(errors, { maxMessageSize: 10 }));
  let greeted!: () => void;
  const greeting = new Promise<void>((r) => (greeted = r));
  client.onMessage = () => greeted();
  const queued = client.send('x'.repeat(11)); // refused when the queue is handed over
  await client.connect('127.0.0.1', port);
  await within(greeting, 'the greeting');
  const direct = client.send('y'.repeat(12)); // refused on the established connection
  for (const [p, seq, size] of [
    [queued, 1, 11],
    [direct, 2, 12],
  ] as const) {
    const e = await notSent(p, `${size} bytes`);
    assert.is(e.seq, seq);
    assert.is(e.cause?.code, 'ERR_MESSAGE_TOO_LARGE');
    assert.match(e.message, new RegExp(`^message #${seq} not sent: cannot send a ${size}-byte message`));
  }
  await within(client.send('ok'), 'a send after the refusals');
  await until(() => got.length === 1, 'the message');
  assert.equal(got, ['ok']);
  assert.is(client.connected, true);
  assert.equal(errors, []);
  await client.close();
  await server.close();
});

test('tinyproto: a message the server refuses (its maxMessageSize) rejects with cause ERR_MESSAGE_REFUSED, not sent again', async () => {
  const { server, port, got } = await recordingServer(false, { framing: tinyproto, maxMessageSize: 10 });
  let connects = 0;
  const client = new Client(quick([], { framing: tinyproto, onConnect: () => void connects++ }));
  await client.connect('127.0.0.1', port);
  const e = await notSent(client.send('z'.repeat(50)), 'the refused send');
  assert.is(e.cause?.code, 'ERR_MESSAGE_REFUSED');
  assert.match(e.message, /^message #1 not sent: peer refused a 50-byte message/);
  await within(client.send('fits'), 'a send that fits');
  await until(() => got.length === 1, 'the message');
  assert.equal(got, ['fits']);
  assert.is(connects, 1);
  await client.close();
  await server.close();
});

test('typed: the error names the message as { name, data }; a codec that throws rejects the send with what it threw', async () => {
  const refusing: Codec<string> = {
    pack: () => {
      throw 'no packing today'; // not even an Error
    },
    unpack: (b: Uint8Array) => String(b),
  };
  const mine = new MessageNotSentError('mine', 'm', 99);
  const passing: Codec<string> = {
    pack: () => {
      throw mine;
    },
    unpack: (b: Uint8Array) => String(b),
  };
  const proto = new Protocol()
    .define('say', 1, { pack: (s: string) => Buffer.from(s), unpack: (b: Uint8Array) => String(b) })
    .define('bad', 2, refusing)
    .define('odd', 3, passing);
  const offline = new Client<any>(quick<any>([], { protocol: proto, framing: ltprotocol('I'), offline: 'reject' }));
  const e0 = await notSent(offline.send('say', 'hi'), 'offline');
  assert.equal(e0.data, { name: 'say', data: 'hi' });
  await offline.close();

  const { server, port, got } = await recordingServer(true, { framing: ltprotocol('I') });
  const client = new Client<any>(quick<any>([], { protocol: proto, framing: ltprotocol('I') }));
  await client.connect('127.0.0.1', port);
  const e1 = await notSent(client.send('bad', 'x'), 'a codec that throws a string');
  assert.is(e1.message, 'message #1 not sent: no packing today');
  assert.equal(e1.data, { name: 'bad', data: 'x' });
  assert.is(e1.cause as unknown, 'no packing today');
  const e2 = await rejectsWith(client.send('odd', 'y'), 'ERR_NOT_SENT');
  assert.is(e2, mine, 'a MessageNotSentError is passed on as it is');
  await within(client.send('say', 'fine'), 'a good send');
  await until(() => got.length === 1, 'the message');
  assert.equal(got, ['fine']);
  await client.close();
  await server.close();
});

test('client queue tests leave no unhandled rejection, socket or timer behind', async () => {
  await sleep(20);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
