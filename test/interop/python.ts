/** Start the Python peers of test/interop/peers/ and stop them again, leaving nothing behind. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Callback } from 'uvu';
import { testNeeding } from '../peers.js';

/** A Python module a peer imports, and the packages that provide it. */
export interface PythonModule {
  module: string;
  /** Debian's package, for `apt-get install`. */
  apt: string;
  /** PyPI's, for `pip install`. */
  pip: string;
}

export const MSGPACK: PythonModule = { module: 'msgpack', apt: 'python3-msgpack', pip: 'msgpack' };

/**
 * Why the Python peers cannot run here, or undefined when they can: `python3` on PATH (the one
 * the peers run with) must run and import the standard library's multiprocessing.connection and
 * each of `modules`.
 */
export function pythonMissing(modules: PythonModule[] = []): string | undefined {
  if (spawnSync('python3', ['-c', 'import multiprocessing.connection'], { stdio: 'ignore' }).status !== 0) {
    return 'python3 not found on PATH (or it cannot import multiprocessing): apt-get install python3';
  }
  for (const m of modules) {
    if (spawnSync('python3', ['-c', `import ${m.module}`], { stdio: 'ignore' }).status !== 0) {
      const which = spawnSync('python3', ['-c', 'import sys; print(sys.executable, sys.version.split()[0])'], {
        encoding: 'utf8',
      }).stdout.trim();
      return `python3 on PATH (${which}) cannot import ${m.module}: apt-get install ${m.apt} (for Debian's /usr/bin/python3) or pip install ${m.pip}`;
    }
  }
  return undefined;
}

/**
 * uvu's `test` for an interop suite whose Python peer needs python3 and `modules`: its tests are
 * skipped when one is missing, naming the package and how to install it, or fail instead under
 * MSGCHANNEL_STRICT_PEERS=1 (see testNeeding in test/peers.ts).
 */
export function pythonTest(suite: string, modules: PythonModule[] = []): (name: string, fn: Callback) => void {
  return testNeeding(suite, pythonMissing(modules));
}

export interface Peer {
  readonly proc: ChildProcess;
  /** Every stdout line so far. */
  readonly lines: string[];
  /** The port a server peer printed (`PORT n`), 0 for client peers. */
  port: number;
  /** Resolves with the first line (past or future) matching `pattern`; rejects after `ms` or at exit. */
  waitLine(pattern: RegExp, ms?: number): Promise<string>;
  /** The exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Kill it (if still running) and wait until it has exited. */
  stop(): Promise<void>;
}

/** Run `python3 test/interop/peers/<script> ...args` (or another interpreter: `python`). */
export function startPeer(script: string, args: string[], python = 'python3'): Peer {
  const proc = spawn(python, ['-u', join(process.cwd(), 'test/interop/peers', script), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stderr = '';
  const watchers = new Set<() => void>();
  let rest = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
    rest += s;
    const parts = rest.split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
    for (const w of [...watchers]) w();
  });
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let done = false;
  const exited = new Promise<number | null>((resolve) =>
    proc.once('close', (code) => {
      done = true;
      for (const w of [...watchers]) w();
      resolve(code);
    }),
  );
  const peer: Peer = {
    proc,
    lines,
    port: 0,
    exited,
    waitLine(pattern, ms = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            finish(
              new Error(
                `python peer ${script}: no line matching ${pattern} within ${ms} ms; stdout ${JSON.stringify(lines)}; stderr ${stderr}`,
              ),
            ),
          ms,
        );
        const finish = (error?: Error, line?: string) => {
          clearTimeout(timer);
          watchers.delete(check);
          if (error) reject(error);
          else resolve(line!);
        };
        const check = () => {
          const line = lines.find((l) => pattern.test(l));
          if (line !== undefined) finish(undefined, line);
          else if (done)
            finish(
              new Error(
                `python peer ${script} exited without a line matching ${pattern}; stdout ${JSON.stringify(lines)}; stderr ${stderr}`,
              ),
            );
        };
        watchers.add(check);
        check();
      });
    },
    async stop() {
      if (!done) proc.kill('SIGKILL');
      await exited;
    },
  };
  return peer;
}

/** Start a server peer and wait for its port. */
export async function startServerPeer(script: string, args: string[]): Promise<Peer> {
  const peer = startPeer(script, args);
  try {
    const line = await peer.waitLine(/^PORT \d+$/);
    peer.port = Number(line.slice(5));
  } catch (error) {
    await peer.stop();
    throw error;
  }
  return peer;
}

/** Run `fn`, failing if it takes longer than `ms`. */
export async function within<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`test timed out after ${ms} ms`)), ms)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
