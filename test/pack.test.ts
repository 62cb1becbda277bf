/**
 * Packaging: `npm pack`, install the tarball into an empty project (offline, from the npm cache
 * `npm ci` filled), then ESM import, CommonJS require, the `msgchannel` bin, and the types under
 * tsc with moduleResolution node16 (ESM and CJS files) and bundler.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const repo = process.cwd();
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function sh(cmd: string, args: string[], cwd: string, timeout = 30_000): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    timeout,
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_loglevel: 'error' },
  });
  if (r.error) throw r.error;
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.is(r.status, 0, `${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const ROUND_TRIP = (load: string): string => `${load}
const [a, b] = Channel.pair({ framing: ltprotocol() });
a.send('hi', { type: 2 }).then(() => b.recvFrame()).then(async (f) => {
  console.log(f.type, String(f.data), new ProtocolError('x').code);
  await a.close(); await b.close();
});
`;

test('npm pack installs in an empty folder: import, require, bin, and types under node16 and bundler', () => {
  const dir = mkdtempSync(join(tmpdir(), 'msgchannel-pack-'));
  try {
    // Pack a snapshot of the package: dist/ is shared, and another build may be rewriting it.
    const stage = join(dir, 'stage');
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { files: string[] };
    for (const f of ['package.json', ...pkg.files]) cpSync(join(repo, f), join(stage, f), { recursive: true });
    for (const f of ['channel.js', 'channel.cjs', 'channel.d.ts', 'channel.d.cts', 'cli.js']) {
      assert.ok(existsSync(join(stage, 'dist', f)), `dist/${f} is built`);
    }
    ok(sh(npm, ['pack', '--ignore-scripts', '--pack-destination', dir], stage), 'npm pack');
    const tarball = resolve(
      dir,
      readdirSync(dir).find((f) => f.endsWith('.tgz'))!,
    );
    const app = join(dir, 'app');
    sh('mkdir', ['-p', app], dir);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    const install = ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', tarball];
    // Offline first (the dependencies are in the cache after `npm ci`); the registry only if not.
    let r = sh(npm, ['--offline', ...install], app, 45_000);
    if (r.status !== 0) r = sh(npm, ['--prefer-offline', ...install], app, 45_000);
    ok(r, 'npm install of the tarball');

    writeFileSync(join(app, 'esm.mjs'), ROUND_TRIP(`import { Channel, ltprotocol, ProtocolError } from 'msgchannel';`));
    writeFileSync(
      join(app, 'cjs.cjs'),
      ROUND_TRIP(`const { Channel, ltprotocol, ProtocolError } = require('msgchannel');`),
    );
    assert.is(ok(sh(process.execPath, ['esm.mjs'], app), 'ESM import'), '2 hi ERR_PROTOCOL\n');
    assert.is(ok(sh(process.execPath, ['cjs.cjs'], app), 'CommonJS require'), '2 hi ERR_PROTOCOL\n');
    // require(esm) must not be what makes it work: the CJS build stands alone.
    assert.is(
      ok(sh(process.execPath, ['--no-experimental-require-module', 'cjs.cjs'], app), 'require without require(esm)'),
      '2 hi ERR_PROTOCOL\n',
    );
    assert.match(
      ok(sh(join(app, 'node_modules', '.bin', 'msgchannel'), ['--help'], app), 'the msgchannel bin'),
      /Examples:/,
    );

    // The CLI uses the package's own module: no copy of the library inside it, and every import
    // that leaves src/cli/ goes to the package entry.
    const pkgDir = join(app, 'node_modules', 'msgchannel', 'dist');
    const cliFiles = [
      'cli.js',
      ...readdirSync(join(pkgDir, 'src', 'cli'), { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.js'))
        .map((f) => join('src', 'cli', f)),
    ];
    assert.ok(cliFiles.length > 2, 'the CLI modules are in the package');
    for (const f of cliFiles) {
      const code = readFileSync(join(pkgDir, f), 'utf8');
      assert.not.match(code, /class (Channel|Listener)\b/, `${f} carries no copy of the library`);
      for (const [, spec] of code.matchAll(/from\s+['"](\.[^'"]+)['"]/g)) {
        const target = resolve(dirname(join(pkgDir, f)), spec!);
        if (!target.startsWith(join(pkgDir, 'src', 'cli')))
          assert.is(target, join(pkgDir, 'channel.js'), `${f} imports the library only through the entry`);
      }
    }
    assert.match(readFileSync(join(pkgDir, 'cli.js'), 'utf8'), /import '\.\/src\/cli\/main\.js'/);

    // The packed README's relative links (docs, SECURITY.md, the bench's README, figures and
    // chart) resolve to files in the tarball; the license ships with it.
    const installed = join(app, 'node_modules', 'msgchannel');
    assert.ok(existsSync(join(installed, 'LICENSE')), 'LICENSE is in the package');
    const prose = readFileSync(join(installed, 'README.md'), 'utf8')
      .replace(/```[\s\S]*?```/g, '')
      .replace(/`[^`\n]*`/g, '');
    const links = [...prose.matchAll(/\]\(([^)\s]+)\)|\bsrc="([^"]+)"/g)].map((m) => (m[1] ?? m[2])!);
    const relative = links
      .filter((l) => !/^(#|[a-z][a-z0-9+.-]*:)/i.test(l))
      .map((l) => decodeURIComponent(l.split('#')[0]!));
    assert.ok(relative.length >= 8, `relative links found: ${relative.join(', ')}`);
    for (const l of relative)
      assert.ok(existsSync(join(installed, l)), `README links to ${l}, which is not in the package`);
    assert.not.ok(existsSync(join(installed, 'bench', 'run.mjs')), 'the bench code is not shipped');

    // Error classes are branded: instanceof holds across the ESM and CommonJS copies, both ways.
    writeFileSync(
      join(app, 'brand.mjs'),
      `import { createRequire } from 'node:module';
import * as esm from 'msgchannel';
const cjs = createRequire(import.meta.url)('msgchannel');
console.log([
  esm.ProtocolError !== cjs.ProtocolError,
  new cjs.ProtocolError('x') instanceof esm.ProtocolError,
  new esm.ConnectionRefusedError() instanceof cjs.ProtocolError,
  new cjs.TimeoutError() instanceof esm.MsgChannelError,
  new cjs.TimeoutError() instanceof esm.ProtocolError,
  new Error('x') instanceof esm.MsgChannelError,
].join(' '));
`,
    );
    assert.is(
      ok(sh(process.execPath, ['brand.mjs'], app), 'instanceof across builds'),
      'true true true true false false\n',
    );
    // The ESM entry is one file, and what only some users need loads at first use: importing the
    // package loads neither @msgpack/msgpack nor node:tls nor node:crypto; the msgpack codec and a
    // TLS connect load theirs (both builds).
    assert.not.match(
      readFileSync(join(pkgDir, 'channel.js'), 'utf8'),
      /(from|import)\s*\(?\s*['"]\.\.?\//,
      'dist/channel.js imports no file of its own',
    );
    const lazy = (load: string): string => `${load}
import { createRequire } from 'node:module';
const cache = createRequire(process.cwd() + '/x.js').cache;
const loaded = () => [Object.keys(cache).some((k) => k.includes('@msgpack')), process.moduleLoadList.includes('NativeModule tls'), process.moduleLoadList.includes('NativeModule crypto')].join(' ');
const before = loaded();
const codec = m.msgpack();
const value = codec.unpack(Buffer.from(codec.pack({ a: [1, 'x'] })));
const afterCodec = loaded();
await m.Channel.connect('127.0.0.1', 1, { tls: true, timeout: 2000 }).catch(() => {});
console.log(before, '|', afterCodec, '|', loaded(), '|', JSON.stringify(value));
`;
    writeFileSync(join(app, 'lazy.mjs'), lazy(`const m = await import('msgchannel');`));
    writeFileSync(
      join(app, 'lazy-cjs.mjs'),
      lazy(`const m = (await import('node:module')).createRequire(process.cwd() + '/x.js')('msgchannel');`),
    );
    const want = 'false false false | true false false | true true true | {"a":[1,"x"]}\n';
    assert.is(ok(sh(process.execPath, ['lazy.mjs'], app), 'lazy loading (ESM)'), want);
    assert.is(ok(sh(process.execPath, ['lazy-cjs.mjs'], app), 'lazy loading (CommonJS)'), want);

    // @internal members are not in the shipped declarations.
    const serverTypes = readFileSync(join(pkgDir, 'src', 'peer', 'server.d.ts'), 'utf8');
    assert.ok(serverTypes.includes('class Connection'), 'server.d.ts declares Connection');
    assert.not.ok(/stopReading|stopSignal/.test(serverTypes), 'no @internal member in the declarations');

    const use = `import { Channel, lengthPrefixed, type Framing, type ChannelOptions, MessageTooLargeError } from 'msgchannel';
export async function f(): Promise<string> {
  const framing: Framing = lengthPrefixed({ lengthSize: 2 });
  const options: ChannelOptions = { framing, maxMessageSize: 1024 };
  const [a, b] = Channel.pair(options);
  await a.send('x');
  const m: Buffer = await b.recv();
  // @ts-expect-error send takes bytes or a string
  await a.send(42);
  return m.toString() + String(new MessageTooLargeError(1, 0, 'send').size);
}
`;
    writeFileSync(join(app, 'esm.mts'), use);
    writeFileSync(join(app, 'cjs.cts'), use);
    writeFileSync(join(app, 'bundler.ts'), use);
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const common = [
      '--noEmit',
      '--strict',
      '--skipLibCheck',
      'false',
      '--target',
      'es2022',
      '--lib',
      'es2023,esnext.disposable',
      '--types',
      'node',
      '--typeRoots',
      join(repo, 'node_modules', '@types'),
    ];
    ok(
      sh(
        process.execPath,
        [tsc, ...common, '--module', 'node16', '--moduleResolution', 'node16', 'esm.mts', 'cjs.cts'],
        app,
        45_000,
      ),
      'tsc node16',
    );
    ok(
      sh(
        process.execPath,
        [tsc, ...common, '--module', 'esnext', '--moduleResolution', 'bundler', 'bundler.ts'],
        app,
        45_000,
      ),
      'tsc bundler',
    );
    // And the CJS file really resolved the CommonJS declarations.
    const trace = sh(
      process.execPath,
      [tsc, ...common, '--module', 'node16', '--moduleResolution', 'node16', '--traceResolution', 'cjs.cts'],
      app,
      45_000,
    );
    assert.match(trace.stdout, /'msgchannel' was successfully resolved to '[^']*channel\.d\.cts'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
