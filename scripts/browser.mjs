// The browser build of msgchannel/browser (dist/browser.js), shared by scripts/build.mjs and
// test/browser/bundle.test.ts so both bundle the same thing: src/browser/index.ts as one ES module
// for web pages, with src/platform.browser.ts in place of src/platform.ts (Node's warnings,
// setImmediate, Buffer and lazily loaded msgpack; see src/platform.ts), and @msgpack/msgpack
// bundled in from its ES module build.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
const nodePlatform = join(src, 'platform.js');

/** Resolves the shared code's `platform.js` imports to the browser's platform module. */
export const browserPlatform = {
  name: 'browser-platform',
  setup(build) {
    build.onResolve({ filter: /\/platform\.js$/ }, (args) =>
      resolve(dirname(args.importer), args.path) === nodePlatform
        ? { path: join(src, 'platform.browser.ts') }
        : undefined,
    );
  },
};

/** esbuild options of the browser bundle (add outfile/write, minify, more plugins). */
export const browserBuildOptions = {
  entryPoints: [join(src, 'browser', 'index.ts')],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  mainFields: ['module', 'main'],
  plugins: [browserPlatform],
};
