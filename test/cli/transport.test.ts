/**
 * The transport options every command shares (src/cli/transport.ts): targets (host:port, a Unix
 * socket path, a ws:// URL), TLS and auth, parsed once; `bench` over each against an in-process
 * msgchannel Server, and `listen`/`send` over them end to end. Then the outside servers bench takes
 * as targets: the seed gist's Python server and a Python tinyproto echo server.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Server, tinyproto, type ServerOptions } from '../../channel.js';
import { parseListenTarget, parseTarget, transportOf } from '../../src/cli/transport.js';
import { CliError } from '../../src/cli/output.js';
import { makeCertificate, openHandles, tlsTest, until } from '../helpers.js';
import { pythonTest, startServerPeer } from '../interop/python.js';
import { oneLine, run } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'msgchannel-transport-'));
const tls = tlsTest('cli/transport');
const python = pythonTest('cli/transport');

/**
 * A Server on 127.0.0.1 port 0, or on `path`, that echoes every message (for `--mode echo`), or
 * with `requests` answers every request with its body (for `--mode request`); closed by stop().
 */
async function echoServer(
  options: ServerOptions = {},
  path?: string,
  requests = false,
): Promise<{ target: string; stop: () => Promise<void> }> {
  const server = new Server({
    ...(requests ? { onRequest: (_conn, body) => body } : { onMessage: (conn, m) => conn.send(m) }),
    ...options,
  });
  const a = await (path === undefined ? server.listen(0, '127.0.0.1') : server.listen(path));
  return {
    target: path ?? `127.0.0.1:${a.port}`,
    stop: () => server.close({ timeout: 2000 }).catch(() => {}),
  };
}

function json(stdout: string): Record<string, any> {
  return JSON.parse(stdout) as Record<string, any>;
}

// ---------------------------------------------------------------- parsing, in one place

test('targets: [HOST:]PORT, a Unix socket path (anything with a /), a ws:// URL; listen takes no URL', () => {
  assert.equal(parseTarget('5000'), { host: '127.0.0.1', port: 5000 });
  assert.equal(parseTarget('[::1]:5000'), { host: '::1', port: 5000 });
  assert.equal(parseTarget('./app.sock'), { path: './app.sock' });
  assert.equal(parseTarget('/run/app.sock'), { path: '/run/app.sock' });
  assert.equal(parseTarget('wss://example.com:8443/chat'), { url: 'wss://example.com:8443/chat' });
  assert.throws(
    () => parseTarget('app.sock'),
    (e: Error) => e instanceof InvalidArgumentError && /\.\/app\.sock/.test(e.message),
  );
  assert.throws(
    () => parseListenTarget('ws://127.0.0.1:5000'),
    (e: Error) => e instanceof InvalidArgumentError,
  );
  assert.equal(parseListenTarget('/tmp/x.sock'), { path: '/tmp/x.sock' });
});

test('transport flags: files read once into plain data; options that do not go together are usage errors', () => {
  const keyFile = join(dir, 'secret');
  writeFileSync(keyFile, 's3cret\n');
  assert.equal(Buffer.from(transportOf({ authFile: keyFile }, 'client').auth!).toString(), 's3cret');
  assert.equal(Buffer.from(transportOf({ auth: 'k' }, 'client').auth!).toString(), 'k');
  assert.is(transportOf({}, 'client').tls, undefined);
  assert.equal(transportOf({ insecure: true }, 'client').tls, { insecure: true }, '--insecure implies TLS');
  assert.equal(transportOf({}, 'client', { url: 'wss://h:1/' }).tls, {}, 'wss:// is TLS');
  const usage = (f: () => unknown, pattern: RegExp): void =>
    assert.throws(f, (e: Error) => e instanceof CliError && e.exitCode === 2 && pattern.test(e.message));
  usage(() => transportOf({ cert: keyFile }, 'client'), /--cert and --key go together/);
  usage(() => transportOf({ tls: true }, 'server'), /serving TLS needs --cert and --key/);
  usage(() => transportOf({ tls: true }, 'client', { url: 'ws://h:1/' }), /wss:\/\//);
  usage(() => transportOf({ ca: join(dir, 'missing.pem') }, 'client'), /cannot read --ca .*missing\.pem: no such file/);
  usage(() => transportOf({ auth: '' }, 'client'), /--auth must not be empty/);
});

// ---------------------------------------------------------------- bench over TLS, Unix sockets and auth

tls('bench over TLS: echo and request modes with --ca; an untrusted certificate is one line', async () => {
  const { key, cert } = makeCertificate();
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, cert);
  const s = await echoServer({ tls: { key, cert } });
  const rq = await echoServer({ tls: { key, cert } }, undefined, true);
  try {
    const echo = await run(['bench', s.target, '--ca', caFile, '-C', '2', '--count', '300', '--json']);
    assert.is(echo.status, 0, echo.stderr);
    const doc = json(echo.stdout);
    assert.is(doc.config.tls, true);
    assert.is(doc.config.auth, false);
    assert.is(doc.summary.messages, 300);
    const req = await run(['bench', rq.target, '--ca', caFile, '--mode', 'request', '--count', '200']);
    assert.is(req.status, 0, req.stderr);
    assert.match(req.stdout, /\| target +\| 127\.0\.0\.1:\d+ \(TLS\) +\|/);
    assert.match(req.stdout, /\| requests +\| 200 +\|/);
    const untrusted = await run(['bench', s.target, '--tls', '--count', '10']);
    assert.is(untrusted.status, 1);
    oneLine(untrusted.stderr);
    assert.match(
      untrusted.stderr,
      /cannot connect to 127\.0\.0\.1:\d+: .*\(DEPTH_ZERO_SELF_SIGNED_CERT\): the server's certificate is not trusted: its CA with --ca FILE, or --insecure/,
    );
    const insecure = await run(['bench', s.target, '--insecure', '--count', '10']);
    assert.is(insecure.status, 0, insecure.stderr);
    const plain = await run(['bench', s.target, '--count', '10', '--timeout', '2']);
    assert.is.not(plain.status, 0, 'a plain client of a TLS server fails');
    oneLine(plain.stderr);
  } finally {
    await s.stop();
    await rq.stop();
  }
});

test('bench over a Unix socket: echo, request and --workers 2', async () => {
  const path = join(dir, 'bench.sock');
  const s = await echoServer({}, path);
  const rq = await echoServer({}, join(dir, 'request.sock'), true);
  try {
    const echo = await run(['bench', path, '-C', '4', '--workers', '2', '--count', '400', '--json']);
    assert.is(echo.status, 0, echo.stderr);
    const doc = json(echo.stdout);
    assert.is(doc.config.target, path);
    assert.is(doc.summary.messages, 400);
    const req = await run(['bench', rq.target, '--mode', 'request', '--count', '200']);
    assert.is(req.status, 0, req.stderr);
    assert.match(req.stdout, /\| requests +\| 200 +\|/);
    const missing = await run(['bench', join(dir, 'none.sock'), '--count', '10']);
    assert.is(missing.status, 1);
    oneLine(missing.stderr);
    assert.match(missing.stderr, /cannot connect to .*none\.sock: .*\(ENOENT\)/);
  } finally {
    await s.stop();
    await rq.stop();
  }
});

test('bench with auth: --auth and --auth-file against a Server with auth; a wrong or missing key is one line', async () => {
  const s = await echoServer({ auth: { key: 'open sesame' } });
  const rq = await echoServer({ auth: { key: 'open sesame' } }, undefined, true);
  const keyFile = join(dir, 'auth.key');
  writeFileSync(keyFile, 'open sesame\n');
  try {
    const ok = await run(['bench', s.target, '--auth', 'open sesame', '-C', '3', '--count', '300', '--json']);
    assert.is(ok.status, 0, ok.stderr);
    assert.is(json(ok.stdout).config.auth, true);
    const file = await run(['bench', rq.target, '--auth-file', keyFile, '--mode', 'request', '--count', '100']);
    assert.is(file.status, 0, file.stderr);
    assert.match(file.stdout, /\| target +\| 127\.0\.0\.1:\d+ \(auth\) +\|/);
    const wrong = await run(['bench', s.target, '--auth', 'guess', '--count', '10']);
    assert.is(wrong.status, 1);
    oneLine(wrong.stderr);
    assert.match(wrong.stderr, /\(ERR_AUTH\): do both sides use the same --auth secret\?/);
    const both = await run(['bench', s.target, '--auth', 'a', '--auth-file', keyFile, '--count', '10']);
    assert.is(both.status, 2, 'two secrets are a usage error');
    oneLine(both.stderr);
  } finally {
    await s.stop();
    await rq.stop();
  }
  // A server without auth never challenges: the client's handshake waits, then one line (exit 124).
  const plain = await echoServer();
  try {
    const r = await run(['bench', plain.target, '--auth', 'k', '--count', '10', '--timeout', '0.5']);
    assert.is(r.status, 124);
    oneLine(r.stderr);
    assert.match(r.stderr, /the auth handshake got no answer: does the server use --auth\?/);
  } finally {
    await plain.stop();
  }
  // Self-contained: the in-process server takes the same secret; TLS cannot be self-contained.
  const local = await run(['bench', '--auth', 'k', '--count', '100']);
  assert.is(local.status, 0, local.stderr);
  assert.match(local.stdout, /\(in-process echo server, auth\)/);
  const noCert = await run(['bench', '--tls', '--count', '10']);
  assert.is(noCert.status, 2);
  assert.match(noCert.stderr, /TLS needs a server to connect to/);
});

tls('TLS, a Unix socket and auth together, with a client certificate the server asks for', async () => {
  const server = makeCertificate();
  const client = makeCertificate('bench-client');
  const files = { ca: join(dir, 'server.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client.key') };
  writeFileSync(files.ca, server.cert);
  writeFileSync(files.cert, client.cert);
  writeFileSync(files.key, client.key);
  const path = join(dir, 'all.sock');
  const s = await echoServer(
    {
      tls: { key: server.key, cert: server.cert, ca: client.cert, requestCert: true, rejectUnauthorized: true },
      auth: { key: 'k' },
    },
    path,
  );
  try {
    const args = ['bench', path, '--ca', files.ca, '--servername', 'localhost', '--auth', 'k', '--count', '200'];
    const r = await run([...args, '--cert', files.cert, '--key', files.key]);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /\| target +\| .*all\.sock \(TLS, auth\) +\|/);
    const noClientCert = await run([...args, '--timeout', '2']);
    assert.is.not(noClientCert.status, 0);
    oneLine(noClientCert.stderr);
    assert.match(noClientCert.stderr, /the server asks for a client certificate: --cert FILE --key FILE/);
  } finally {
    await s.stop();
  }
});

test('bench to a ws:// URL: a Server listening for WebSocket clients', async () => {
  const server = new Server({ onMessage: (conn, m) => conn.send(m) });
  const a = await server.listen({ host: '127.0.0.1', port: 0, ws: { path: '/bench' } });
  try {
    const r = await run(['bench', `ws://127.0.0.1:${a.port}/bench`, '-C', '2', '--count', '300', '--json']);
    assert.is(r.status, 0, r.stderr);
    assert.is(json(r.stdout).config.target, `ws://127.0.0.1:${a.port}/bench`);
    assert.is(json(r.stdout).summary.messages, 300);
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------- listen and send over the same options

/** `msgchannel listen ARGS` in the background, until its `listening on` line; stop() ends it. */
async function listen(args: string[]): Promise<{ line: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['dist/cli.js', 'listen', ...args], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`listen ${args.join(' ')} did not start: ${out}`)), 10_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^listening on .*$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  });
  return {
    line,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('close', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

tls('listen and send over TLS and auth on a Unix socket, with the same options', async () => {
  const { key, cert } = makeCertificate();
  const files = { cert: join(dir, 'l.pem'), key: join(dir, 'l.key') };
  writeFileSync(files.cert, cert);
  writeFileSync(files.key, key);
  const path = join(dir, 'listen.sock');
  const l = await listen([path, '--echo', '--cert', files.cert, '--key', files.key, '--auth', 'k']);
  try {
    assert.match(l.line, /^listening on .*listen\.sock \(framing msg, TLS, auth, echoing\)$/);
    const r = await run(['send', path, 'hello', '--expect', '1', '--ca', files.cert, '--auth', 'k']);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, 'hello\n');
    const b = await run(['bench', path, '--ca', files.cert, '--auth', 'k', '--count', '100']);
    assert.is(b.status, 0, b.stderr);
  } finally {
    await l.stop();
  }
  const noKey = await run(['listen', '127.0.0.1:0', '--tls']);
  assert.is(noKey.status, 2);
  assert.is(noKey.stderr, 'msgchannel: serving TLS needs --cert and --key\n');
});

// ---------------------------------------------------------------- outside servers as bench targets

test('--framing: every framing against the in-process server, msg and tinyproto included', async () => {
  for (const framing of ['msg', 'int32', 'openflow', 'tinyproto', 'ltprotocol:I,B', 'pythonConnection']) {
    const r = await run(['bench', '--framing', framing, '--count', '100', '--size', '16', '--json']);
    assert.is(r.status, 0, `${framing}: ${r.stderr}`);
    assert.is(json(r.stdout).summary.messages, 100, framing);
  }
  // A tinyproto Server (msgchannel's own) as a target over a Unix socket.
  const path = join(dir, 'tiny.sock');
  const s = await echoServer({ framing: tinyproto }, path);
  try {
    const r = await run(['bench', path, '--framing', 'tinyproto', '-C', '3', '--count', '150']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /\| connections +\| 3 x window 1 \(tinyproto is half-duplex\) +\|/);
  } finally {
    await s.stop();
  }
});

python("the seed gist's Python server (test/interop/peers/gist_peer.py) as a bench target", async () => {
  const peer = await startServerPeer('gist_peer.py', ['server']);
  try {
    // It serves one client, echoing each message with "py:" before it: an echo by count, not by bytes.
    const r = await run(['bench', `127.0.0.1:${peer.port}`, '--count', '500', '--json']);
    assert.is(r.status, 0, r.stderr);
    assert.is(json(r.stdout).summary.messages, 500);
  } finally {
    await peer.stop();
  }
});

python(
  "a Python tinyproto echo server (one thread per client, as the seed's EchoServer) as a bench target",
  async () => {
    const peer = await startServerPeer('tinyproto_peer.py', ['echo']);
    try {
      const r = await run(['bench', `127.0.0.1:${peer.port}`, '--framing', 'tinyproto', '-C', '4', '--count', '400']);
      assert.is(r.status, 0, r.stderr);
      assert.match(r.stdout, /\| round trips +\| 400 +\|/);
      const open = await run([
        'bench',
        `127.0.0.1:${peer.port}`,
        '--framing',
        'tinyproto',
        '-C',
        '2',
        '--rate',
        '200',
        '--duration',
        '1',
        '--json',
      ]);
      assert.is(open.status, 0, open.stderr);
      assert.ok(json(open.stdout).summary.messages >= 150, 'the open loop kept about its rate');
    } finally {
      await peer.stop();
    }
  },
);

test('the suite leaves no process, socket or timer behind', async () => {
  rmSync(dir, { recursive: true, force: true });
  // A child's process handle closes a moment after its 'close' event.
  await until(() => openHandles().length === 0, 2000).catch(() => {});
  assert.equal(openHandles(), []);
});

test.run();
