// Resolves a mutation group's config (stryker/<group>.json) for Stryker: entries of `mutate` given by
// markers (`{ "file": F, "from": A, "to": B }`) become Stryker's `file:start-end` line ranges, so no
// config pins line numbers that drift with every edit. scripts/mutate.mjs uses it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

/** The group's config with marker entries resolved to line ranges, written under reports/: its path. */
export function resolveConfig(group) {
  const config = JSON.parse(readFileSync(`stryker/${group}.json`, 'utf8'));
  config.mutate = config.mutate.map((entry) => (typeof entry === 'string' ? entry : linesBetween(entry)));
  delete config.$schema;
  mkdirSync('reports/mutation', { recursive: true });
  const path = `reports/mutation/${group}.config.json`;
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

/** `{ file, from, to }` -> `file:start-end` (1-based, inclusive), from the lines holding the markers. */
export function linesBetween({ file, from, to }) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const lineOf = (marker) => {
    const found = lines.flatMap((line, i) => (line.includes(marker) ? [i + 1] : []));
    if (found.length !== 1)
      throw new Error(`marker ${JSON.stringify(marker)} occurs on ${found.length} lines of ${file}, not 1`);
    return found[0];
  };
  const start = lineOf(from);
  const end = to === undefined ? lines.length : lineOf(to) - 1;
  if (end < start) throw new Error(`marker ${JSON.stringify(to)} comes before ${JSON.stringify(from)} in ${file}`);
  return `${file}:${start}-${end}`;
}
