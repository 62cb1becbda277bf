/**
 * The browser build (msgchannel/browser, dist/browser.js from src/browser/index.ts, bundled as
 * scripts/browser.mjs says): nothing of Node gets in (no `node:` or bare builtin import, no Buffer,
 * no process, no require), its size, minified and gzipped, stays under a budget (the figure is
 * printed for docs/websocket.md), and src/platform.browser.ts, which the build puts in place of
 * src/platform.ts, exports the same names with the same types.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as nodePlatform from '../../src/platform.js';
import * as browserPlatform from '../../src/platform.browser.js';

/** The build's options (scripts/browser.mjs, plain JS: typed here as what this test uses of it). */
const { browserBuildOptions } = (await import(pathToFileURL(join(process.cwd(), 'scripts', 'browser.mjs')).href)) as {
  browserBuildOptions: BuildOptions & { plugins: Plugin[] };
};

/** Gzipped size budgets of the minified bundle, in bytes: all of it, and what a page using only Channel and RequestChannel gets from a bundler that drops the rest. */
const GZIP_BUDGET = 20 * 1024;
const GZIP_BUDGET_CHANNEL = 8 * 1024;

const builtins = new Set(builtinModules);

/** Fails the build on any import of a Node builtin (`node:x` or a bare `fs`, `stream`, ...). */
const noNode: Plugin = {
  name: 'no-node',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      const bare = args.path.replace(/^node:/, '').split('/')[0]!;
      if (args.path.startsWith('node:') || builtins.has(bare)) {
        return { errors: [{ text: `${args.importer} imports ${args.path}, a Node builtin` }] };
      }
      return undefined;
    });
  },
};

/** The browser build minified, of the whole entry or of only the names `pick` exports from it. */
async function minified(pick?: string): Promise<string> {
  const entry =
    pick === undefined
      ? {}
      : {
          entryPoints: [],
          stdin: { contents: `export { ${pick} } from './src/browser/index.ts';`, resolveDir: process.cwd() },
        };
  const result = await build({
    ...browserBuildOptions,
    ...entry,
    minify: true,
    write: false,
    logLevel: 'silent',
    plugins: [...browserBuildOptions.plugins, noNode],
  });
  return result.outputFiles[0]!.text;
}

test('the browser entry bundles with no Node builtin import, no Buffer, process or require; its size is within budget', async () => {
  const code = await minified();
  for (const global of [/\bBuffer\b/, /\bprocess\./, /\brequire\(/, /["']node:/]) {
    assert.not.match(code, global, `the bundle mentions ${global}`);
  }
  const gzipped = gzipSync(code).length;
  const channelOnly = gzipSync(await minified('Channel, RequestChannel')).length;
  console.log(
    `browser bundle: ${code.length} bytes minified, ${gzipped} gzipped; Channel and RequestChannel alone ${channelOnly} gzipped`,
  );
  assert.ok(gzipped <= GZIP_BUDGET, `${gzipped} bytes gzipped, above the ${GZIP_BUDGET}-byte budget`);
  assert.ok(
    channelOnly <= GZIP_BUDGET_CHANNEL,
    `Channel and RequestChannel: ${channelOnly} bytes gzipped, above the ${GZIP_BUDGET_CHANNEL}-byte budget`,
  );
});

test('the shipped dist/browser.js is ESM without node: imports, and package.json exports it as msgchannel/browser', () => {
  const shipped = readFileSync('dist/browser.js', 'utf8');
  assert.not.match(shipped, /from\s*["']node:|import\(["']node:|\brequire\(/);
  assert.not.match(shipped, /\bBuffer\b/);
  assert.match(shipped, /export\s*\{/);
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, { default?: string }> };
  assert.is(pkg.exports['./browser']?.default, './dist/browser.js');
});

test("src/platform.browser.ts exports platform.ts's names, with types the compiler checks here", () => {
  const conforms: typeof nodePlatform = browserPlatform; // a missing name or another type fails tsc
  assert.equal(Object.keys(conforms).sort(), Object.keys(nodePlatform).sort());
  assert.is(browserPlatform.utf8Decode(browserPlatform.utf8Encode('héllo')), 'héllo');
  const msgpack = browserPlatform.msgpackLib();
  assert.equal(new msgpack.Decoder().decode(msgpack.encode({ a: 1 })), { a: 1 });
});

test.run();
