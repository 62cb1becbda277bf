// Builds dist/ (esbuild for the JS, tsc for the declarations) and, with --tests, the test files
// into .build/test so uvu can run them. Dependencies stay external: the package imports them.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';

function tsc(...args) {
  try {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', ...args], { stdio: 'inherit' });
  } catch {
    console.error('tsc failed (see above)');
    process.exit(1);
  }
}
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const tests = process.argv.includes('--tests');
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', sourcemap: true, logLevel: 'warning' };

function walk(dir, match) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p, match));
    else if (match(p)) out.push(p);
  }
  return out;
}

rmSync('dist', { recursive: true, force: true });
const examples = (() => { try { return walk('examples', (p) => p.endsWith('.ts')); } catch { return []; } })();
await build({ ...common, entryPoints: ['channel.ts'], outfile: 'dist/channel.js' });
if (examples.length) {
  // Examples import the package entry; bundle them against dist so they run as users would.
  await build({ ...common, entryPoints: examples, outdir: 'dist/examples', outbase: 'examples' });
}
tsc('-p', 'tsconfig.build.json');

if (tests) {
  rmSync('.build', { recursive: true, force: true });
  const files = walk('test', (p) => p.endsWith('.test.ts'));
  await build({ ...common, entryPoints: files, outdir: '.build/test', outbase: 'test' });
  // Type-check the whole project, tests included: a type error fails `npm test`.
  tsc('--noEmit', '-p', 'tsconfig.json');
}
