/**
 * `msgchannel bench`: echo round trips against a server, or an in-process echo server when none is
 * given, with a progress bar on a TTY stderr and a result table (throughput, latency percentiles).
 */
import { Channel, type Framing } from '../../../channel.js';
import { parseAddress, showAddress, type Address } from '../args.js';
import { CliError, describeError, err, fail, out, print, size } from '../output.js';
import { Exchange, framingMismatch, open, peerEnded } from './connect.js';

export interface BenchFlags {
  framing: Framing;
  size: number;
  count?: number;
  duration?: number;
  concurrency: number;
  window: number;
}

export interface BenchResult {
  messages: number;
  bytes: number;
  seconds: number;
  latencies: Float64Array;
}

/**
 * Echo round trips: `concurrency` connections, each keeping `window` messages in flight, until
 * `count` messages in all have come back or `duration` seconds have passed.
 */
async function runBench(
  address: Address,
  flags: BenchFlags,
  onProgress: (done: number, elapsed: number) => void,
): Promise<BenchResult> {
  const channels = await Promise.all(Array.from({ length: flags.concurrency }, () => open(address, flags.framing, 10)));
  const body = Buffer.alloc(flags.size, 'x');
  const limit = flags.count ?? Infinity;
  const until = flags.duration === undefined ? Infinity : performance.now() + flags.duration * 1000;
  const latencies: number[] = [];
  let started = 0;
  let done = 0;
  const start = performance.now();
  const timer = setInterval(() => onProgress(done, (performance.now() - start) / 1000), 100);
  const more = (): boolean => started < limit && performance.now() < until;
  const exchange = new Exchange();
  try {
    await Promise.all(
      channels.map(async (ch) => {
        const sentAt: number[] = [];
        const inFlight = async (): Promise<void> => {
          while (more()) {
            started++;
            sentAt.push(performance.now());
            exchange.sending();
            await ch.send(body);
            await ch.recv();
            // Echoes come back in order: the oldest send is the one answered.
            latencies.push(performance.now() - sentAt.shift()!);
            done++;
            exchange.received++;
          }
        };
        try {
          await Promise.all(Array.from({ length: flags.window }, inFlight));
        } catch (e) {
          throw (await ch.closed) ?? e;
        }
      }),
    );
  } catch (e) {
    for (const ch of channels) ch.destroy();
    // Connected, then lost: not a connect failure.
    const where = showAddress(address);
    if (peerEnded(e) && exchange.endedRightAfterFirst()) throw framingMismatch(where, flags.framing, e);
    throw new CliError(
      `connection to ${where} lost during the benchmark after ${done} round trips: ${describeError(e, { address: where })}`,
    );
  } finally {
    clearInterval(timer);
  }
  const secs = (performance.now() - start) / 1000;
  onProgress(done, secs);
  await Promise.all(channels.map((ch) => ch.close({ timeout: 2000 }).catch(() => ch.destroy())));
  return {
    messages: done,
    bytes: done * flags.size * 2,
    seconds: secs,
    latencies: Float64Array.from(latencies).sort(),
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function resultTable(r: BenchResult, flags: BenchFlags, target: string): string {
  const fmt = (n: number, digits = 0): string =>
    n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const rows: [string, string][] = [
    ['target', target],
    ['framing', flags.framing.name],
    ['message size', size(flags.size)],
    ['connections', `${flags.concurrency} x window ${flags.window}`],
    ['round trips', fmt(r.messages)],
    ['time', `${fmt(r.seconds, 2)} s`],
    ['round trips/s', fmt(r.messages / r.seconds)],
    ['throughput', `${fmt(r.bytes / r.seconds / 1e6, 1)} MB/s (both directions)`],
    ['latency p50', `${fmt(percentile(r.latencies, 50), 3)} ms`],
    ['latency p99', `${fmt(percentile(r.latencies, 99), 3)} ms`],
    ['latency max', `${fmt(r.latencies[r.latencies.length - 1] ?? NaN, 3)} ms`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const line = `+${'-'.repeat(w + 2)}+${'-'.repeat(Math.max(...rows.map(([, v]) => v.length)) + 2)}+`;
  const vw = line.length - w - 7;
  return [line, ...rows.map(([k, v]) => `| ${out.dim(k.padEnd(w))} | ${v.padEnd(vw)} |`), line].join('\n');
}

export async function benchCommand(addressText: string | undefined, flags: BenchFlags): Promise<void> {
  if (flags.count === undefined && flags.duration === undefined) flags.duration = 5;
  let address: Address;
  let listener: ReturnType<typeof Channel.listen> | undefined;
  if (addressText === undefined) {
    // Self-contained: an echo server in this process.
    listener = Channel.listen('127.0.0.1', 0, { framing: flags.framing });
    const a = await listener.listening;
    address = { host: a.address, port: a.port };
    void (async () => {
      for await (const ch of listener) {
        void (async () => {
          try {
            for await (const m of ch) await ch.send(m);
          } catch {
            // a client that vanished ends its loop
          }
          ch.destroy();
        })();
      }
    })();
  } else {
    address = parseAddress(addressText);
  }
  const target = listener ? `${showAddress(address)} (in-process echo server)` : showAddress(address);
  const tty = process.stderr.isTTY === true;
  const bar = (done: number, elapsed: number): void => {
    if (!tty) return;
    const fraction = flags.count !== undefined ? done / flags.count : elapsed / flags.duration!;
    const width = 30;
    const filled = Math.round(Math.min(1, fraction) * width);
    const rate = elapsed > 0 ? Math.round(done / elapsed).toLocaleString('en') : '0';
    process.stderr.write(
      `\r${err.cyan('█'.repeat(filled))}${err.dim('░'.repeat(width - filled))} ${Math.round(Math.min(1, fraction) * 100)}%  ${done.toLocaleString('en')} round trips, ${rate}/s `,
    );
  };
  let result: BenchResult;
  try {
    result = await runBench(address, flags, bar);
  } catch (e) {
    if (tty) process.stderr.write('\n');
    fail(e, { address: showAddress(address) });
  }
  if (tty) process.stderr.write('\n');
  print(resultTable(result, flags, target));
  await listener?.close();
  process.exit(0);
}
