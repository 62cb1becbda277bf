/** The `msgchannel` command (dist/cli.js), run as a user would, against servers on 127.0.0.1 port 0. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, ltprotocol, pythonConnection } from '../../channel.js';
import { parseAddress, parseFraming } from '../../src/cli/args.js';
import { hexdump, printable } from '../../src/cli/output.js';
import { echoServer, openHandles, sleep } from '../helpers.js';
import { echoesThenStops, run, type Run } from './run-cli.js';

const CLI = 'dist/cli.js';
const env = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete e.FORCE_COLOR;
  return e;
};

/** `msgchannel listen 127.0.0.1:0 ...` in the background: its port, its output so far, and stop(). */
async function listen(args: string[]): Promise<{
  port: number;
  output: () => string;
  waitFor: (text: string) => Promise<void>;
  stop: () => Promise<Omit<Run, 'ms'>>;
}> {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'listen', '127.0.0.1:0', ...args], {
    env: env(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let changed: () => void = () => {};
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    changed();
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  const waitFor = async (text: string): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (!stdout.includes(text)) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`listen never printed ${JSON.stringify(text)}; stdout: ${stdout} stderr: ${stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        changed = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  };
  try {
    await waitFor('listening on ');
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stdout)![1]);
  return {
    port,
    output: () => stdout,
    waitFor,
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const status = await closed;
      clearTimeout(timer);
      return { stdout, stderr, status };
    },
  };
}

/** A raw TCP server on port 0 that answers anything with these bytes. */
async function rawServer(reply: Buffer | string): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', () => s.write(reply));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A port nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** The escape character that starts an ANSI color sequence. */
const ESC = '\x1b';

const oneLine = (s: string): void => assert.is(s.trimEnd().split('\n').length, 1, `expected one line, got: ${s}`);

// ---------------------------------------------------------------- pure helpers

test('parseAddress takes [HOST:]PORT, IPv6 in brackets, and defaults the host to 127.0.0.1', () => {
  assert.equal(parseAddress('5000'), { host: '127.0.0.1', port: 5000 });
  assert.equal(parseAddress('example.org:80'), { host: 'example.org', port: 80 });
  assert.equal(parseAddress('[::1]:7'), { host: '::1', port: 7 });
  assert.throws(() => parseAddress('host:99999'), /PORT 0-65535/);
  assert.throws(() => parseAddress('nope'), /\[HOST:\]PORT/);
});

test('parseFraming knows every framing, with arguments', () => {
  for (const name of ['msg', 'int32', 'openflow', 'tinyproto', 'ltprotocol', 'pythonConnection'])
    assert.is(parseFraming(name).name.toLowerCase(), name.toLowerCase());
  assert.is(parseFraming('ltprotocol:I,H').maxType, 0xffff);
  assert.ok(parseFraming('pythonConnection:authkey=secret').handshake);
  const lp = parseFraming('lengthPrefixed:lengthSize=2,typeSize=1,littleEndian');
  assert.ok(lp.hasType);
  assert.throws(() => parseFraming('ltprotocol:X'), /struct codes/);
  assert.throws(() => parseFraming('lengthPrefixed:bogus=1'), /unknown lengthPrefixed option/);
  assert.throws(() => parseFraming('zmq'), /unknown framing/);
});

test('printable tells text from binary; hexdump is hexdump -C style', () => {
  assert.is(printable(Buffer.from('héllo\tworld\n')), 'héllo\tworld\n');
  assert.is(printable(Buffer.from([0x68, 0x00])), undefined);
  assert.is(printable(Buffer.from([0xff, 0xfe])), undefined);
  assert.is(hexdump(Buffer.from('AB\x00'), ''), '00000000  41 42 00                                          |AB.|');
});

// ---------------------------------------------------------------- listen, send, connect

test('listen --echo prints arrival, each message with its length, departure; send --expect prints the replies', async () => {
  const server = await listen(['--echo']);
  try {
    const r = await run(['send', `127.0.0.1:${server.port}`, 'hello', 'two words', '--expect', '2']);
    assert.is(r.stderr, '');
    assert.is(r.stdout, 'hello\ntwo words\n');
    assert.is(r.status, 0);
    await server.waitFor('disconnected');
    const out = server.output();
    assert.match(out, /listening on 127\.0\.0\.1:\d+ \(framing msg, echoing\)/);
    assert.match(out, /\+ 127\.0\.0\.1:\d+ connected/);
    assert.match(out, /< 127\.0\.0\.1:\d+ 5 B {2}hello\n/);
    assert.match(out, /< 127\.0\.0\.1:\d+ 9 B {2}two words\n/);
    assert.match(out, /- 127\.0\.0\.1:\d+ disconnected after 2 messages/);
  } finally {
    const s = await server.stop();
    assert.is(s.status, 0, 'SIGTERM ends listen cleanly');
  }
});

test('listen prints binary messages as a hexdump; send --hex sends and prints hex', async () => {
  const server = await listen(['--echo']);
  try {
    const r = await run(['send', String(server.port), '--hex', '00 01 ff 41', '-n', '1']);
    assert.is(r.stdout, '00 01 ff 41\n');
    assert.is(r.status, 0);
    await server.waitFor('disconnected');
    assert.match(server.output(), /4 B\n {2}00000000 {2}00 01 ff 41 +\|\.\.\.A\|\n/);
  } finally {
    await server.stop();
  }
});

test('listen --exec replies with the command output, the message on its stdin', async () => {
  const server = await listen(['--exec', 'tr a-z A-Z']);
  try {
    const r = await run(['send', String(server.port), 'shout', 'this', '-n', '2']);
    assert.is(r.stdout, 'SHOUT\nTHIS\n');
    assert.is(r.status, 0);
  } finally {
    await server.stop();
  }
});

test('connect: each stdin line is one message, replies are printed, and it exits at the end of stdin once they are in', async () => {
  const { listener, port } = await echoServer();
  try {
    const started = Date.now();
    const r = await run(['connect', `127.0.0.1:${port}`], { input: 'one\ntwo\n\nthree\n' });
    assert.is(r.stderr, '');
    assert.is(r.stdout, 'one\ntwo\n\nthree\n');
    assert.is(r.status, 0);
    assert.ok(Date.now() - started < 1900, 'did not wait for --wait: every reply was in');
  } finally {
    await listener.close();
  }
});

test('connect --hex and --raw with a delimiter', async () => {
  const { listener, port } = await echoServer();
  const seen: Buffer[] = [];
  const sniff = Channel.listen('127.0.0.1', 0);
  try {
    const hex = await run(['connect', String(port), '--hex'], { input: '01 02 ff\n0a0b\n' });
    assert.is(hex.stdout, '01 02 ff\n0a 0b\n');
    assert.is(hex.status, 0);
    const raw = await run(['connect', String(port), '--raw', '-d', '\\0'], { input: Buffer.from('a\nb\0c\0d') });
    assert.equal(Buffer.from(raw.stdout), Buffer.from('a\nb\0c\0d\0'));
    assert.is(raw.status, 0);
    // A server that only listens: connect still ends, after --wait.
    const { port: quiet } = await sniff.listening;
    void (async () => {
      for await (const ch of sniff) for await (const m of ch) seen.push(m);
    })();
    const r = await run(['connect', String(quiet), '--wait', '0.2'], { input: 'x\n' });
    assert.is(r.status, 0);
    assert.equal(seen.map(String), ['x']);
  } finally {
    await listener.close();
    await sniff.close();
  }
});

test('--framing: an ltprotocol server and client, typed frames shown with their type', async () => {
  const server = await listen(['--echo', '--framing', 'ltprotocol:H,B']);
  try {
    const r = await run(['send', String(server.port), '--framing', 'ltprotocol', '--hex', '00 00 00 c8', '-n', '1']);
    assert.is(r.stdout, '00 00 00 c8\n');
    assert.is(r.status, 0);
    await server.waitFor('disconnected');
    assert.match(server.output(), /framing ltprotocol/);
    assert.match(server.output(), /4 B type 0\n/);
    // And against the library directly: the CLI speaks the real framing.
    const ch = await Channel.connect('127.0.0.1', server.port, { framing: ltprotocol() });
    await ch.send('hi', { type: 2 });
    assert.equal(await ch.recvFrame(), { type: 2, data: Buffer.from('hi') });
    await ch.close();
  } finally {
    await server.stop();
  }
});

// ---------------------------------------------------------------- errors: one line, non-zero

test('send exits 124 with one line when the replies do not come in time', async () => {
  const { listener, port } = await echoServer();
  try {
    const r = await run(['send', String(port), 'only one', '--expect', '2', '--timeout', '0.5']);
    assert.is(r.stdout, 'only one\n');
    oneLine(r.stderr);
    assert.match(
      r.stderr,
      /^msgchannel: timed out after 0\.5 s waiting for reply 2 of 2 from 127\.0\.0\.1:\d+ \(ERR_TIMEOUT\)\n$/,
    );
    assert.is(r.status, 124);
  } finally {
    await listener.close();
  }
});

test('listen on a port in use: one line, EADDRINUSE, exit 1', async () => {
  const holder = Channel.listen('127.0.0.1', 0, { reuse: false });
  const { port } = await holder.listening;
  try {
    const r = await run(['listen', `127.0.0.1:${port}`]);
    oneLine(r.stderr);
    assert.is(r.stderr, `msgchannel: cannot listen on 127.0.0.1:${port}: port already in use (EADDRINUSE)\n`);
    assert.is(r.stdout, '');
    assert.is(r.status, 1);
  } finally {
    await holder.close();
  }
});

test('connection refused: one line, ECONNREFUSED, exit 1 (send, connect and bench)', async () => {
  const port = await closedPort();
  for (const args of [
    ['send', String(port), 'x'],
    ['connect', String(port)],
    ['bench', `127.0.0.1:${port}`, '--count', '1'],
  ]) {
    const r = await run(args);
    assert.is(
      r.stderr,
      `msgchannel: cannot connect to 127.0.0.1:${port}: connection refused (ECONNREFUSED)\n`,
      args.join(' '),
    );
    assert.is(r.status, 1);
  }
});

test('a malformed frame from the peer: one line with its code, exit 1 (send and connect); listen reports it and carries on', async () => {
  const bad = await rawServer('\r\nMSX 1\r\nx');
  try {
    for (const [args, input] of [
      [['send', String(bad.port), 'hi', '-n', '1'], undefined],
      [['connect', String(bad.port)], 'hi\n'],
    ] as const) {
      const r = await run([...args], { input });
      oneLine(r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`^msgchannel: malformed frame from 127\\.0\\.0\\.1:${bad.port}: .*\\(ERR_PROTOCOL\\)\\n$`),
      );
      assert.is(r.status, 1);
    }
  } finally {
    await bad.close();
  }
  const server = await listen(['--echo']);
  try {
    const s = net.connect(server.port, '127.0.0.1');
    s.on('error', () => {});
    s.end('\r\nMSG 1x\r\n');
    await server.waitFor('disconnected');
    assert.match(server.output(), /! 127\.0\.0\.1:\d+ malformed frame from 127\.0\.0\.1:\d+: .*\(ERR_PROTOCOL\)/);
    const r = await run(['send', String(server.port), 'still here', '-n', '1']);
    assert.is(r.stdout, 'still here\n');
  } finally {
    await server.stop();
  }
});

test('a server of another framing: connect, send and bench fail in one line with the framing hint, exit 1', async () => {
  const hint =
    /^msgchannel: no reply from 127\.0\.0\.1:\d+ \((ERR_CHANNEL_CLOSED|ECONNRESET)\): the peer closed right after our first message: does it use the same framing\? \(--framing; this side uses (msg|int32)\)\n$/;
  const int32Server = await listen(['--framing', 'int32']);
  const msgServer = await listen(['--echo', '--quiet']);
  try {
    const c = await run(['connect', String(int32Server.port)], { input: 'hello\nworld\n' });
    assert.is(c.status, 1, `connect: ${c.stderr}`);
    assert.match(c.stderr, hint);
    assert.is(c.stdout, '');
    const s = await run(['send', String(int32Server.port), 'hi', '--expect', '1']);
    assert.is(s.status, 1);
    assert.match(s.stderr, hint);
    const b = await run(['bench', `127.0.0.1:${msgServer.port}`, '--framing', 'int32', '--count', '100']);
    assert.is(b.status, 1);
    assert.match(b.stderr, hint);
    assert.not.match(b.stderr, /cannot connect/);
    // The same framing on both sides: the quiet echo server serves the bench, with no line per message.
    const ok = await run(['bench', `127.0.0.1:${msgServer.port}`, '--count', '200']);
    assert.is(ok.status, 0, ok.stderr);
    await msgServer.waitFor('disconnected after 200 messages');
    assert.match(msgServer.output(), /listening on 127\.0\.0\.1:\d+ \(framing msg, echoing, quiet\)/);
    assert.not.match(msgServer.output(), /^< /m);
  } finally {
    await int32Server.stop();
    await msgServer.stop();
  }
});

test('a lax server of another framing (it waits for the rest of a frame it misread): connect and send say so', async () => {
  // ltprotocol reads our MSG frame's "\r\n" as a 3,338-byte length and waits for that body.
  const lax = await listen(['--framing', 'ltprotocol']);
  const hint = 'does it use the same framing? (--framing; this side uses msg)';
  try {
    const s = await run(['send', String(lax.port), 'hi', '--expect', '1', '--timeout', '0.5']);
    oneLine(s.stderr);
    assert.is(s.stderr, `msgchannel: no reply from 127.0.0.1:${lax.port} within 0.5 s (ERR_TIMEOUT): ${hint}\n`);
    assert.is(s.status, 124);
    const c = await run(['connect', String(lax.port), '--wait', '0.3'], { input: 'one\ntwo\n' });
    assert.is(c.stdout, '');
    assert.is(
      c.stderr,
      `msgchannel: no reply from 127.0.0.1:${lax.port} to 2 messages (--wait 0.3 s after the end of input); if one was due: ${hint}\n`,
    );
    assert.is(c.status, 0, 'no reply is not a failure for connect (a server may have nothing to say), as with netcat');
    // Nothing was expected: send says so, and that it sent.
    const quiet = await run(['send', String(lax.port), 'a', 'b']);
    assert.is(quiet.stdout, '');
    assert.is(
      quiet.stderr,
      `msgchannel: sent 2 messages to 127.0.0.1:${lax.port}; no reply expected (--expect 0; --expect N waits for N replies and prints them)\n`,
    );
    assert.is(quiet.status, 0);
  } finally {
    await lax.stop();
  }
  // Some reply came: no question.
  const { listener, port } = await echoServer();
  try {
    const answered = await run(['connect', String(port), '--wait', '0.3'], { input: 'one\n' });
    assert.is(answered.stderr, '');
    assert.is(answered.stdout, 'one\n');
  } finally {
    await listener.close();
  }
});

test('send: --timeout bounds the sending too (a tinyproto peer that never answers our header)', async () => {
  // Does tinyproto's init (FF), then reads and never answers: a send waits for the answer for ever.
  const sockets = new Set<net.Socket>();
  const mute = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('data', () => {});
    s.write(Buffer.from([0xff]));
  });
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
  const { port } = mute.address() as net.AddressInfo;
  try {
    const r = await run(['send', String(port), 'hi', '--framing', 'tinyproto', '--timeout', '0.5']);
    oneLine(r.stderr);
    assert.is(
      r.stderr,
      `msgchannel: timed out after 0.5 s sending message 1 of 1 to 127.0.0.1:${port}: the peer did not take it (ERR_TIMEOUT)\n`,
    );
    assert.is(r.status, 124);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => mute.close(r));
  }
});

test('listen shows clients that fail the handshake on their own line (authkey, tinyproto init)', async () => {
  const auth = await listen(['--framing', 'pythonConnection:authkey=secret']);
  const tiny = await listen(['--framing', 'tinyproto']);
  try {
    await rejectsCode(
      Channel.connect('127.0.0.1', auth.port, { framing: pythonConnection({ authkey: 'wrong' }), timeout: 5000 }),
      'ERR_AUTH',
    );
    await auth.waitFor('handshake failed');
    assert.match(auth.output(), /^x 127\.0\.0\.1:\d+ handshake failed: .+ \(ERR_AUTH\)$/m);
    assert.not.match(auth.output(), /^\+ /m, 'it never connected');
    // A client that sends a non-tinyproto byte instead of the init and goes away.
    const socket = net.connect(tiny.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    socket.end(Buffer.from('\r\nMSG 1\r\nx'));
    await tiny.waitFor('handshake failed');
    socket.destroy();
    assert.match(tiny.output(), /^x 127\.0\.0\.1:\d+ handshake failed: .+ \(ERR_[A-Z_]+\)$/m);
  } finally {
    await auth.stop();
    await tiny.stop();
  }
});

async function rejectsCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.is((e as { code?: string }).code, code);
    return;
  }
  assert.unreachable(`expected a rejection with ${code}`);
}

test('bad usage: one line, exit 2', async () => {
  for (const args of [
    ['listen', '5000', '--framing', 'nope'],
    ['listen', '5000', '--echo', '--exec', 'cat'],
    ['send', 'not-an-address', 'x'],
    ['frobnicate'],
  ]) {
    const r = await run(args);
    oneLine(r.stderr);
    assert.match(r.stderr, /^msgchannel: /);
    assert.is(r.status, 2, args.join(' '));
  }
});

// ---------------------------------------------------------------- help, colors, bench

test('--help on every command shows examples', async () => {
  for (const args of [
    ['--help'],
    ['listen', '--help'],
    ['connect', '--help'],
    ['send', '--help'],
    ['bench', '--help'],
  ]) {
    const r = await run(args);
    assert.is(r.status, 0);
    assert.match(r.stdout, /Examples:\n {2}msgchannel /, args.join(' '));
  }
});

test('colors only when asked for off a TTY, and never with NO_COLOR', async () => {
  const port = await closedPort();
  const forced = await run(['send', String(port), 'x'], { env: { FORCE_COLOR: '1', NO_COLOR: '' } });
  assert.match(forced.stderr, new RegExp(`${ESC}\\[31mmsgchannel:`));
  const plain = await run(['send', String(port), 'x']); // a pipe, not a TTY
  assert.not.match(plain.stderr, new RegExp(`${ESC}\\[`));
  const noColor = await run(['send', String(port), 'x'], { env: { FORCE_COLOR: '1', NO_COLOR: '1' } });
  assert.not.match(noColor.stderr, new RegExp(`${ESC}\\[`));
});

test('bench: a self-contained run and one against a server print the result table', async () => {
  const self = await run(['bench', '--count', '300', '--size', '100']);
  assert.is(self.status, 0, self.stderr);
  assert.match(self.stdout, /\| round trips +\| 300 +\|/);
  assert.match(self.stdout, /in-process echo server/);
  assert.match(self.stdout, /\| message size +\| 100 B +\|/);
  const { listener, port } = await echoServer();
  try {
    const r = await run(['bench', `127.0.0.1:${port}`, '--duration', '0.3', '--concurrency', '2']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /\| connections +\| 2 x window 16 +\|/);
    assert.match(r.stdout, /round trips\/s/);
  } finally {
    await listener.close();
  }
});

// ---------------------------------------------------------------- bench and connect never hang

test('bench: 1 MiB messages, 16 in flight, finish (the sender and the reader of a connection are independent)', async () => {
  // Each in-flight slot used to await its send before reading: the echo server stopped reading while
  // its echoes waited for us, and both waited forever.
  const r = await run(['bench', '--size', '1048576', '--count', '40'], { timeout: 30_000 });
  assert.is(r.status, 0, `status ${r.status}: ${r.stderr}`);
  assert.match(r.stdout, /\| round trips +\| 40 +\|/);
  const server = await listen(['--echo', '--quiet']);
  try {
    const e = await run(['bench', `127.0.0.1:${server.port}`, '--size', '1048576', '--count', '40', '--window', '32'], {
      timeout: 30_000,
    });
    assert.is(e.status, 0, `status ${e.status}: ${e.stderr}`);
    assert.match(e.stdout, /\| round trips +\| 40 +\|/);
  } finally {
    await server.stop();
  }
});

test('bench: messages over maxQueuedBytes (16 MiB) with several in flight go one by one instead of failing', async () => {
  const r = await run(['bench', '--size', String(17 * 1024 * 1024), '--count', '3', '--window', '3'], {
    timeout: 30_000,
  });
  assert.is(r.status, 0, `status ${r.status}: ${r.stderr}`);
  assert.match(r.stdout, /\| round trips +\| 3 +\|/);
});

test('bench over tinyproto, a half-duplex framing: one message in flight per connection, so echoes never cross sends', async () => {
  const r = await run(['bench', '--framing', 'tinyproto', '--count', '100', '--concurrency', '2'], { timeout: 30_000 });
  assert.is(r.status, 0, `status ${r.status}: ${r.stderr}`);
  assert.match(r.stdout, /\| round trips +\| 100 +\|/);
  assert.match(r.stdout, /\| connections +\| 2 x window 1 \(tinyproto is half-duplex\) +\|/);
});

test('bench: a size over maxMessageSize is one line, ERR_MESSAGE_TOO_LARGE, exit 1', async () => {
  const r = await run(['bench', '--size', '67108865', '--count', '1'], { timeout: 15_000 });
  oneLine(r.stderr);
  assert.match(
    r.stderr,
    /^msgchannel: cannot send to 127\.0\.0\.1:\d+ \(--size 67108865\) after 0 round trips: cannot send a 67108865-byte message, above maxMessageSize 67108864 \(ERR_MESSAGE_TOO_LARGE\)\n$/,
  );
  assert.is(r.status, 1);
  assert.is(r.stdout, '');
});

test('bench: --duration is a hard deadline; what is in flight then is abandoned and reported', async () => {
  const { port, close } = await echoesThenStops(20); // answers 20 messages, then never again
  try {
    const started = Date.now();
    const r = await run(['bench', `127.0.0.1:${port}`, '--duration', '0.5'], { timeout: 15_000 });
    assert.is(r.status, 0, `status ${r.status}: ${r.stderr}`);
    assert.ok(Date.now() - started < 10_000, 'ended near its deadline, long before the echo timeout');
    assert.match(r.stdout, /\| round trips +\| 20 +\|/);
    assert.match(r.stdout, /\| abandoned +\| 16 in flight at the --duration deadline +\|/);
  } finally {
    await close();
  }
});

test('bench: no answer at all by the --duration deadline is one line and exit 124, at the deadline', async () => {
  const server = await listen(['--quiet']); // reads every message, never answers
  try {
    const started = Date.now();
    const r = await run(['bench', `127.0.0.1:${server.port}`, '--duration', '0.5'], { timeout: 15_000 });
    assert.ok(Date.now() - started < 10_000, 'ended near its deadline, long before the echo timeout');
    oneLine(r.stderr);
    assert.match(
      r.stderr,
      /^msgchannel: no echo from 127\.0\.0\.1:\d+ in the 0\.\d s measured after 0 round trips, with 16 messages in flight \(--duration; ERR_TIMEOUT\)/,
    );
    assert.is(r.status, 124);
    assert.is(r.stdout, '', 'no table of dashes');
  } finally {
    await server.stop();
  }
});

test('bench: no echo within --timeout is one line and exit 124, whatever --count asks', async () => {
  const server = await listen(['--quiet']);
  try {
    const r = await run(['bench', `127.0.0.1:${server.port}`, '--count', '10', '--timeout', '0.5'], {
      timeout: 15_000,
    });
    oneLine(r.stderr);
    assert.match(
      r.stderr,
      /^msgchannel: no echo from 127\.0\.0\.1:\d+ for 0\.5 s after 0 round trips, with 10 messages in flight \(--timeout; ERR_TIMEOUT\): is it an echo server\? does it use the same framing\? \(--framing; this side uses msg\)\n$/,
    );
    assert.is(r.status, 124);
  } finally {
    await server.stop();
  }
});

test('connect and send: a message too large for the framing is one line, exit 1 (connect used to wait forever)', async () => {
  const server = await listen(['--echo', '--framing', 'ltprotocol:B,B']);
  try {
    const long = 'x'.repeat(300);
    const tooLarge =
      /^msgchannel: cannot send a 300-byte message, above maxMessageSize 253 \(ERR_MESSAGE_TOO_LARGE\)\n$/;
    const c = await run(['connect', String(server.port), '--framing', 'ltprotocol:B,B'], {
      input: `${long}\n`,
      timeout: 15_000,
    });
    assert.is(c.status, 1, `status ${c.status}: ${c.stderr}`);
    assert.match(c.stderr, tooLarge);
    const s = await run(['send', String(server.port), '--framing', 'ltprotocol:B,B', long]);
    assert.is(s.status, 1);
    assert.match(s.stderr, tooLarge);
  } finally {
    await server.stop();
  }
});

test("listen --exec: a reply too large for the framing is reported on the client's line, and the client is let go", async () => {
  const server = await listen(['--exec', 'head -c 300 /dev/zero', '--framing', 'ltprotocol:B,B']);
  try {
    const r = await run(['send', String(server.port), '--framing', 'ltprotocol:B,B', 'hi', '-n', '1', '-t', '10']);
    assert.is(r.status, 1, `status ${r.status}: ${r.stderr}`);
    await server.waitFor('disconnected');
    assert.match(
      server.output(),
      /! 127\.0\.0\.1:\d+ cannot send a 300-byte message, above maxMessageSize 253 \(ERR_MESSAGE_TOO_LARGE\)/,
    );
  } finally {
    await server.stop();
  }
});

test('the suite leaves no process, socket or timer behind', async () => {
  await sleep(50);
  assert.equal(openHandles(), []);
});

test.run();
