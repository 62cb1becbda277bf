/**
 * `msgchannel bench`: echo round trips against a server, or an in-process echo server when none is
 * given, with a progress bar on a TTY stderr and a result table (throughput, latency percentiles).
 */
import { Channel, type Framing } from '../../../channel.js';
import { parseAddress, showAddress, type Address } from '../args.js';
import { CliError, EXIT_TIMEOUT, codeOf, describeError, err, fail, out, print, showSize } from '../output.js';
import { Exchange, connectOrExit, framingMismatch, peerEnded, sameFraming, settleWithin } from './connect.js';

export interface BenchFlags {
  framing: Framing;
  size: number;
  count?: number;
  duration?: number;
  concurrency: number;
  window: number;
  timeout: number;
}

export interface BenchResult {
  messages: number;
  bytes: number;
  seconds: number;
  latencies: Float64Array;
  /** Messages sent whose echo had not come back when the --duration deadline ended the run. */
  abandoned: number;
}

/** How the run ended: the round trips asked for are done, the deadline passed, or a failure. */
type Outcome = { ok: true } | { ok: false; error: unknown };

/**
 * Echo round trips: `concurrency` connections, each keeping up to `window` messages in flight,
 * until `count` messages in all have come back or `duration` seconds have passed (a hard deadline:
 * what is still in flight then is abandoned and counted). Each connection sends and receives
 * independently, a sender that waits only for a free slot in the window and a reader that takes
 * every echo as it arrives: a sender that awaited its own echo before the next read would stop
 * reading while its sends wait for the server, and the server, which stops reading while its
 * echoes wait for us, would wait forever too. No echo for `timeout` seconds fails the run.
 */
async function runBench(
  address: Address,
  flags: BenchFlags,
  onProgress: (done: number, elapsed: number) => void,
): Promise<BenchResult> {
  const channels = await Promise.all(
    Array.from({ length: flags.concurrency }, () => connectOrExit(address, flags.framing, flags.timeout)),
  );
  const where = showAddress(address);
  const body = Buffer.alloc(flags.size, 'x');
  const limit = flags.count ?? Infinity;
  const latencies: number[] = [];
  const exchange = new Exchange();
  let started = 0;
  let done = 0;
  let finished = false;
  let end!: (outcome: Outcome) => void;
  const outcome = new Promise<Outcome>((resolve) => (end = resolve));
  const finish = (o: Outcome): void => {
    if (finished) return;
    finished = true;
    end(o);
  };
  const start = performance.now();
  let lastEchoAt = start;
  const ticker = setInterval(() => {
    const now = performance.now();
    onProgress(done, (now - start) / 1000);
    if (started > done && now - lastEchoAt > flags.timeout * 1000) {
      finish({
        ok: false,
        error: new CliError(
          `no echo from ${where} for ${flags.timeout} s after ${done} round trips, with ${started - done} messages in flight (--timeout; ERR_TIMEOUT): is it an echo server?${done === 0 ? ` ${sameFraming(flags.framing)}` : ''}`,
          EXIT_TIMEOUT,
        ),
      });
    }
  }, 100);
  const deadline =
    flags.duration === undefined ? undefined : setTimeout(() => finish({ ok: true }), flags.duration * 1000);
  /** A send or recv failed: report why the connection ended, or the local failure itself. */
  const failed = async (ch: Channel, e: unknown, sending: boolean): Promise<void> => {
    if (finished) return; // the run is over: the channels were closed under their loops
    if (e instanceof CliError) return finish({ ok: false, error: e });
    if (sending && ch.isOpen) {
      // Refused here (too large for the framing or maxMessageSize, the send queue full): not a lost connection.
      const error = new CliError(
        `cannot send to ${where} (--size ${flags.size}) after ${done} round trips: ${describeError(e)}`,
      );
      return finish({ ok: false, error });
    }
    const reason = ch.isOpen ? e : ((await settleWithin(ch.closed, 1000, undefined)) ?? e);
    finish({ ok: false, error: reason });
  };

  for (const ch of channels) {
    /** When each message in flight on this connection was sent, oldest first. */
    const sentAt: number[] = [];
    let slotFree: (() => void) | undefined;
    const nextEcho = (): Promise<void> => new Promise<void>((resolve) => (slotFree = resolve));
    const sender = async (): Promise<void> => {
      while (!finished && started < limit) {
        if (sentAt.length >= flags.window) {
          await nextEcho();
          continue;
        }
        started++;
        sentAt.push(performance.now());
        exchange.sending();
        try {
          await ch.send(body);
        } catch (e) {
          // Messages over maxQueuedBytes (16 MiB) are refused while the socket still holds earlier
          // ones: the window is too wide for them, so send this one again once an echo is back.
          if (codeOf(e) !== 'ERR_SEND_QUEUE_FULL' || sentAt.length < 2) throw e;
          sentAt.pop();
          started--;
          await nextEcho();
        }
      }
    };
    const reader = async (): Promise<void> => {
      while (!finished) {
        await ch.recv();
        if (sentAt.length === 0) {
          throw new CliError(`${where} sent a message with none of ours in flight: is it an echo server?`);
        }
        const now = performance.now();
        // Echoes come back in order: the oldest message in flight is the one answered.
        latencies.push(now - sentAt.shift()!);
        lastEchoAt = now;
        done++;
        exchange.received++;
        slotFree?.();
        slotFree = undefined;
        if (done >= limit) finish({ ok: true });
      }
    };
    sender().catch((e: unknown) => failed(ch, e, true));
    reader().catch((e: unknown) => failed(ch, e, false));
  }

  const result = await outcome;
  const seconds = (performance.now() - start) / 1000;
  clearInterval(ticker);
  clearTimeout(deadline);
  onProgress(done, seconds);
  const abandoned = started - done;
  if (!result.ok || abandoned > 0) {
    // Messages still in flight: close without waiting for their echoes, or for a server that stalls.
    for (const ch of channels) ch.destroy();
  } else {
    await Promise.all(channels.map((ch) => ch.close({ timeout: 2000 }).catch(() => ch.destroy())));
  }
  if (!result.ok) {
    const e = result.error;
    if (e instanceof CliError) throw e;
    // Connected, then lost: not a connect failure.
    if (peerEnded(e) && exchange.endedRightAfterFirst()) throw framingMismatch(where, flags.framing, e);
    throw new CliError(
      `connection to ${where} lost during the benchmark after ${done} round trips: ${describeError(e, { address: where })}`,
    );
  }
  return {
    messages: done,
    bytes: done * flags.size * 2,
    seconds,
    latencies: Float64Array.from(latencies).sort(),
    abandoned,
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function resultTable(r: BenchResult, flags: BenchFlags, target: string): string {
  // No round trip done (a deadline before the first echo): no latency to show.
  const fmt = (n: number, digits = 0): string =>
    Number.isNaN(n) ? '-' : n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const rows: [string, string][] = [
    ['target', target],
    ['framing', flags.framing.name],
    ['message size', showSize(flags.size)],
    [
      'connections',
      `${flags.concurrency} x window ${flags.window}${flags.framing.acknowledged === true ? ` (${flags.framing.name} is half-duplex)` : ''}`,
    ],
    ['round trips', fmt(r.messages)],
    ['time', `${fmt(r.seconds, 2)} s`],
    ['round trips/s', fmt(r.messages / r.seconds)],
    ['throughput', `${fmt(r.bytes / r.seconds / 1e6, 1)} MB/s (both directions)`],
    ['latency p50', `${fmt(percentile(r.latencies, 50), 3)} ms`],
    ['latency p99', `${fmt(percentile(r.latencies, 99), 3)} ms`],
    ['latency max', `${fmt(r.latencies[r.latencies.length - 1] ?? NaN, 3)} ms`],
  ];
  if (r.abandoned > 0) rows.push(['abandoned', `${fmt(r.abandoned)} in flight at the --duration deadline`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  const line = `+${'-'.repeat(w + 2)}+${'-'.repeat(Math.max(...rows.map(([, v]) => v.length)) + 2)}+`;
  const vw = line.length - w - 7;
  return [line, ...rows.map(([k, v]) => `| ${out.dim(k.padEnd(w))} | ${v.padEnd(vw)} |`), line].join('\n');
}

export async function benchCommand(addressText: string | undefined, flags: BenchFlags): Promise<void> {
  if (flags.count === undefined && flags.duration === undefined) flags.duration = 5;
  // A half-duplex framing (tinyproto) must not have both sides start a message at once: the echo
  // of one message would cross the header of the next. One message in flight per connection.
  if (flags.framing.acknowledged === true) flags.window = 1;
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
