/**
 * `await send(buf)` hands `buf` back: once the promise resolves, the caller may modify or release
 * it and the peer still receives what it held at send time. Checked with the two attacks of issue
 * 22 (item 4), over TCP, TLS, Channel.pair and tinyproto: a sender that reuses one buffer after
 * each awaited send while the receiver is slow, and an echo server that releases each message
 * (ch.release) once its echo's send resolved, so the next body is read into the same memory.
 * README "Channel API", send().
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, Client, Server, tinyproto, type ChannelOptions } from '../../channel.js';
import { makeCertificate, rejectsWith, sleep, tlsTest } from '../helpers.js';
import { ManualStream, state, within } from './transport.js';

type Kind = 'tcp' | 'tls' | 'pair' | 'tinyproto';

let certificate: { key: Buffer; cert: Buffer } | undefined;

/** Two connected channels (`a` connected to `b`) over `kind`, and how to end both. */
async function connected(kind: Kind, options: ChannelOptions = {}): Promise<[Channel, Channel, () => Promise<void>]> {
  if (kind === 'pair') {
    const [a, b] = Channel.pair(options);
    return [a, b, async () => (a.destroy(), b.destroy())];
  }
  const framing = kind === 'tinyproto' ? { framing: tinyproto } : {};
  let tls = {};
  let clientTls = {};
  if (kind === 'tls') {
    certificate ??= makeCertificate();
    tls = { tls: certificate };
    clientTls = { tls: { ca: certificate.cert } };
  }
  const listener = Channel.listen('127.0.0.1', 0, { ...options, ...framing, ...tls });
  const { port } = await listener.listening;
  const [a, b] = await Promise.all([
    Channel.connect('127.0.0.1', port, { ...options, ...framing, ...clientTls }),
    listener.accept(),
  ]);
  await Promise.all([a.ready, b!.ready]);
  return [
    a,
    b!,
    async () => {
      a.destroy();
      b!.destroy();
      await listener.close();
    },
  ];
}

const SIZE = 256 * 1024;
const COUNT = 40;

/**
 * The sender fills one buffer with message i's pattern, awaits send(), and fills it again; the
 * receiver starts reading only after a while. Returns how many messages arrived corrupted.
 * (tinyproto waits for the peer's answer to each header, so only a body larger than the kernel's
 * socket buffers is still being written when its send resolves: it sends fewer, larger messages.)
 */
async function reuseOneBuffer(
  a: Channel,
  b: Channel,
  send: (buf: Buffer) => Promise<void>,
  size = SIZE,
  count = COUNT,
): Promise<number> {
  const received = (async () => {
    await sleep(100);
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) out.push(await b.recv());
    return out;
  })();
  const buf = Buffer.alloc(size);
  for (let i = 0; i < count; i++) {
    buf.fill(i + 1);
    await send(buf);
  }
  const messages = await received;
  return messages.filter((m, i) => !m.equals(Buffer.alloc(size, i + 1))).length;
}

/**
 * `b` echoes each message with `await send(m); release(m)`; `a` sends COUNT distinct messages and
 * reads the echoes after a while. Returns how many echoes differ from what was sent.
 */
async function echoReleasing(a: Channel, b: Channel, size: number, count: number): Promise<number> {
  const echo = (async () => {
    for (let i = 0; i < count; i++) {
      const m = await b.recv();
      await b.send(m);
      b.release(m);
    }
  })();
  const echoes = (async () => {
    await sleep(100);
    let bad = 0;
    for (let i = 0; i < count; i++) if (!(await a.recv()).equals(Buffer.alloc(size, i + 1))) bad++;
    return bad;
  })();
  for (let i = 0; i < count; i++) await a.send(Buffer.alloc(size, i + 1));
  await echo;
  return echoes;
}

for (const kind of ['tcp', 'tls', 'pair', 'tinyproto'] as const) {
  const run = kind === 'tls' ? tlsTest('send ownership') : test;
  run(`${kind}: a buffer reused after each awaited send() arrives intact every time`, async () => {
    const [a, b, end] = await connected(kind);
    try {
      const corrupted =
        kind === 'tinyproto'
          ? await reuseOneBuffer(a, b, (buf) => a.send(buf), 8 * 1024 * 1024, 6)
          : await reuseOneBuffer(a, b, (buf) => a.send(buf));
      assert.is(corrupted, 0, 'messages corrupted');
    } finally {
      await end();
    }
  });
}

for (const kind of ['tcp', 'tls', 'pair'] as const) {
  const run = kind === 'tls' ? tlsTest('send ownership') : test;
  run(`${kind}: an echo server releasing each message once its echo's send() resolved echoes every byte`, async () => {
    const [a, b, end] = await connected(kind);
    try {
      // Over TLS, smaller messages queue behind each other in the socket (bigger ones are encrypted at once).
      const echoed =
        kind === 'tls' ? await echoReleasing(a, b, 128 * 1024, 40) : await echoReleasing(a, b, 1 << 20, 24);
      assert.is(echoed, 0, 'echoes corrupted');
    } finally {
      await end();
    }
  });
}

test('sendJoined (RequestChannel envelopes): a payload reused after the awaited send arrives intact', async () => {
  const [a, b, end] = await connected('tcp');
  const head = Buffer.from([7, 7, 7]);
  try {
    const received = (async () => {
      await sleep(100);
      let bad = 0;
      for (let i = 0; i < COUNT; i++) {
        const m = await b.recv();
        if (!m.subarray(0, 3).equals(head) || !m.subarray(3).equals(Buffer.alloc(SIZE, i + 1))) bad++;
      }
      return bad;
    })();
    const buf = Buffer.alloc(SIZE);
    for (let i = 0; i < COUNT; i++) {
      buf.fill(i + 1);
      await a.sendJoined(head, head.length, buf);
    }
    assert.is(await received, 0, 'messages corrupted');
  } finally {
    await end();
  }
});

test('Server and Client: an onMessage echo releasing each message once conn.send() resolved echoes every byte', async () => {
  const size = 1 << 20;
  const count = 24;
  const server = new Server({
    onMessage: async (conn, msg) => {
      await conn.send(msg);
      conn.channel.release(msg);
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  let bad = 0;
  let got = 0;
  let allIn!: () => void;
  const echoed = new Promise<void>((resolve) => (allIn = resolve));
  const client = new Client({
    maxMessageSize: 2 * size,
    onMessage: async (msg) => {
      await sleep(5); // a slow reader: the server's echoes wait in its socket
      if (!msg.equals(Buffer.alloc(size, got + 1))) bad++;
      if (++got === count) allIn();
    },
  });
  try {
    await client.connect('127.0.0.1', port);
    for (let i = 0; i < count; i++) await client.send(Buffer.alloc(size, i + 1));
    await within(echoed, 20_000);
    assert.is(bad, 0, 'echoes corrupted');
  } finally {
    await client.close();
    await server.close();
  }
});

test('small bodies (copied into the write slab) still resolve at once with the one shared promise', async () => {
  const [a, b, end] = await connected('pair');
  try {
    const p1 = a.send(Buffer.alloc(100));
    const p2 = a.send('x');
    assert.is(p1, p2, 'the uncontended small send allocates no promise of its own');
    await p1;
    assert.equal(await b.recv(), Buffer.alloc(100));
  } finally {
    await end();
  }
});

test('a large body: its send stays pending while the transport holds the write, resolves once it calls back', async () => {
  const s = new ManualStream({ hold: true });
  const ch = new Channel(s, { sendHighWaterMark: 16 * 1024 });
  const first = ch.send(Buffer.alloc(100 * 1024, 1));
  const second = ch.send(Buffer.alloc(100 * 1024, 2)); // past the send high-water mark: through the queue
  const small = ch.send('after');
  assert.is(await state(first), 'pending', 'the transport still holds the body');
  s.release(); // the first leaves, 'drain': the queue writes the second, which the transport holds
  await within(first);
  assert.is(await state(second), 'pending', 'written by the queue, still held');
  s.hold = false;
  s.release();
  await within(Promise.all([second, small]));
  ch.destroy();
});

test('a large body whose write never calls back: its send rejects when the channel is destroyed, never hangs', async () => {
  const s = new ManualStream({ hold: true });
  const ch = new Channel(s);
  const sent = ch.send(Buffer.alloc(100 * 1024, 1));
  assert.is(await state(sent), 'pending');
  ch.destroy();
  await within(rejectsWith(sent, 'ERR_CHANNEL_CLOSED'));
});

test.run();
