/**
 * The structure docs/architecture.md describes, checked on the sources with the TypeScript parser:
 * no value-import cycle, imports point down the layers only, nothing imports the package entry,
 * the entry holds no logic, and no source file grows past 800 lines.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import ts from 'typescript';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const repo = process.cwd();

function walk(dir: string, ext = /\.ts$/): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p, ext) : ext.test(p) ? [p] : [];
  });
}

const files = ['channel.ts', ...walk(join(repo, 'src')).map((p) => relative(repo, p))];

interface Edge {
  to: string;
  /** Erased at run time (`import type`, or every name type-only). */
  typeOnly: boolean;
}

/** The relative imports and re-exports of a file, resolved to repository paths. */
function importsOf(file: string): Edge[] {
  const text = readFileSync(join(repo, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const edges: Edge[] = [];
  for (const node of sf.statements) {
    let spec: ts.Expression | undefined;
    let typeOnly = false;
    if (ts.isImportDeclaration(node)) {
      spec = node.moduleSpecifier;
      const clause = node.importClause;
      if (clause) {
        const named = clause.namedBindings;
        typeOnly =
          clause.isTypeOnly ||
          (clause.name === undefined &&
            named !== undefined &&
            ts.isNamedImports(named) &&
            named.elements.length > 0 &&
            named.elements.every((e) => e.isTypeOnly));
      }
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      spec = node.moduleSpecifier;
      const clause = node.exportClause;
      typeOnly =
        node.isTypeOnly ||
        (clause !== undefined && ts.isNamedExports(clause) && clause.elements.every((e) => e.isTypeOnly));
    }
    if (spec && ts.isStringLiteral(spec) && spec.text.startsWith('.')) {
      const to = normalize(join(dirname(file), spec.text)).replace(/\.js$/, '.ts');
      edges.push({ to, typeOnly });
    }
  }
  return edges;
}

const graph = new Map(files.map((f) => [f, importsOf(f)]));

/** The layers, lowest first: a module may import only its own layer or lower ones. */
const LAYERS: [RegExp, number][] = [
  [/^src\/(errors|validate|util|report|platform|platform\.browser)\.ts$/, 0],
  [/^src\/framing\//, 1],
  [/^src\/auth\.ts$/, 1],
  [/^src\/core\//, 2],
  [/^src\/session\//, 2],
  [/^src\/ws\//, 2],
  [/^src\/typed\//, 3],
  [/^src\/rpc\//, 3],
  [/^src\/peer\//, 4],
  [/^channel\.ts$/, 5],
  [/^src\/browser\//, 5],
  [/^src\/cli\//, 6],
];
function layerOf(file: string): number {
  const hit = LAYERS.find(([re]) => re.test(file));
  if (!hit) throw new Error(`${file} belongs to no layer: add it to LAYERS (and docs/architecture.md)`);
  return hit[1];
}

test('every import resolves to a source file', () => {
  for (const [file, edges] of graph) {
    for (const e of edges) assert.ok(graph.has(e.to), `${file} imports ${e.to}, which is not a source file`);
  }
});

test('no value-import cycle among the sources', () => {
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'active');
    stack.push(f);
    for (const e of graph.get(f) ?? []) {
      if (e.typeOnly) continue;
      const s = state.get(e.to);
      if (s === 'active') cycles.push([...stack.slice(stack.indexOf(e.to)), e.to].join(' -> '));
      else if (s === undefined) visit(e.to);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.equal(cycles, [], `import cycles:\n${cycles.join('\n')}`);
});

test('imports point down the layers only (type imports included)', () => {
  const up: string[] = [];
  for (const [file, edges] of graph) {
    for (const e of edges) if (layerOf(e.to) > layerOf(file)) up.push(`${file} -> ${e.to}`);
  }
  assert.equal(up, []);
});

test('no library module imports the entry; the CLI uses the library only through it', () => {
  for (const [file, edges] of graph) {
    const targets = edges.map((e) => e.to);
    if (file.startsWith('src/cli/')) {
      for (const t of targets)
        assert.ok(
          t === 'channel.ts' || t.startsWith('src/cli/'),
          `${file} imports ${t}: the CLI goes through the public entry`,
        );
    } else {
      assert.not.ok(targets.includes('channel.ts'), `${file} imports the package entry`);
    }
  }
});

test('the entry holds no logic: named re-exports only', () => {
  const sf = ts.createSourceFile(
    'channel.ts',
    readFileSync(join(repo, 'channel.ts'), 'utf8'),
    ts.ScriptTarget.ES2022,
    false,
    ts.ScriptKind.TS,
  );
  for (const node of sf.statements) {
    assert.ok(
      ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined,
      `channel.ts: ${ts.SyntaxKind[node.kind]} is not a re-export`,
    );
    assert.ok(node.exportClause !== undefined, 'channel.ts: no `export *`; name what the package exports');
  }
});

test('no source file is over 800 lines', () => {
  for (const f of files) {
    const lines = readFileSync(join(repo, f), 'utf8').split('\n').length;
    assert.ok(lines <= 800, `${f} has ${lines} lines`);
  }
});

test('no comment names a path outside the repository', () => {
  for (const f of [...files, ...walk(join(repo, 'test'), /\.(ts|py)$/).map((p) => relative(repo, p))]) {
    const text = readFileSync(join(repo, f), 'utf8');
    assert.not.match(text, /\/work\/|\.\.\/shared\//, `${f} names a path outside the repository`);
  }
});

test.run();
