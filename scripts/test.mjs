// Runs the compiled uvu suites (.build/test) in one process, streaming its output, with a
// watchdog (a hung test fails the run instead of eating CI's time), and ends with a plain
// summary line: "tests: N passed, N failed, N skipped", followed by the reason of each skip (the
// lines `SKIP <suite>: <why and how to install it>` that testNeeding in test/peers.ts prints).
import { spawn } from 'node:child_process';

const WATCHDOG_MS = 15 * 60 * 1000;
const color = process.stdout.isTTY ? [] : ['--no-color'];
const args = [
  '--enable-source-maps',
  'node_modules/uvu/bin.js',
  '.build/test',
  '\\.test\\.js$',
  ...color,
  ...process.argv.slice(2),
];
const child = spawn(process.execPath, args, { stdio: ['inherit', 'pipe', 'inherit'] });
let out = '';
let partial = '';
const skips = [];
let lingering = false;
let grace;
child.stdout.setEncoding('utf8').on('data', (s) => {
  process.stdout.write(s);
  out = (out + s).slice(-4096); // the summary is at the end
  const lines = (partial + s).split('\n');
  partial = lines.pop();
  for (const line of lines) if (line.startsWith('SKIP ')) skips.push(line.slice(5));
  // uvu has printed its summary: the process should end now. One that a failed test left with an
  // open socket or timer would otherwise hang until the watchdog; give it 10 s, then end it.
  if (grace === undefined && /Duration:/.test(out)) {
    grace = setTimeout(() => {
      lingering = true;
      console.error('\nthe test process did not exit 10 s after its summary (a socket or timer was left open): ended');
      child.kill('SIGKILL');
    }, 10_000);
  }
});
const timer = setTimeout(() => {
  console.error(`\ntest run stopped by the watchdog after ${WATCHDOG_MS / 60000} min`);
  child.kill('SIGKILL');
}, WATCHDOG_MS);
child.on('close', (status) => {
  clearTimeout(timer);
  clearTimeout(grace);
  // eslint-disable-next-line no-control-regex -- strips ANSI color sequences, which start with ESC
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  console.log(`\ntests: ${passed} passed, ${total - passed} failed, ${skipped} skipped`);
  for (const why of skips) console.log(`  skipped ${why}`);
  process.exit(status === 0 && !lingering && total > 0 && passed === total ? 0 : 1);
});
