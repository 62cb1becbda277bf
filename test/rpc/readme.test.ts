/** The README's request/reply snippet runs as written: extracted from README.md, run against dist/ as 'msgchannel'. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

test('README "Request/reply" snippet prints what its comments say', () => {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('\n## Request/reply\n'));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'no ts block in the Request/reply section');
  // The snippet is plain JavaScript too (no type annotations), so it runs as an ES module; inside
  // the repository 'msgchannel' resolves to dist/ through the package's own exports.
  const dir = join('.build', 'readme');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'request-reply.mjs');
  writeFileSync(file, code!);
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.FORCE_COLOR; // console.log of numbers, as a terminal would print them
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 20_000, env });
  assert.is(r.status, 0, r.stderr);
  const expected = [...code!.matchAll(/console\.log\(.*?\);\s*\/\/ (.*)$/gm)].map((m) => m[1]!.trim());
  assert.equal(r.stdout.trim().split('\n'), expected);
});

test.run();
