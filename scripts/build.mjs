// Builds dist/ and, with --tests, .build/ for the test suites.
// - dist/: the library as two bundles of channel.ts, dist/channel.js (ESM) and dist/channel.cjs
//   (CommonJS, for require('msgchannel'); p-queue is ESM-only, so it is bundled in there). One
//   file rather than the module graph: under Node 20 each ES module file costs memory, and the
//   graph of ~40 files took about 5 MiB more RSS to import than the same code bundled. tsc writes
//   the declarations file by file (dist/channel.d.ts and dist/src/**). The CLI (src/cli/) is
//   transpiled file by file; dist/cli.js starts it, and it imports the package entry
//   (dist/channel.js), never a copy.
// - .build/: the library and the tests transpiled file by file, so the suites run on one module
//   graph (one Channel class, shared by every suite), not per-suite bundles; test/pack.test.ts
//   checks the shipped bundles.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { browserBuildOptions } from './browser.mjs';

const tests = process.argv.includes('--tests');
/** Mutation testing's build: only the per-file transpile of the library and tests into .build/ (no dist/, no tsc). */
const transpileOnly = process.argv.includes('--transpile-only');
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const common = {
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  define: { __VERSION__: JSON.stringify(pkg.version) },
};
/** Transpile each file on its own: imports stay as written ('./x.js'), so the output graph is the source graph. */
const transpile = (entryPoints, outdir) =>
  build({ ...common, bundle: false, format: 'esm', entryPoints, outdir, outbase: '.' });

function tsc(...args) {
  try {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', ...args], { stdio: 'inherit' });
  } catch {
    console.error('tsc failed (see above)');
    process.exit(1);
  }
}

function walk(dir, match) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p, match));
    else if (match(p)) out.push(p);
  }
  return out;
}

const ts = (p) => p.endsWith('.ts') && !p.endsWith('.d.ts');
const library = ['channel.ts', ...walk('src', ts)];

if (transpileOnly) {
  rmSync('.build', { recursive: true, force: true });
  await transpile([...library, ...walk('test', ts)], '.build');
  process.exit(0);
}

rmSync('dist', { recursive: true, force: true });
// The ESM entry: the library in one file; its dependencies stay packages of their own.
await build({
  ...common,
  bundle: true,
  format: 'esm',
  packages: 'external',
  entryPoints: ['channel.ts'],
  outfile: 'dist/channel.js',
});
// The browser entry (msgchannel/browser, src/browser/): one ESM file for web pages, with no node:
// import and no Buffer (test/browser/bundle.test.ts checks both and measures its size); the shared
// code's platform.ts is the browser's there (scripts/browser.mjs).
await build({
  ...common,
  ...browserBuildOptions,
  outfile: 'dist/browser.js',
});
await transpile(walk('src/cli', ts), 'dist');
// CommonJS, for require('msgchannel') on every Node >= 20: p-queue (and its dependencies) are
// ESM-only, so they are bundled in; @msgpack/msgpack ships CommonJS and stays a dependency.
// Its error classes are a second copy; they are branded (src/errors.ts), so instanceof holds across.
// import.meta.url (src/util.ts's lazyRequire) is this file's URL, from a banner.
await build({
  ...common,
  bundle: true,
  format: 'cjs',
  external: ['@msgpack/msgpack'],
  entryPoints: ['channel.ts'],
  outfile: 'dist/channel.cjs',
  define: { ...common.define, 'import.meta.url': '__msgchannelModuleUrl' },
  banner: { js: "const __msgchannelModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
writeFileSync(
  'dist/cli.js',
  "#!/usr/bin/env node\n// The `msgchannel` command: src/cli/, which imports the package entry (./channel.js).\nimport './src/cli/main.js';\n",
);
chmodSync('dist/cli.js', 0o755);
const examples = (() => {
  try {
    return walk('examples', ts);
  } catch {
    return [];
  }
})();
if (examples.length) {
  // Examples import 'msgchannel' (the package by name); they run against dist as users' code would.
  await build({
    ...common,
    bundle: true,
    format: 'esm',
    packages: 'external',
    entryPoints: examples,
    outdir: 'dist/examples',
    outbase: 'examples',
  });
}
tsc('-p', 'tsconfig.build.json');
// CommonJS declarations: the same tree as .d.cts files importing each other, for `require` users.
for (const file of walk('dist', (p) => p.endsWith('.d.ts'))) {
  const text = readFileSync(file, 'utf8').replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]*)\.js\2/g, '$1$2$3.cjs$2');
  writeFileSync(file.replace(/\.d\.ts$/, '.d.cts'), text);
}

if (tests) {
  rmSync('.build', { recursive: true, force: true });
  await transpile([...library, ...walk('test', ts)], '.build');
  // Type-check the whole project, tests included: a type error fails `npm test`.
  tsc('--noEmit', '-p', 'tsconfig.json');
}
