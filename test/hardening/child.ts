/**
 * A hardening suite that needs a victim in its own process (where the failure would be a crash)
 * runs its own compiled file again with MSGCHANNEL_CHILD=<kind>; the child talks back in JSON
 * lines on stdout. Its stderr is counted (and the first 64 KiB kept, to show why it died).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The kind of child this process is, or undefined in the test runner. */
export const childKind: string | undefined = process.env.MSGCHANNEL_CHILD;

/** In a child: one JSON line to the parent. */
export function tell(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export interface Child {
  readonly proc: ChildProcess;
  /** The next JSON line; rejects if the child exits first or says nothing within `ms`. */
  next(ms?: number): Promise<any>;
  /** Bytes written to stderr so far. */
  readonly stderrBytes: number;
  /** The first 64 KiB of stderr. */
  readonly stderr: string;
  /** Resolves with the exit code (or the signal's name) once it exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then wait for the exit. */
  kill(): Promise<void>;
}

/** Run the compiled test file `url` as a child of kind `kind`. */
export function spawnChild(url: string, kind: string, execArgv: string[] = []): Child {
  const proc = spawn(process.execPath, [...execArgv, '--enable-source-maps', fileURLToPath(url)], {
    env: { ...process.env, MSGCHANNEL_CHILD: kind },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buffered = '';
  let stderr = '';
  let stderrBytes = 0;
  let wake: (() => void) | undefined;
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
    buffered += s;
    let i: number;
    while ((i = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, i));
      buffered = buffered.slice(i + 1);
    }
    wake?.();
  });
  proc.stderr!.on('data', (b: Buffer) => {
    stderrBytes += b.length;
    if (stderr.length < 65536) stderr += b.toString('utf8', 0, Math.min(b.length, 65536 - stderr.length));
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  let exitCode: number | string | undefined;
  void exited.then((c) => {
    exitCode = c;
    wake?.();
  });
  return {
    proc,
    get stderrBytes() {
      return stderrBytes;
    },
    get stderr() {
      return stderr;
    },
    exited,
    async next(ms = 30_000) {
      let timer: NodeJS.Timeout | undefined;
      let timedOut = false;
      try {
        timer = setTimeout(() => {
          timedOut = true;
          wake?.();
        }, ms);
        for (;;) {
          const line = lines.shift();
          if (line !== undefined) return JSON.parse(line);
          if (exitCode !== undefined)
            throw new Error(`child ${kind} exited (${exitCode}) before answering; stderr:\n${stderr.slice(-4000)}`);
          if (timedOut) throw new Error(`child ${kind} said nothing within ${ms} ms; stderr:\n${stderr.slice(-4000)}`);
          await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        wake = undefined;
        clearTimeout(timer);
      }
    },
    async kill() {
      if (exitCode === undefined) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** The first RSS sample a child reports (`{ rss }` lines), skipping anything told before it. */
export async function firstRss(child: Child): Promise<number> {
  for (let m = await child.next(); ; m = await child.next()) if (m.rss) return m.rss as number;
}

/** The peak of the child's RSS samples up to the first one stamped (`t`) at or after `until`. */
export async function peakRss(child: Child, until: number): Promise<number> {
  let peak = 0;
  for (let m = await child.next(5000); ; m = await child.next(5000)) {
    if (m.rss) peak = Math.max(peak, m.rss as number);
    if (m.t >= until) return peak;
  }
}
