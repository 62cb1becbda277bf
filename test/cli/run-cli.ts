/** Running dist/cli.js as a user would, for the CLI suites: to completion, killed after a timeout. */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as assert from 'uvu/assert';
import { Channel } from '../../channel.js';

export interface Run {
  stdout: string;
  stderr: string;
  status: number | null;
  /** Wall-clock ms from spawn to exit. */
  ms: number;
}

/**
 * Runs the CLI to completion (killed after `timeout` ms), with `input` on stdin (else an empty
 * stdin), colour off unless `env` sets FORCE_COLOR; `shell` runs it through /bin/sh after that
 * command (to set limits, say).
 */
export function run(
  args: string[],
  options: { input?: string | Buffer; timeout?: number; env?: Record<string, string>; shell?: string } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...options.env };
    if (options.env?.FORCE_COLOR === undefined) delete env.FORCE_COLOR;
    const started = Date.now();
    const stdio: ['pipe', 'pipe', 'pipe'] = ['pipe', 'pipe', 'pipe'];
    const child =
      options.shell === undefined
        ? spawn(process.execPath, ['dist/cli.js', ...args], { env, stdio })
        : spawn('/bin/sh', ['-c', `${options.shell}; exec "$0" dist/cli.js "$@"`, process.execPath, ...args], {
            env,
            stdio,
          });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 20_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, status, ms: Date.now() - started });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input);
  });
}

export const oneLine = (s: string): void =>
  assert.is(s.trimEnd().split('\n').length, 1, `expected one line, got: ${s}`);

/** A raw TCP server on 127.0.0.1 port 0 that does `onSocket` with each client. */
export async function rawServer(
  onSocket: (s: net.Socket) => void,
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/**
 * An echo server (Channel.listen on 127.0.0.1) that answers the first `answered` messages of each
 * connection, then reads the rest and never answers again.
 */
export async function echoesThenStops(answered: number): Promise<{ port: number; close: () => Promise<void> }> {
  const listener = Channel.listen('127.0.0.1', 0);
  const { port } = await listener.listening;
  void (async () => {
    for await (const ch of listener)
      void (async () => {
        let seen = 0;
        try {
          for await (const m of ch) if (++seen <= answered) await ch.send(m);
        } catch {
          // the bench closed
        }
      })();
  })();
  return { port, close: () => listener.close() };
}
