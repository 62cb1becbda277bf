// `npm run mutate [group ...]`: mutation testing with StrykerJS's command runner (uvu has no
// plugin). Each group mutates one part of the library and runs only the fast suites that cover it
// (stryker/<group>.json), so a run fits a 2-core machine: decoders, auth, channel, client, reader.
// Reports: reports/mutation/<group>.{json,html}. Exits non-zero when a group's score is below its
// config's thresholds.break. CI (.ci/run) runs the auth, reader and client groups; docs/mutation.md
// says why the others are not, and lists the equivalent mutants; the README's "Mutation scores" has
// the numbers.
//
// A group that mutates part of a file names it by markers, never by line numbers (which drift with
// every edit): an entry of `mutate` may be `{ "file": F, "from": A, "to": B }`, where A and B are
// strings that each occur on exactly one line of F (section comments such as `// ---- sending`);
// it selects the lines from A's up to the line before B's (to the end of the file without `to`).
// The runner resolves these into Stryker's `file:start-end` form in a generated config.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { resolveConfig } from './mutation-config.mjs';

const all = readdirSync('stryker')
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -5));
const groups = process.argv.slice(2).length > 0 ? process.argv.slice(2) : all;
let status = 0;
for (const group of groups) {
  if (!all.includes(group)) {
    console.error(`no such group: ${group} (have: ${all.join(', ')})`);
    process.exit(2);
  }
  console.log(`\n== mutation testing: ${group}`);
  let config;
  try {
    config = resolveConfig(group);
  } catch (error) {
    console.error(`stryker/${group}.json: ${error.message}`);
    process.exit(2);
  }
  const r = spawnSync(process.execPath, ['node_modules/@stryker-mutator/core/bin/stryker.js', 'run', config], {
    stdio: 'inherit',
  });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
