/** Shared test helpers: servers on 127.0.0.1 port 0, certificates made at test time, leak checks. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Callback, test } from 'uvu';
import { Channel, type Listener, type ListenOptions } from '../channel.js';

// ------------------------------------------------------------------ tests that need an outside peer

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
        throw new Error(`${suite}: ${missing} (MSGCHANNEL_STRICT_PEERS=1: a missing peer fails the run instead of skipping)`);
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
    opensslChecked = r.status === 0 ? undefined : 'openssl not found on PATH (`openssl version` failed; it makes the test certificates): apt-get install openssl';
  }
  return opensslChecked;
}

/** uvu's `test` for TLS tests: skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without openssl. */
export function tlsTest(suite: string): (name: string, fn: Callback) => void {
  return testNeeding(suite, opensslMissing());
}

/** A listener on 127.0.0.1:0 that echoes every message of every client until it closes. */
export async function echoServer(options: ListenOptions = {}): Promise<{ listener: Listener; port: number; channels: Channel[] }> {
  const listener = Channel.listen('127.0.0.1', 0, options);
  const { port } = await listener.listening;
  const channels: Channel[] = [];
  void (async () => {
    for await (const ch of listener) {
      channels.push(ch);
      void (async () => {
        try {
          for await (const m of ch) await ch.send(m);
        } catch {
          // a client's failure ends that client only
        }
        await ch.close().catch(() => {});
      })();
    }
  })();
  return { listener, port, channels };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves with 'pending' if `p` has not settled within `ms`. */
export async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'pending'>((r) => (timer = setTimeout(r, ms, 'pending')))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Assert that `p` rejects with an error of this code; returns the error. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (error) {
    const e = error as Error & { code?: string };
    if (e.code !== code) throw new Error(`expected a rejection with code ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  throw new Error(`expected a rejection with code ${code}, but it resolved`);
}

/** A self-signed certificate for 127.0.0.1/localhost, made with openssl. */
export function makeCertificate(cn = 'localhost'): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'msgchannel-cert-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
      '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Unhandled rejections seen since the module loaded; tests assert this stays empty. */
export const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

/** Sockets, servers and timers still open (the test runner's own stdio excluded). */
export function openHandles(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap' && r !== 'FSReqCallback');
}

/** Assert that `p` rejects with an error whose message matches `pattern`; returns the error. */
export async function rejectsMatching(p: Promise<unknown>, pattern: RegExp): Promise<Error> {
  try {
    await p;
  } catch (error) {
    const e = error as Error;
    if (!pattern.test(String(e?.message ?? e))) throw new Error(`expected a rejection matching ${pattern}, got: ${e?.message ?? e}`);
    return e;
  }
  throw new Error(`expected a rejection matching ${pattern}, but it resolved`);
}

/** Split `bytes` at the given cut points (any order, duplicates, out of range: all fine). */
export function chunkAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}
