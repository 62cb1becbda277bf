// Runs the compiled uvu suites (.build/test) in one process and ends with a plain summary line.
import { spawnSync } from 'node:child_process';

const args = ['--enable-source-maps', 'node_modules/uvu/bin.js', '.build/test', '\\.test\\.js$', ...process.argv.slice(2)];
// A watchdog: a hung test fails the run instead of eating CI's time.
const r = spawnSync(process.execPath, args, {
  timeout: 15 * 60 * 1000,
  killSignal: 'SIGKILL', encoding: 'utf8', stdio: ['inherit', 'pipe', 'inherit'], env: process.stdout.isTTY ? process.env : { ...process.env, NODE_DISABLE_COLORS: '1' } });
process.stdout.write(r.stdout ?? '');
if (r.error) console.error(`test run stopped: ${r.error.message}`);
const total = Number(/Total:\s+(\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
const passed = Number(/Passed:\s+(\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
const skipped = Number(/Skipped:\s+(\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
console.log(`\ntests: ${passed} passed, ${total - passed} failed, ${skipped} skipped`);
process.exit(r.status === 0 && total > 0 && passed === total ? 0 : 1);
