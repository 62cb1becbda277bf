/** The server/client examples run as users run them: built into dist/examples, as child processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client } from '../channel.js';

function run(args: string[]): {
  child: ChildProcess;
  output: () => string;
  line: (pattern: RegExp) => Promise<RegExpExecArray>;
} {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters: (() => void)[] = [];
  const onData = (s: string): void => {
    out += s;
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  const line = async (pattern: RegExp): Promise<RegExpExecArray> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const m = pattern.exec(out);
      if (m) return m;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${pattern} in output: ${out}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
  return { child, output: () => out, line };
}

test('cluster example: workers share one port, connections spread over them, graceful stop', async () => {
  const { child, line, output } = run(['dist/examples/cluster.js', '--workers', '2', '--port', '0', '--seconds', '30']);
  try {
    const [, port] = await line(/listening on 127\.0\.0\.1:(\d+) with 2 workers/);
    const pids = new Set<string>();
    const clients: Client[] = [];
    for (let i = 0; i < 8; i++) {
      const got = new Promise<string>((resolve) => {
        clients.push(new Client({ onMessage: (m) => resolve(String(m)) }));
      });
      await clients[i]!.connect('127.0.0.1', Number(port));
      await clients[i]!.send(`hello ${i}`);
      const reply = await got;
      assert.match(reply, new RegExp(`^\\d+: hello ${i}$`));
      pids.add(reply.split(':')[0]!);
    }
    assert.is(pids.size, 2, `served by ${[...pids].join(', ')}`);
    await Promise.all(clients.map((c) => c.close()));
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.is(code, 0);
    assert.match(output(), /all workers stopped/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('cluster example: by default a fixed exchange over the workers, then it stops by itself', async () => {
  const { child, line, output } = run(['dist/examples/cluster.js', '--workers', '2', '--port', '0']);
  try {
    await line(/all workers stopped/);
    const [code] = child.exitCode !== null ? [child.exitCode] : await once(child, 'exit');
    assert.is(code, 0);
    const pids = [...output().matchAll(/client (\d) got: (\d+): hello \1/g)].map((m) => m[2]);
    assert.is(pids.length, 4, output());
    assert.is(new Set(pids).size, 2, output());
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('ltprotocol example: stops by itself without --seconds', async () => {
  const { child, line } = run(['dist/examples/ltprotocol.js', 'both', '0']);
  await line(/client got: 7/);
  const [code] = child.exitCode !== null ? [child.exitCode] : await once(child, 'exit');
  assert.is(code, 0);
});

test('ltprotocol example: NumMsg/StrMsg every second, stops after --seconds', async () => {
  const { child, line } = run(['dist/examples/ltprotocol.js', 'both', '0', '--seconds', '1.5']);
  await line(/client got: 200\nclient got: hello world!\nclient got: 7\nclient got: 200/);
  const [code] = await once(child, 'exit');
  assert.is(code, 0);
});

test('tinyproto echo example: echo, then SRVQUIT shuts the server down', async () => {
  const { child, line } = run(['dist/examples/tinyproto-echo.js', 'both', '0']);
  await line(/Echo back: hello[\s\S]*Echo back: tinyproto[\s\S]*server shut down by SRVQUIT/);
  const [code] = await once(child, 'exit');
  assert.is(code, 0);
});

test('packetmq chat example, over TCP and in memory', async () => {
  for (const extra of [[], ['--memory']]) {
    const { child, line } = run(['dist/examples/packetmq-chat.js', ...extra]);
    await line(/\[carol\] <bob> hello alice[\s\S]*\[carol\] disconnected: reason\.userquit/);
    const [code] = await once(child, 'exit');
    assert.is(code, 0);
  }
});

test.run();
