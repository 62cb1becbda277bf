/**
 * Every ```ts / ```js block of README.md and docs/*.md runs as written, as a program of its own,
 * and ends by itself with exit code 0.
 *
 * A block that cannot run alone (a fragment of a larger program, or one that needs a peer outside
 * this repository, such as a Python server) is preceded by a marker naming why:
 *
 *     <!-- not run: needs a tinyproto server on port 9123 -->
 *
 * Each block is transpiled with esbuild (TypeScript syntax, `await using` lowered for Node 20) to
 * an ES module under .build/docs, where `import ... from 'msgchannel'` resolves to dist/ through the
 * package's own exports, as the examples and users' code load it. Needs `npm run build` (dist/).
 *
 * A block in which every console.log line ends with a `// comment` must print exactly those
 * comments, one line each (the README's Request/reply block, the pair and framing examples).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

interface Block {
  file: string;
  line: number; // 1-based line of the opening fence
  code: string;
  notRun?: string; // the marker's reason
}

const MARKER = /^<!--\s*not run:\s*(.*?)\s*-->$/;

function codeBlocks(file: string): Block[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (!['ts', 'js', 'typescript', 'javascript', 'mts', 'mjs'].includes(open[2]!)) continue;
    let prev = start - 1;
    while (prev >= 0 && lines[prev]!.trim() === '') prev--;
    const marker = prev >= 0 ? MARKER.exec(lines[prev]!.trim()) : null;
    blocks.push({ file, line: start + 1, code: body.join('\n') + '\n', notRun: marker?.[1] });
  }
  return blocks;
}

const files = [
  'README.md',
  ...readdirSync('docs')
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => join('docs', f)),
];
const blocks = files.flatMap(codeBlocks);
const dir = join('.build', 'docs');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
delete env.FORCE_COLOR; // console.log of numbers, as a terminal would print them
delete env.NODE_OPTIONS;

function run(block: Block): { status: number | null; stdout: string; stderr: string } {
  const js = transformSync(block.code, {
    loader: 'ts',
    format: 'esm',
    target: 'node20',
    sourcefile: `${block.file}:${block.line}`,
  }).code;
  const file = join(dir, `${block.file.replace(/[/.]/g, '_')}-${block.line}.mjs`);
  writeFileSync(file, js);
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 15_000, env, killSignal: 'SIGKILL' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr + (r.error ? `\n${r.error.message}` : '') };
}

test('every block is found and every marker gives its reason', () => {
  assert.ok(blocks.length >= 20, `only ${blocks.length} blocks found`);
  for (const b of blocks)
    if (b.notRun !== undefined) assert.ok(b.notRun.length > 8, `${b.file}:${b.line}: a marker without a reason`);
  const marked = blocks.filter((b) => b.notRun !== undefined).length;
  console.log(`docs snippets: ${blocks.length - marked} run, ${marked} marked not run`);
});

for (const block of blocks) {
  if (block.notRun !== undefined) continue;
  test(`${block.file}:${block.line} runs and ends by itself`, () => {
    const r = run(block);
    assert.is(r.status, 0, `exit ${r.status}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    // A block whose every console.log carries a `// expected output` comment prints exactly that.
    const logs = [...block.code.matchAll(/^.*console\.log\(.*$/gm)].map((m) => m[0]);
    const expected = logs.map((l) => /console\.log\(.*?\);\s*\/\/ (.*)$/.exec(l)?.[1]?.trim());
    if (logs.length > 0 && expected.every((e) => e !== undefined)) assert.equal(r.stdout.trim().split('\n'), expected);
  });
}

test.run();
