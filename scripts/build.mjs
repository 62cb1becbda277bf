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
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
// CommonJS, for require('msgchannel') on every Node >= 20: p-queue (and its dependencies) are
// ESM-only, so they are bundled in; @msgpack/msgpack ships CommonJS and stays a dependency.
await build({ ...common, packages: undefined, external: ['@msgpack/msgpack'], format: 'cjs', entryPoints: ['channel.ts'], outfile: 'dist/channel.cjs' });
// The CLI imports the package entry, which stays a separate file (dist/channel.js), not a second copy.
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
await build({
  ...common,
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli.js',
  define: { __VERSION__: JSON.stringify(pkg.version) },
  plugins: [{ name: 'entry', setup: (b) => b.onResolve({ filter: /^(?:\.\.\/)+channel\.js$/ }, (a) => (join(a.resolveDir, a.path) === join(process.cwd(), 'channel.js') ? { path: './channel.js', external: true } : undefined)) }],
});
chmodSync('dist/cli.js', 0o755);
if (examples.length) {
  // Examples import the package entry; bundle them against dist so they run as users would.
  await build({ ...common, entryPoints: examples, outdir: 'dist/examples', outbase: 'examples' });
}
tsc('-p', 'tsconfig.build.json');
// CommonJS declarations: the same tree as .d.cts files importing each other, for `require` users.
for (const file of walk('dist', (p) => p.endsWith('.d.ts'))) {
  const text = readFileSync(file, 'utf8').replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]*)\.js\2/g, '$1$2$3.cjs$2');
  writeFileSync(file.replace(/\.d\.ts$/, '.d.cts'), text);
}

if (tests) {
  rmSync('.build', { recursive: true, force: true });
  const files = walk('test', (p) => p.endsWith('.test.ts'));
  await build({ ...common, entryPoints: files, outdir: '.build/test', outbase: 'test' });
  // Type-check the whole project, tests included: a type error fails `npm test`.
  tsc('--noEmit', '-p', 'tsconfig.json');
}
