/** The built package, imported by name from another folder, as a user would after install. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

test('import { Channel } from "msgchannel" works from another folder after the build', () => {
  const dir = mkdtempSync(join(tmpdir(), 'msgchannel-user-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(process.cwd(), join(dir, 'node_modules', 'msgchannel'), 'dir');
    writeFileSync(
      join(dir, 'main.mjs'),
      `import { Channel, ChannelClosedError } from 'msgchannel';
const listener = Channel.listen('127.0.0.1', 0);
const { port } = await listener.listening;
(async () => { for await (const ch of listener) (async () => { for await (const m of ch) await ch.send(m); })(); })();
const ch = await Channel.connect('127.0.0.1', port);
await ch.send('Hello World');
console.log((await ch.recv()).toString(), typeof ChannelClosedError);
await ch.close();
await listener.close();
`,
    );
    const r = spawnSync(process.execPath, ['main.mjs'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
      env: { PATH: process.env.PATH },
    });
    assert.is(r.stderr, '');
    assert.is(r.stdout, 'Hello World function\n');
    assert.is(r.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
