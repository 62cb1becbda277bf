/**
 * Tests that need something from outside the project (openssl, python3 or a Python module): they
 * are skipped where it is missing, saying what to install, or fail under MSGCHANNEL_STRICT_PEERS=1.
 * Kept apart from helpers.ts so that importing it adds no process listener.
 */
import { spawnSync } from 'node:child_process';
import { type Callback, test } from 'uvu';

/**
 * MSGCHANNEL_STRICT_PEERS=1 (CI sets it): a test whose outside peer (openssl, python3 or one of
 * its modules) is missing fails instead of being skipped.
 */
export const STRICT_PEERS = process.env.MSGCHANNEL_STRICT_PEERS === '1';

const announced = new Set<string>();

/**
 * uvu's `test` for tests that need something from outside the project. `missing` is undefined
 * when it is all there (then this is plain `test`), else what is missing and how to install it.
 * Then the tests are registered with test.skip, so uvu counts them in its "Skipped:" line and
 * scripts/test.mjs in its summary, and one line `SKIP <suite>: <missing>` says why (test.mjs
 * repeats it under the summary). With MSGCHANNEL_STRICT_PEERS=1 each of them fails instead,
 * saying what is missing.
 */
export function testNeeding(suite: string, missing: string | undefined): (name: string, fn: Callback) => void {
  if (missing === undefined) return test;
  if (STRICT_PEERS) {
    return (name) =>
      test(name, () => {
        throw new Error(
          `${suite}: ${missing} (MSGCHANNEL_STRICT_PEERS=1: a missing peer fails the run instead of skipping)`,
        );
      });
  }
  if (!announced.has(suite)) {
    announced.add(suite);
    console.log(`SKIP ${suite}: ${missing}`);
  }
  return (name, fn) => test.skip(name, fn);
}

let opensslChecked: string | undefined | null = null;

/** Why openssl cannot make the TLS tests' certificates here, or undefined when it can. */
export function opensslMissing(): string | undefined {
  if (opensslChecked === null) {
    const r = spawnSync('openssl', ['version'], { stdio: 'ignore' });
    opensslChecked =
      r.status === 0
        ? undefined
        : 'openssl not found on PATH (`openssl version` failed; it makes the test certificates): apt-get install openssl';
  }
  return opensslChecked;
}

/** uvu's `test` for TLS tests: skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without openssl. */
export function tlsTest(suite: string): (name: string, fn: Callback) => void {
  return testNeeding(suite, opensslMissing());
}
