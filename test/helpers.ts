/**
 * Shared test helpers: servers and connected pairs on 127.0.0.1 port 0, certificates made at test
 * time, leak checks, and waiting for a promise or a condition with a bound.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { Channel, type ChannelOptions, type Listener, type ListenOptions } from '../channel.js';

// Tests that need an outside peer (openssl, python3): see peers.ts.
export { STRICT_PEERS, opensslMissing, testNeeding, tlsTest } from './peers.js';

/** A listener on 127.0.0.1:0 that echoes every message of every client until it closes. */
export async function echoServer(
  options: ListenOptions = {},
): Promise<{ listener: Listener; port: number; channels: Channel[] }> {
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
export async function resultWithin<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
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
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        `/CN=${cn}`,
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
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
    if (!pattern.test(String(e?.message ?? e)))
      throw new Error(`expected a rejection matching ${pattern}, got: ${e?.message ?? e}`);
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

/** Helpers of the request/reply suites: a connected pair of Channels over TCP on 127.0.0.1. */

/** Two channels joined over a real TCP connection on 127.0.0.1 (port 0); `server` is the accepted end. */
export async function tcpPair(
  options: ChannelOptions = {},
  serverOptions: ChannelOptions = options,
): Promise<{ client: Channel; server: Channel }> {
  const listener = Channel.listen('127.0.0.1', 0, serverOptions);
  try {
    const { port } = await listener.listening;
    const [client, server] = await Promise.all([Channel.connect('127.0.0.1', port, options), listener.accept()]);
    return { client, server: server! };
  } finally {
    await listener.close();
  }
}

/** A promise and its resolve, for handlers the test releases by hand. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** Wait until `cond()` holds (polling every 2 ms), or fail after `ms`. */
export async function until(cond: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A message whose every byte depends on its index and position, so a mix-up shows. */
export function pattern(i: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j * 7) & 0xff;
  return b;
}

/** Send `sizes` each way (not awaited, all at once) and check every message arrives intact and in order. */
export async function bothWays(client: Channel, server: Channel, sizes: number[]): Promise<void> {
  for (const [from, to] of [
    [client, server],
    [server, client],
  ] as const) {
    const sent = sizes.map((n, i) => pattern(i, n));
    for (const m of sent) void from.send(m);
    for (const m of sent) assert.equal(await to.recv(), m);
  }
}

/**
 * `from` sends `count` distinct messages of about 1 KB in bursts of 100 while `to` reads nothing
 * for 100 ms, then `to` reads them all: each must be intact. With `to` reading ahead little
 * (a small highWaterMark), `from`'s batched frames wait in its transport, so a write slab refilled
 * before its write called back would change bytes still queued (a recv that waits for ever on a
 * header written over fails after 5 s).
 */
async function intactWhileUnread(from: Channel, to: Channel, count = 8000): Promise<void> {
  const sending = (async () => {
    for (let i = 0; i < count;) {
      const end = Math.min(count, i + 100);
      let last: Promise<void> | undefined;
      for (; i < end; i++) last = from.send(pattern(i, 1000 + (i % 7)));
      await last;
    }
  })();
  await sleep(100);
  for (let i = 0; i < count; i++) {
    const m = await to.recv({ timeout: 5000 });
    assert.ok(m.equals(pattern(i, 1000 + (i % 7))), `message ${i} intact`);
  }
  await sending;
}

/** intactWhileUnread() from the accepted side of `listener` to a client `connect` makes (reading ahead little). */
export async function intactWhileUnreadOver(
  listener: {
    listening: Promise<{ port: number }>;
    accept(): Promise<Channel | null | undefined>;
    close(): Promise<void>;
  },
  connect: (port: number) => Promise<Channel>,
): Promise<void> {
  const { port } = await listener.listening;
  const client = await connect(port);
  const server = (await listener.accept())!;
  try {
    await intactWhileUnread(server, client);
  } finally {
    client.destroy();
    server.destroy();
    await listener.close();
  }
}

/** The 64 KiB Buffer.allocUnsafeSlow calls (write slabs, here) while `ch` sends 16 MiB of 1 KiB messages, in steps of 64. */
export async function slabsToSend16MiB(ch: Channel): Promise<number> {
  const allocUnsafeSlow = Buffer.allocUnsafeSlow;
  let slabs = 0;
  Buffer.allocUnsafeSlow = (size: number) => {
    if (size === 64 * 1024) slabs++;
    return allocUnsafeSlow(size);
  };
  try {
    const body = Buffer.alloc(1024, 7);
    for (let i = 0; i < 16 * 1024; i++) {
      const sent = ch.send(body);
      if (i % 64 === 63) await sent; // about one slab's worth at a time
    }
  } finally {
    Buffer.allocUnsafeSlow = allocUnsafeSlow;
  }
  await ch.close();
  return slabs;
}
