/**
 * `msgchannel bench` as a load generator, run as a user would (dist/cli.js) against servers on
 * 127.0.0.1 port 0: the modes, the JSON document, the open-loop correction, the hard deadline,
 * compare, and hostile servers (every failure one line, never a hang).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, RequestChannel } from '../../channel.js';
import { echoServer, openHandles, sleep } from '../helpers.js';
import { echoesThenStops, oneLine, rawServer, run } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'msgchannel-bench-'));

// ---------------------------------------------------------------- the JSON document

const PERCENTILE_KEYS = ['count', 'min', 'mean', 'stddev', 'p50', 'p90', 'p99', 'p99.9', 'p99.99', 'max'];

/** Every field of a result document (docs/benchmarking.md's schema), with its type; the problems found. */
function schemaProblems(doc: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const expect = (ok: boolean, what: string): void => {
    if (!ok) problems.push(what);
  };
  const isNum = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
  const numOrNull = (v: unknown): boolean => v === null || isNum(v);
  const keys = (o: unknown, want: string[], where: string): void => {
    expect(typeof o === 'object' && o !== null, `${where} is an object`);
    expect(
      JSON.stringify(Object.keys(o ?? {}).sort()) === JSON.stringify([...want].sort()),
      `${where} keys: ${Object.keys(o ?? {}).join(',')}`,
    );
  };
  keys(doc, ['schema', 'config', 'environment', 'runs', 'summary', 'warnings', 'errors'], 'doc');
  expect(doc.schema === 'msgchannel-bench/1', 'schema');
  const c = doc.config as Record<string, unknown>;
  keys(
    c,
    [
      'mode',
      'target',
      'tls',
      'auth',
      'inProcessServer',
      'framing',
      'size',
      'connections',
      'window',
      'rate',
      'count',
      'duration',
      'warmup',
      'workers',
      'runs',
      'timeout',
    ],
    'config',
  );
  expect(['echo', 'send', 'request'].includes(c.mode as string), 'config.mode');
  expect(
    typeof c.target === 'string' &&
      typeof c.tls === 'boolean' &&
      typeof c.auth === 'boolean' &&
      typeof c.inProcessServer === 'boolean' &&
      typeof c.framing === 'string',
    'config strings',
  );
  for (const k of ['size', 'connections', 'window', 'warmup', 'workers', 'runs', 'timeout'])
    expect(isNum(c[k]), `config.${k}`);
  for (const k of ['rate', 'count', 'duration']) expect(numOrNull(c[k]), `config.${k}`);
  const e = doc.environment as Record<string, unknown>;
  keys(e, ['node', 'platform', 'arch', 'cpus', 'cpuModel', 'memory', 'msgchannel'], 'environment');
  const runDoc = (r: Record<string, unknown>, where: string): void => {
    keys(
      r,
      [
        'messages',
        'abandoned',
        'seconds',
        'messagesPerSecond',
        'bytesPerSecond',
        'samples',
        'connections',
        'latency',
        'late',
        'received',
        'generator',
      ],
      where,
    );
    for (const k of ['messages', 'abandoned', 'seconds', 'messagesPerSecond', 'bytesPerSecond'])
      expect(isNum(r[k]), `${where}.${k}`);
    expect(Array.isArray(r.samples) && (r.samples as unknown[]).every(isNum), `${where}.samples`);
    keys(r.connections, ['min', 'max', 'mean', 'stddev'], `${where}.connections`);
    for (const k of ['min', 'max', 'mean', 'stddev'])
      expect(isNum((r.connections as Record<string, unknown>)[k]), `${where}.connections.${k}`);
    const lat = r.latency as Record<string, Record<string, unknown>>;
    keys(lat, ['corrected', 'uncorrected'], `${where}.latency`);
    for (const which of ['corrected', 'uncorrected']) {
      keys(lat[which], PERCENTILE_KEYS, `${where}.latency.${which}`);
      for (const k of PERCENTILE_KEYS) expect(numOrNull(lat[which]![k]), `${where}.latency.${which}.${k}`);
      expect(lat[which]!.count === r.messages, `${where}.latency.${which}.count is the messages`);
    }
    keys(r.late, ['generator', 'window', 'started', 'neverStarted', 'lateMs'], `${where}.late`);
    expect(r.received === null || isNum((r.received as Record<string, unknown>).messages), `${where}.received`);
    keys(r.generator, ['eventLoopUtilization', 'eventLoopDelayP99'], `${where}.generator`);
  };
  expect(Array.isArray(doc.runs), 'runs');
  (doc.runs as Record<string, unknown>[]).forEach((r, i) => runDoc(r, `runs[${i}]`));
  if (doc.summary !== null) runDoc(doc.summary as Record<string, unknown>, 'summary');
  expect(Array.isArray(doc.warnings) && (doc.warnings as unknown[]).every((w) => typeof w === 'string'), 'warnings');
  expect(Array.isArray(doc.errors), 'errors');
  for (const x of doc.errors as Record<string, unknown>[]) keys(x, ['message', 'code'], 'errors[]');
  return problems;
}

test('--json: one document with config, environment, every run, the summary, warnings and errors', async () => {
  const r = await run(['bench', '--count', '300', '--runs', '2', '--connections', '3', '--json']);
  assert.is(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Record<string, any>;
  assert.equal(schemaProblems(doc), []);
  assert.is(doc.runs.length, 2);
  assert.is(doc.runs[0].messages, 300);
  assert.is(doc.summary.messages, 600);
  assert.is(doc.summary.latency.corrected.count, 600);
  assert.is(doc.config.connections, 3);
  const perConnection = doc.runs[0].connections;
  assert.ok(perConnection.min <= perConnection.mean && perConnection.mean <= perConnection.max);
  assert.is(perConnection.mean, 100, '300 round trips over 3 connections');
  assert.is(doc.config.inProcessServer, true);
  assert.equal(doc.errors, []);
  assert.not.match(r.stderr, /\r/, 'no progress line off a TTY');
  // The checker itself finds a missing field.
  delete doc.summary.latency.corrected['p99.9'];
  assert.equal(schemaProblems(doc), [
    'summary.latency.corrected keys: count,min,mean,stddev,p50,p90,p99,p99.99,max',
    'summary.latency.corrected.p99.9',
  ]);
});

test('--json on a failure: the document with the error (and no runs), the one line on stderr, the exit code', async () => {
  const server = await rawServer((s) => s.resume()); // reads, never answers
  try {
    const r = await run(['bench', `127.0.0.1:${server.port}`, '--count', '5', '--timeout', '0.5', '--json']);
    assert.is(r.status, 124);
    oneLine(r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, any>;
    assert.equal(schemaProblems(doc), []);
    assert.is(doc.errors.length, 1);
    assert.is(doc.errors[0].code, 'ERR_TIMEOUT');
    assert.is(`msgchannel: ${doc.errors[0].message}\n`, r.stderr);
    assert.is(doc.summary, null);
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------- modes

test('send mode: one-way messages, counted by the sender and by the in-process receiving side', async () => {
  const r = await run(['bench', '--mode', 'send', '--count', '2000', '--json']);
  assert.is(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Record<string, any>;
  assert.equal(schemaProblems(doc), []);
  assert.is(doc.summary.messages, 2000);
  assert.is(doc.summary.received.messages, 2000, 'the server received every message');
  const table = await run(['bench', '--mode', 'send', '--count', '100']);
  assert.match(table.stdout, /\| received +\| 100 by the server/);
  assert.match(table.stdout, /in-process discard server/);
});

test('send mode against `listen --quiet` (reads and discards) and request mode against an onRequest server', async () => {
  const sink = await rawServer((s) => s.resume());
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  let requests = 0;
  void (async () => {
    for await (const ch of listener)
      new RequestChannel(ch, {
        onRequest: (body) => {
          requests++;
          return body;
        },
      });
  })();
  try {
    const s = await run(['bench', `127.0.0.1:${sink.port}`, '--mode', 'send', '--count', '500']);
    assert.is(s.status, 0, s.stderr);
    assert.match(s.stdout, /\| messages +\| 500 +\|/);
    assert.not.match(s.stdout, /received/, 'no receiving side to report for a server not ours');
    const q = await run(['bench', `127.0.0.1:${port}`, '--mode', 'request', '--count', '400', '-C', '2']);
    assert.is(q.status, 0, q.stderr);
    assert.match(q.stdout, /\| requests +\| 400 +\|/);
    assert.match(q.stdout, /\| per connection +\| [\d,]+ to [\d,]+ requests \(mean 200\.0, stddev [\d.,]+\) +\|/);
    assert.is(requests, 400);
  } finally {
    await sink.close();
    await listener.close();
  }
});

test('every framing, and request mode over each (in-process servers)', async () => {
  for (const framing of ['int32', 'ltprotocol:H,B', 'pythonConnection:authkey=k', 'lengthPrefixed:lengthSize=2']) {
    for (const mode of ['echo', 'request']) {
      const r = await run(['bench', '--framing', framing, '--mode', mode, '--count', '50', '--size', '16']);
      assert.is(r.status, 0, `${framing} ${mode}: ${r.stderr}`);
    }
  }
});

test('--workers 2: the connections split over two threads, the histograms merged', async () => {
  const r = await run(['bench', '--workers', '2', '-C', '4', '--count', '1000', '--json']);
  assert.is(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Record<string, any>;
  assert.is(doc.config.workers, 2);
  assert.is(doc.summary.messages, 1000);
  assert.is(doc.summary.latency.corrected.count, 1000);
});

test('--workers 2: "no answer at all" is decided over every connection, not one worker\'s share', async () => {
  // Only the first connection is echoed; the other is read and never answered. Before, the worker
  // holding the silent one failed the whole run with "no echo ... after 0 round trips".
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  void (async () => {
    let first = true;
    for await (const ch of listener) {
      const echo = first;
      first = false;
      void (async () => {
        try {
          for await (const m of ch) if (echo) await ch.send(m);
        } catch {
          // the bench closed
        }
      })();
    }
  })();
  try {
    const r = await run(['bench', `127.0.0.1:${port}`, '--workers', '2', '-C', '2', '--duration', '1', '--json']);
    assert.is(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, any>;
    assert.ok(doc.summary.messages > 0, 'the echoed connection was measured');
    assert.is(doc.summary.abandoned, 32, 'both windows in flight at the deadline, the silent one never answered');
  } finally {
    await listener.close();
  }
});

test('a thousand connections from one process; too few file descriptors is one line (EMFILE)', async () => {
  const r = await run(['bench', '-C', '1000', '--count', '2000'], { timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| connections +\| 1000 x window 16 +\|/);
  const few = await run(['bench', '-C', '200', '--count', '10'], { shell: 'ulimit -n 64' });
  assert.is(few.status, 1);
  oneLine(few.stderr);
  assert.match(
    few.stderr,
    /^msgchannel: cannot open another connection to 127\.0\.0\.1:\d+ \(connection \d+ of 200\): too many open files \(EMFILE\): raise the limit \(ulimit -n\) or use fewer --connections\n$/,
  );
});

// ---------------------------------------------------------------- the open loop and coordinated omission

test('open loop: a 500 ms server stall shows in the corrected p99 and not in the uncorrected one', async () => {
  // An echo server that stops once for 500 ms, after its 300th message.
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  let seen = 0;
  void (async () => {
    for await (const ch of listener)
      void (async () => {
        try {
          for await (const m of ch) {
            if (++seen === 300) await sleep(500);
            await ch.send(m);
          }
        } catch {
          // the bench closed
        }
      })();
  })();
  try {
    const r = await run(['bench', `127.0.0.1:${port}`, '--rate', '500', '--window', '1', '--duration', '3', '--json']);
    assert.is(r.status, 0, r.stderr);
    const s = (JSON.parse(r.stdout) as Record<string, any>).summary;
    const { corrected, uncorrected } = s.latency;
    // The stall held back about 250 sends due in those 500 ms: each is charged from its intended
    // time, so well over 1% of the messages waited hundreds of ms.
    assert.ok(corrected.p99 >= 400, `corrected p99 ${corrected.p99} ms`);
    // Measured from when each was actually sent, only the one message in flight saw the stall.
    assert.ok(uncorrected.p99 < 200, `uncorrected p99 ${uncorrected.p99} ms`);
    assert.ok(uncorrected.max >= 450, `the stall itself is seen: uncorrected max ${uncorrected.max} ms`);
    assert.ok(s.late.window >= 100, `sends held back by the full window: ${s.late.window}`);
    const table = await run(['bench', `127.0.0.1:${port}`, '--rate', '200', '--duration', '0.5']);
    assert.match(table.stdout, /\| latency p99 +\| [\d.,]+ ms \(uncorrected [\d.,]+ ms\) +\|/);
    assert.match(table.stdout, /\| late sends +\| \d+ of \d+ over 10 ms late/);
  } finally {
    await listener.close();
  }
});

test('--warmup is measured but not reported; the samples are per whole second', async () => {
  const r = await run(['bench', '--rate', '400', '--warmup', '0.5', '--duration', '2', '--json']);
  assert.is(r.status, 0, r.stderr);
  const s = (JSON.parse(r.stdout) as Record<string, any>).summary;
  // 400/s for 2 measured seconds: the warmup's 200 are not in it (a message or two at either edge
  // of the window may fall either way; with the warmup counted it would be about 1,000).
  assert.ok(s.messages >= 780 && s.messages <= 810, `messages ${s.messages}`);
  assert.is(s.samples.length, 2);
  for (const n of s.samples) assert.ok(n >= 380 && n <= 420, `sample ${n}`);
});

// ---------------------------------------------------------------- the hard deadline and hostile servers

test('--duration is a hard deadline in every mode and load model, against a server that never answers: one line, exit 124', async () => {
  const silent = await rawServer((s) => s.resume());
  try {
    for (const extra of [[], ['--mode', 'request'], ['--rate', '1000'], ['--mode', 'request', '--rate', '1000']]) {
      const r = await run(['bench', `127.0.0.1:${silent.port}`, '--duration', '0.5', ...extra], { timeout: 15_000 });
      // Before, a run with no answer at all printed a table of dashes and exited 0.
      assert.is(r.status, 124, `${extra.join(' ')}: ${r.stdout}`);
      assert.ok(r.ms < 8000, `${extra.join(' ')} ended near its deadline, not at the --timeout (${r.ms} ms)`);
      oneLine(r.stderr);
      assert.match(
        r.stderr,
        /in the 0\.\d s measured after 0 (round trips|requests), with 16 (messages in flight|requests outstanding) \(--duration; ERR_TIMEOUT\)/,
      );
    }
  } finally {
    await silent.close();
  }
});

test('open loop: sends due that never started (a server that stops answering) are counted and warned of', async () => {
  const { port, close } = await echoesThenStops(100); // answers 100 messages, then never again
  try {
    const r = await run([
      'bench',
      `127.0.0.1:${port}`,
      '--rate',
      '400',
      '--window',
      '4',
      '--duration',
      '1.5',
      '--json',
    ]);
    assert.is(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, any>;
    assert.equal(schemaProblems(doc), []);
    const s = doc.summary;
    assert.is(s.messages, 100);
    // 600 due in 1.5 s, 104 started: about 490 due more than 10 ms before the end never started
    // (before, they were in no count: "late sends: 0 of 104").
    assert.ok(s.late.neverStarted >= 400 && s.late.neverStarted <= 500, `never started: ${s.late.neverStarted}`);
    assert.ok(
      doc.warnings.some((w: string) => /^\d[\d,]* sends due in the measured time never started/.test(w)),
      doc.warnings.join('\n'),
    );
    const table = await run(['bench', `127.0.0.1:${port}`, '--rate', '400', '--window', '4', '--duration', '1']);
    assert.match(table.stdout, /\| never started +\| [\d,]+ due, the window full to the end +\|/);
  } finally {
    await close();
  }
});

test('hostile servers: silent, closing at once, another framing, another protocol, not reading: one line each, never a hang', async () => {
  const silent = await rawServer((s) => s.resume());
  const closing = await rawServer((s) => s.destroy());
  const stuck = await rawServer((s) => s.pause()); // never reads: our sends back up
  const http = await rawServer((s) => s.once('data', () => s.write('HTTP/1.1 400 Bad Request\r\n\r\n')));
  const { listener, port: msgEcho } = await echoServer();
  try {
    const cases: [string[], number, RegExp][] = [
      [
        ['bench', `127.0.0.1:${silent.port}`, '--mode', 'request', '--count', '5', '--timeout', '0.5'],
        124,
        /^msgchannel: no reply from 127\.0\.0\.1:\d+ for 0\.5 s after 0 requests, with 5 requests outstanding \(--timeout; ERR_TIMEOUT\): does it answer requests/,
      ],
      [
        ['bench', `127.0.0.1:${silent.port}`, '--rate', '100', '--duration', '5', '--timeout', '0.5'],
        124,
        /^msgchannel: no echo from 127\.0\.0\.1:\d+ for 0\.5 s after 0 round trips/,
      ],
      [
        [
          'bench',
          `127.0.0.1:${stuck.port}`,
          '--mode',
          'send',
          '--size',
          '1048576',
          '--count',
          '64',
          '--timeout',
          '0.5',
        ],
        124,
        /^msgchannel: sends to 127\.0\.0\.1:\d+ made no progress for 0\.5 s after \d+ messages/,
      ],
      [
        ['bench', `127.0.0.1:${http.port}`, '--count', '5'],
        1,
        /^msgchannel: connection to 127\.0\.0\.1:\d+ lost during the benchmark after 0 round trips: malformed frame from 127\.0\.0\.1:\d+: bad frame header: .* \(ERR_PROTOCOL\)\n$/,
      ],
      [
        ['bench', `127.0.0.1:${http.port}`, '--mode', 'request', '--workers', '2', '-C', '2', '--count', '5'],
        1,
        /^msgchannel: connection to 127\.0\.0\.1:\d+ lost during the benchmark after 0 requests: malformed frame .*\(ERR_PROTOCOL\)\n$/,
      ],
      [['bench', `127.0.0.1:${closing.port}`, '--count', '5'], 1, /^msgchannel: .*127\.0\.0\.1:\d+/],
      [
        ['bench', `127.0.0.1:${closing.port}`, '--mode', 'request', '--count', '5'],
        1,
        /^msgchannel: .*127\.0\.0\.1:\d+/,
      ],
      [
        ['bench', `127.0.0.1:${closing.port}`, '--mode', 'send', '--count', '5000'],
        1,
        /^msgchannel: .*127\.0\.0\.1:\d+/,
      ],
      [
        ['bench', `127.0.0.1:${msgEcho}`, '--mode', 'request', '--framing', 'int32', '--count', '5', '--timeout', '1'],
        1,
        /does it use the same framing\? \(--framing; this side uses int32\)/,
      ],
      [
        ['bench', `127.0.0.1:${msgEcho}`, '--mode', 'request', '--count', '5', '--timeout', '1'],
        1,
        // An echo server returns our requests: we cannot answer them, and it echoes that error back.
        /^msgchannel: 127\.0\.0\.1:\d+ answered a request with an error after 0 requests: .*\(ERR_REMOTE\): is it a Server with onRequest\?\n$/,
      ],
    ];
    for (const [args, status, line] of cases) {
      const r = await run(args, { timeout: 15_000 });
      oneLine(r.stderr);
      assert.match(r.stderr, line, args.join(' '));
      assert.is(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    }
  } finally {
    await Promise.all([silent.close(), closing.close(), stuck.close(), http.close(), listener.close()]);
  }
});

test('Ctrl-C ends the bench early with what it measured, on one thread and on workers', async () => {
  for (const extra of [[], ['--workers', '2', '-C', '2']]) {
    const child = spawn(process.execPath, ['dist/cli.js', 'bench', '--duration', '60', '--json', ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await sleep(1500);
    child.kill('SIGINT');
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(killer);
    assert.is(status, 0, extra.join(' '));
    const s = (JSON.parse(stdout) as Record<string, any>).summary;
    assert.ok(s.seconds > 0 && s.seconds < 20, `stopped early: ${s.seconds} s`);
    assert.ok(s.messages > 0);
  }
});

// ---------------------------------------------------------------- compare, the distribution, the SVG

test('bench compare: the change per metric, significance over --runs, one line for a bad file', async () => {
  const a = join(dir, 'a.json');
  const b = join(dir, 'b.json');
  const ra = await run(['bench', '--runs', '2', '--count', '300', '--json']);
  assert.is(ra.status, 0, ra.stderr);
  writeFileSync(a, ra.stdout);
  const rb = await run(['bench', '--runs', '2', '--count', '300', '--window', '1', '--json']);
  writeFileSync(b, rb.stdout);
  const c = await run(['bench', 'compare', a, b]);
  assert.is(c.status, 0, c.stderr);
  assert.match(c.stdout, /^a: echo 127\.0\.0\.1:\d+, 2 runs\nb: echo/);
  assert.match(c.stdout, /\nmessages\/s +[\d,.]+ +[\d,.]+ +[+-][\d.]+% +[\d.e-]+ +(yes|no)\n/);
  assert.match(c.stdout, /\nlatency p99 \(ms\) /);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"hello": 1}');
  const e = await run(['bench', 'compare', a, bad]);
  assert.is(e.status, 2);
  oneLine(e.stderr);
  assert.match(e.stderr, /is not a result of msgchannel bench --json/);
  const single = JSON.parse(ra.stdout) as Record<string, any>;
  single.runs = single.runs.slice(0, 1);
  writeFileSync(bad, JSON.stringify(single));
  const one = await run(['bench', 'compare', bad, b]);
  assert.match(one.stdout, /unknown \(needs --runs 2 or more on each side\)/);
});

test('the table ends with the latency distribution; --svg writes the percentile plot', async () => {
  const svg = join(dir, 'latency.svg');
  const r = await run(['bench', '--rate', '300', '--duration', '0.5', '--svg', svg]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /\nlatency distribution \(corrected\)\n( +<= [\d.,]+ ms +[\d.]+% .*\n){10}$/);
  const text = readFileSync(svg, 'utf8');
  assert.match(text, /^<svg /);
  assert.is(text.match(/<path /g)!.length, 2, 'corrected and uncorrected');
  const unwritable = await run(['bench', '--count', '10', '--svg', join(dir, 'no/such/dir.svg')]);
  assert.is(unwritable.status, 1);
  oneLine(unwritable.stderr);
  assert.match(unwritable.stderr, /^msgchannel: cannot write --svg /);
});

test('the suite leaves no process, socket or timer behind', async () => {
  rmSync(dir, { recursive: true, force: true });
  await sleep(50);
  assert.equal(openHandles(), []);
});

test.run();
