// Runs the core test suites (compiled in .build/ by `npm test`) under Bun and Deno, as CI does
// after `npm test`: `npm install --prefix .runtimes bun deno` puts them in .runtimes/ (CI only;
// nothing in the package depends on them). Ends with "runtimes: N passed, N failed, N skipped".
// A runtime that is not installed is skipped, or fails under MSGCHANNEL_STRICT_PEERS=1 (CI).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The core suites: Channel, every framing, the typed layer, Server/Client, request/reply, hardening. */
const SUITES = [
  'core/channel',
  'framing/msg',
  'framing/lengthPrefixed',
  'framing/tinyproto',
  'framing/pythonConnection',
  'framing/limits',
  'property/decoders',
  'property/cases',
  'peer/server',
  'typed/protocol',
  'typed/typedChannel',
  'typed/packetmq',
  'typed/types',
  'core/receive',
  'core/recycle',
  'rpc/envelope',
  'rpc/request',
  'hardening/hostile',
  'hardening/faults',
  'hardening/tinyproto',
  'hardening/budget',
  'hardening/tls',
];
/** Suites left out on a runtime, and why (the README's Runtimes section says the same). */
const LEFT_OUT = {
  deno: {
    'hardening/hostile':
      "Deno reports a connection refused at the limit (a TCP reset) as a failed connect, where the suite's raw client expects a reset after connect",
  },
};
const RUNTIMES = {
  bun: (file) => ['bun', [file]],
  deno: (file) => ['deno', ['run', '-A', file]],
};
const strict = process.env.MSGCHANNEL_STRICT_PEERS === '1';
let passed = 0;
let failed = 0;
let skipped = 0;
for (const [name, command] of Object.entries(RUNTIMES)) {
  const bin = join('.runtimes', 'node_modules', '.bin', name);
  if (!existsSync(bin)) {
    const why = `${name} is not installed in .runtimes/ (npm install --prefix .runtimes bun deno)`;
    if (strict) {
      console.log(`FAIL ${name}: ${why}`);
      failed++;
    } else {
      console.log(`SKIP ${name}: ${why}`);
      skipped++;
    }
    continue;
  }
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
  for (const suite of SUITES) {
    const why = LEFT_OUT[name]?.[suite];
    if (why) {
      console.log(`skip ${name} ${suite}: ${why}`);
      continue;
    }
    const [, args] = command(join('.build', 'test', `${suite}.test.js`));
    const r = spawnSync(bin, args, {
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    // eslint-disable-next-line no-control-regex -- strips ANSI color sequences, which start with ESC
    const out = `${r.stdout}${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
    const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
    const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
    const good = r.status === 0 && total > 0 && ok === total;
    console.log(`${good ? 'ok  ' : 'FAIL'} ${name} (${version}) ${suite}: ${ok}/${total}`);
    // A failure's title, its message (the line after it) and any error line, enough to tell why.
    if (!good) {
      const lines = out.split('\n');
      const shown = lines.filter((l, i) => /FAIL|Error|expected/i.test(l) || /FAIL/.test(lines[i - 1] ?? ''));
      console.log(shown.slice(0, 30).join('\n'));
    }
    passed += ok;
    failed += total - ok + (good || total > ok ? 0 : 1);
  }
}
console.log(`\nruntimes: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
