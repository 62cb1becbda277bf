/**
 * Authentication and TLS: the `auth: { key }` handshake over every framing (both directions
 * HMAC-SHA256, ERR_AUTH on both sides for a wrong key, bounded messages, a handshake timeout, wire
 * compatibility with pythonConnection's authkey), and mutual TLS with certificates made at test time.
 */
import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  type ChannelOptions,
  type Framing,
  int32,
  lengthPrefixed,
  ltprotocol,
  msg,
  openflow,
  pythonConnection,
  tinyproto,
} from '../../channel.js';
import { echoServer, opensslMissing, openHandles, rejectsWith, sleep, tlsTest, unhandled } from '../helpers.js';

const framings: Framing[] = [
  msg,
  int32,
  ltprotocol(),
  openflow,
  lengthPrefixed({ lengthSize: 2, littleEndian: true, typeSize: 1 }),
  tinyproto,
  pythonConnection(),
  pythonConnection({ authkey: 'framing-level key' }),
];
const label = (f: Framing): string =>
  f.handshake && f.name === 'pythonConnection' ? 'pythonConnection({ authkey })' : f.name;

/** A server-side Channel over a raw accepted socket, so the test sees the server's own handshake result. */
async function serverChannel(
  options: ChannelOptions,
): Promise<{ port: number; accepted: Promise<Channel>; close(): Promise<void> }> {
  let resolve!: (ch: Channel) => void;
  const accepted = new Promise<Channel>((r) => (resolve = r));
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    const ch = new Channel(socket, { ...options, isServer: true });
    ch.ready.catch(() => {});
    resolve(ch);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

for (const framing of framings) {
  test(`auth over ${label(framing)}: both sides authenticate, then messages flow both ways`, async () => {
    const { listener, port } = await echoServer({ framing, auth: { key: 'the shared secret' } });
    const ch = await Channel.connect('127.0.0.1', port, { framing, auth: { key: Buffer.from('the shared secret') } });
    await ch.send('hello');
    assert.is(String(await ch.recv()), 'hello');
    await ch.send(Buffer.alloc(60_000, 3));
    assert.is((await ch.recv()).length, 60_000);
    await ch.close();
    await listener.close();
  });

  test(`auth over ${label(framing)}: a wrong key is refused on both sides with ERR_AUTH, before any message`, async () => {
    const s = await serverChannel({ framing, auth: { key: 'right' } });
    const client = Channel.connect('127.0.0.1', s.port, { framing, auth: { key: 'wrong' } });
    const server = await s.accepted;
    await rejectsWith(server.ready, 'ERR_AUTH');
    await rejectsWith(client, 'ERR_AUTH');
    await rejectsWith(server.recv(), 'ERR_AUTH');
    await server.closed;
    await s.close();
  });
}

test('auth over pythonConnection() is the authkey exchange byte for byte: it talks to pythonConnection({ authkey })', async () => {
  const { listener, port } = await echoServer({ framing: pythonConnection({ authkey: 'k' }) });
  const ch = await Channel.connect('127.0.0.1', port, { framing: pythonConnection(), auth: { key: 'k' } });
  await ch.send('same bytes');
  assert.is(String(await ch.recv()), 'same bytes');
  await ch.close();
  await listener.close();
});

test('auth: a legacy HMAC-MD5 answer is refused (SHA-256 only), a compare that fails is ERR_AUTH', async () => {
  const s = await serverChannel({ auth: { key: 'k' } });
  const socket = net.connect(s.port, '127.0.0.1');
  socket.on('error', () => {});
  const server = await s.accepted;
  const [challenge] = await new Promise<Buffer[]>((r) => socket.once('data', (d: Buffer) => r([d])));
  const message = challenge!.subarray(4 + '#CHALLENGE#'.length);
  const md5 = createHmac('md5', 'k').update(message).digest(); // right key, legacy digest
  const frame = Buffer.alloc(4 + md5.length);
  frame.writeUInt32BE(md5.length);
  md5.copy(frame, 4);
  socket.write(frame);
  await rejectsWith(server.ready, 'ERR_AUTH');
  socket.destroy();
  await s.close();
});

test('auth: handshake messages are bounded; an oversized length is refused before anything is read', async () => {
  // A "server" that answers the client's expectation of a challenge with a 4 GiB length.
  const rogue = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.write(Buffer.from('ffffffff', 'hex'));
  });
  await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', r));
  const { port } = rogue.address() as net.AddressInfo;
  const e = await rejectsWith(Channel.connect('127.0.0.1', port, { auth: { key: 'k' } }), 'ERR_AUTH');
  assert.match(e.message, /limit/);
  await new Promise((r) => rogue.close(r));
  // And a client that answers a server's challenge with a huge length.
  const s = await serverChannel({ auth: { key: 'k' } });
  const socket = net.connect(s.port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(Buffer.from('7fffffff', 'hex'));
  await rejectsWith((await s.accepted).ready, 'ERR_AUTH');
  socket.destroy();
  await s.close();
});

test('auth: a peer that never answers meets handshakeTimeout (ERR_TIMEOUT); a peer without auth never gets a message through', async () => {
  const s = await serverChannel({ auth: { key: 'k' }, handshakeTimeout: 200 });
  const silent = net.connect(s.port, '127.0.0.1');
  silent.on('error', () => {});
  await rejectsWith((await s.accepted).ready, 'ERR_TIMEOUT');
  silent.destroy();
  await s.close();
  // A client without auth against a server with it: the challenge is not a frame it accepts.
  const { listener, port } = await echoServer({ auth: { key: 'k' }, handshakeTimeout: 500 });
  const plain = await Channel.connect('127.0.0.1', port);
  void plain.send('let me in').catch(() => {});
  const r = await plain.recv().then(
    (m) => `message ${String(m)}`,
    (e: { code?: string }) => e.code,
  );
  assert.ok(
    r === 'ERR_PROTOCOL' || r === 'ERR_MESSAGE_TOO_LARGE' || r === 'ERR_UNEXPECTED_EOF' || r === 'ECONNRESET',
    String(r),
  );
  await listener.close();
  // A client with auth against a server without: it waits for a challenge that never comes.
  const plainServer = await echoServer({});
  await rejectsWith(
    Channel.connect('127.0.0.1', plainServer.port, { auth: { key: 'k' }, handshakeTimeout: 200 }),
    'ERR_TIMEOUT',
  );
  await plainServer.listener.close();
});

// ------------------------------------------------------------------ mutual: each side checks the other's proof

/** Handshake messages on a raw socket, as both `auth` and pythonConnection's authkey put them on the wire: `[u32 BE length][message]`. */
function rawMessages(socket: net.Socket): { send(m: Buffer | string): void; recv(): Promise<Buffer> } {
  let buffered = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let ended = false;
  socket.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    wake?.();
  });
  socket.on('close', () => {
    ended = true;
    wake?.();
  });
  return {
    send(m) {
      const body = Buffer.from(m);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(body.length);
      socket.write(Buffer.concat([header, body]));
    },
    async recv() {
      for (;;) {
        if (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
          const m = buffered.subarray(4, 4 + buffered.readUInt32BE(0));
          buffered = buffered.subarray(4 + m.length);
          return m;
        }
        if (ended) throw new Error(`connection closed; ${buffered.length} bytes left over`);
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

const randomChallenge = (): Buffer => Buffer.concat([Buffer.from('#CHALLENGE#{sha256}'), randomBytes(40)]);

/**
 * A server that does not hold the key but plays along: it challenges, welcomes whatever answer it
 * gets, and answers the client's challenge with a random `{sha256}` digest. Then, in case the
 * client was fooled, it sends a framed message (msg and pythonConnection framings alike).
 */
async function keylessServer(): Promise<{ port: number; transcript: Promise<string[]>; close(): Promise<void> }> {
  let resolve!: (t: string[]) => void;
  const transcript = new Promise<string[]>((r) => (resolve = r));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const io = rawMessages(socket);
    const seen: string[] = [];
    void (async () => {
      try {
        io.send(randomChallenge());
        seen.push(`answer of ${(await io.recv()).length} bytes`);
        io.send('#WELCOME#');
        const challenge = await io.recv();
        seen.push(challenge.subarray(0, '#CHALLENGE#{sha256}'.length).toString('latin1'));
        io.send(Buffer.concat([Buffer.from('{sha256}'), randomBytes(32)])); // a guess, not an HMAC
        seen.push(`verdict ${(await io.recv()).toString('latin1')}`);
      } catch (error) {
        seen.push(`ended: ${(error as Error).message}`);
      }
      if (!socket.destroyed) socket.write('\r\nMSG 5\r\nfake!\x00\x00\x00\x05fake!');
      resolve(seen);
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    transcript,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const keyOptions: [string, ChannelOptions][] = [
  ['auth: { key }', { auth: { key: 'the shared secret' } }],
  ['pythonConnection({ authkey })', { framing: pythonConnection({ authkey: 'the shared secret' }) }],
];

for (const [name, options] of keyOptions) {
  test(`${name}: the client checks the server's proof; a server without the key that welcomes any answer is refused (ERR_AUTH, not open)`, async () => {
    const fake = await keylessServer();
    try {
      // Channel.connect refuses it.
      const outcome = await Channel.connect('127.0.0.1', fake.port, { ...options, timeout: 5000 }).then(
        (ch) => {
          const what = `connected, isOpen ${ch.isOpen}`;
          ch.destroy();
          return what;
        },
        (e: { code?: string }) => e.code,
      );
      assert.is(outcome, 'ERR_AUTH');
      assert.equal(await fake.transcript, ['answer of 40 bytes', '#CHALLENGE#{sha256}', 'verdict #FAILURE#']);
    } finally {
      await fake.close();
    }
    // And the channel itself, watched over a raw socket: never open, no message comes through.
    const again = await keylessServer();
    const socket = net.connect(again.port, '127.0.0.1');
    const ch = new Channel(socket, options);
    try {
      await rejectsWith(ch.ready, 'ERR_AUTH');
      assert.is(ch.isOpen, false);
      assert.equal(await again.transcript, ['answer of 40 bytes', '#CHALLENGE#{sha256}', 'verdict #FAILURE#']);
      await rejectsWith(ch.recv({ timeout: 500 }), 'ERR_AUTH');
      await rejectsWith(ch.send('secret stuff'), 'ERR_CHANNEL_CLOSED');
    } finally {
      ch.destroy();
      await again.close();
    }
    await ch.closed;
  });

  test(`${name}: the server checks the client's proof; a client without the key answering with a guess is refused (ERR_AUTH)`, async () => {
    const s = await serverChannel(options);
    const socket = net.connect(s.port, '127.0.0.1');
    socket.on('error', () => {});
    try {
      const io = rawMessages(socket);
      const server = await s.accepted;
      const challenge = await io.recv();
      assert.is(challenge.subarray(0, '#CHALLENGE#{sha256}'.length).toString('latin1'), '#CHALLENGE#{sha256}');
      io.send(Buffer.concat([Buffer.from('{sha256}'), randomBytes(32)])); // a guess, not an HMAC
      await rejectsWith(server.ready, 'ERR_AUTH');
      assert.is(server.isOpen, false);
      assert.is(String(await io.recv()), '#FAILURE#');
      await server.closed;
    } finally {
      socket.destroy();
      await s.close();
    }
  });
}

test('auth: a bad key option is a TypeError', () => {
  assert.throws(() => Channel.pair({ auth: { key: '' } }), TypeError);
  assert.throws(() => Channel.pair({ auth: {} as never }), TypeError);
});

test('auth over Channel.pair (in memory)', async () => {
  const [a, b] = Channel.pair({ auth: { key: 'k' } });
  await Promise.all([a.ready, b.ready]);
  await a.send('x');
  assert.is(String(await b.recv()), 'x');
  await a.close();
  await b.closed;
});

// ------------------------------------------------------------------ mutual TLS

interface Pki {
  ca: Buffer;
  server: { key: Buffer; cert: Buffer };
  client: { key: Buffer; cert: Buffer };
  rogue: { key: Buffer; cert: Buffer };
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate signed by it, and a self-signed rogue client. */
function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'msgchannel-pki-'));
  const f = (name: string): string => join(dir, name);
  const run = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    run(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=msgchannel test CA',
    );
    writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
    for (const [name, cn] of [
      ['server', 'localhost'],
      ['client', 'client-1'],
    ] as const) {
      run('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
      run(
        'x509',
        '-req',
        '-in',
        f(`${name}.csr`),
        '-CA',
        f('ca.pem'),
        '-CAkey',
        f('ca.key'),
        '-CAcreateserial',
        '-out',
        f(`${name}.pem`),
        '-days',
        '1',
        '-extfile',
        f(`${name}.ext`),
      );
    }
    run(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      f('rogue.key'),
      '-out',
      f('rogue.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=client-1',
    );
    const pair = (name: string) => ({ key: readFileSync(f(`${name}.key`)), cert: readFileSync(f(`${name}.pem`)) });
    return { ca: readFileSync(f('ca.pem')), server: pair('server'), client: pair('client'), rogue: pair('rogue') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without openssl, which makes the certificates. */
const withOpenssl = tlsTest('auth: mutual TLS');
// Made only where openssl is: without it the tests below are skipped (or fail) before using it.
const pki = (opensslMissing() === undefined ? makePki() : undefined)!;

withOpenssl(
  'mutual TLS: a client certificate signed by the CA is accepted and visible as peerCertificate',
  async () => {
    const listener = Channel.listen('127.0.0.1', 0, {
      tls: { ...pki.server, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
    });
    const { port } = await listener.listening;
    const client = await Channel.connect('127.0.0.1', port, { tls: { ...pki.client, ca: pki.ca } });
    const server = (await listener.accept())!;
    assert.is(server.peerCertificate?.subject.CN, 'client-1');
    assert.is(client.peerCertificate?.subject.CN, 'localhost');
    await client.send('over mTLS');
    assert.is(String(await server.recv()), 'over mTLS');
    await client.close();
    await server.closed;
    await listener.close();
    const [plainA, plainB] = Channel.pair();
    assert.is(plainA.peerCertificate, undefined);
    plainA.destroy();
    plainB.destroy();
  },
);

withOpenssl(
  'mutual TLS: no client certificate, or one the CA did not sign, gets no channel and an error on the client',
  async () => {
    const listener = Channel.listen('127.0.0.1', 0, {
      tls: { ...pki.server, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
    });
    const { port } = await listener.listening;
    for (const creds of [{}, pki.rogue]) {
      // With TLS 1.3 the client's handshake completes before the server checks its certificate:
      // the refusal arrives as the connection's first read.
      const outcome = await Channel.connect('127.0.0.1', port, { tls: { ...creds, ca: pki.ca }, timeout: 3000 }).then(
        async (ch) =>
          ch.recv({ timeout: 3000 }).then(
            () => 'message',
            (e: { code?: string }) => e.code ?? 'error',
          ),
        (e: { code?: string }) => e.code ?? 'error',
      );
      assert.ok(outcome !== 'message' && outcome !== 'ERR_TIMEOUT', `refused: ${outcome}`);
    }
    await sleep(20);
    assert.is(listener.pending, 0, 'no channel was handed out');
    await listener.close();
  },
);

withOpenssl('auth and TLS together: authenticated and encrypted', async () => {
  const { listener, port } = await echoServer({ tls: pki.server, auth: { key: 'k' } });
  const ch = await Channel.connect('127.0.0.1', port, { tls: { ca: pki.ca }, auth: { key: 'k' } });
  await ch.send('both');
  assert.is(String(await ch.recv()), 'both');
  await ch.close();
  await listener.close();
});

test('auth suite leaves no unhandled rejection, socket or timer behind', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
