// `node scripts/uvu-strict.mjs <pattern> [<pattern> ...]`: runs the compiled suites of .build/test
// matching each pattern in turn with `uvu --bail`, stopping at the first failing run, and fails
// when uvu's summary counts a test that did not pass even though uvu exited 0. uvu does that when
// a test throws (or rejects with) `undefined` or `null`: its error formatter throws on them, and
// the run ends "Passed: 0 of 2" with exit status 0. A mutant that makes a promise reject with
// undefined would then survive a command that trusts uvu's exit status alone, as Stryker's command
// runner does. scripts/test.mjs checks the summary the same way for `npm test`.
import { spawnSync } from 'node:child_process';

const patterns = process.argv.slice(2);
if (patterns.length === 0) {
  console.error('usage: node scripts/uvu-strict.mjs <pattern> [<pattern> ...]');
  process.exit(2);
}
for (const pattern of patterns) {
  const r = spawnSync(process.execPath, ['node_modules/uvu/bin.js', '.build/test', pattern, '--bail', '--no-color'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stdout.write(r.stdout ?? '');
  const total = Number(/Total:\s+(\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
  const passed = Number(/Passed:\s+(\d+)/.exec(r.stdout ?? '')?.[1] ?? -1);
  if (r.status !== 0 || total === 0 || passed !== total) {
    console.error(`uvu-strict: ${pattern}: exit ${r.status ?? r.signal}, ${passed} of ${total} tests passed`);
    process.exit(1);
  }
}
