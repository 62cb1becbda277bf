/**
 * What a bench run reports: the result document (the `--json` output, schema below and in
 * docs/benchmarking.md), the warnings about the generator's own limits, the table at the end, and
 * the latency distribution drawn in the terminal.
 */
import { cpus, platform, arch, totalmem } from 'node:os';
import type { RecordableHistogram } from 'node:perf_hooks';
import { out, showSize } from '../output.js';
import { UNIT, type Mode } from './driver.js';
import { PERCENTILES, summarize, type LatencySummary } from './histogram.js';
import { LATE_MS } from './schedule.js';
import type { RunResult } from './run.js';

/** The `schema` field of every result document; a change of its fields' meaning changes the number. */
export const SCHEMA = 'msgchannel-bench/1';

export interface BenchConfigDoc {
  mode: Mode;
  /** `host:port`, a Unix socket path, or a ws:// or wss:// URL. */
  target: string;
  /** True over TLS (or wss://). */
  tls: boolean;
  /** True with the `auth` handshake (--auth). */
  auth: boolean;
  /** True when the server was the bench's own, in this process. */
  inProcessServer: boolean;
  framing: string;
  size: number;
  connections: number;
  window: number;
  /** Messages/s in all (open loop), or null (closed loop). */
  rate: number | null;
  count: number | null;
  duration: number | null;
  warmup: number;
  workers: number;
  runs: number;
  timeout: number;
}

export interface RunDoc {
  /** Measured messages completed (round trips, one-way sends, or requests answered). */
  messages: number;
  /** Measured messages still in flight when the --duration deadline ended the run. */
  abandoned: number;
  /** Seconds of the measured phase (the warmup excluded). */
  seconds: number;
  messagesPerSecond: number;
  /** Message bytes per second, both directions for echo and request, one way for send. */
  bytesPerSecond: number;
  /** Messages completed in each whole second of the measured phase. */
  samples: number[];
  /** Measured messages completed per connection: how evenly the connections were served. */
  connections: { min: number; max: number; mean: number; stddev: number };
  /** Latency in ms: corrected from each message's intended send time, uncorrected from its actual one (equal in a closed loop). */
  latency: { corrected: LatencySummary; uncorrected: LatencySummary };
  /**
   * Open loop: measured sends started over lateMs after their intended time, because the generator
   * was behind or the window was full; and those due over lateMs before the end that never started.
   */
  late: { generator: number; window: number; started: number; neverStarted: number; lateMs: number };
  /** send mode against the in-process server: what it received in the measured phase; else null. */
  received: { messages: number; messagesPerSecond: number } | null;
  /** The generator's busiest thread: event-loop utilization (0-1) and event-loop delay p99 in ms. */
  generator: { eventLoopUtilization: number; eventLoopDelayP99: number };
}

export interface BenchDoc {
  schema: typeof SCHEMA;
  config: BenchConfigDoc;
  environment: {
    node: string;
    platform: string;
    arch: string;
    cpus: number;
    cpuModel: string;
    memory: number;
    msgchannel: string;
  };
  /** Each run of --runs N, in order. */
  runs: RunDoc[];
  /** Every run together: the histograms merged, messages and seconds summed, the samples of every run in order. */
  summary: RunDoc | null;
  warnings: string[];
  /** The failure that ended the bench, if one did (the same line as on stderr), with its code. */
  errors: { message: string; code: string | null }[];
}

export function environment(version: string): BenchDoc['environment'] {
  const c = cpus();
  return {
    node: process.version,
    platform: platform(),
    arch: arch(),
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memory: totalmem(),
    msgchannel: version,
  };
}

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

function spread(counts: number[]): RunDoc['connections'] {
  if (counts.length === 0) return { min: 0, max: 0, mean: 0, stddev: 0 };
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  const variance = counts.reduce((a, b) => a + (b - mean) ** 2, 0) / counts.length;
  return {
    min: Math.min(...counts),
    max: Math.max(...counts),
    mean: round(mean, 1),
    stddev: round(Math.sqrt(variance), 1),
  };
}

export function runDoc(r: RunResult, config: BenchConfigDoc, received: number | null): RunDoc {
  const directions = config.mode === 'send' ? 1 : 2;
  const perSecond = (n: number): number => (r.seconds > 0 ? round(n / r.seconds, 1) : 0);
  return {
    messages: r.messages,
    abandoned: r.abandoned,
    seconds: round(r.seconds),
    messagesPerSecond: perSecond(r.messages),
    bytesPerSecond: perSecond(r.messages * config.size * directions),
    samples: r.samples,
    connections: spread(r.perConnection),
    latency: { corrected: summarize(r.corrected), uncorrected: summarize(r.uncorrected) },
    late: {
      generator: r.lateGenerator,
      window: r.lateWindow,
      started: r.started,
      neverStarted: r.neverStarted,
      lateMs: LATE_MS,
    },
    received: received === null ? null : { messages: received, messagesPerSecond: perSecond(received) },
    generator: {
      eventLoopUtilization: round(r.eventLoopUtilization),
      eventLoopDelayP99: round(r.eventLoopDelayP99),
    },
  };
}

/** Event-loop utilization from which the generator counts as saturated. */
const BUSY = 0.85;
/** Event-loop delay p99 (ms) from which latencies carry the generator's own delay. */
const LAGGING_MS = 50;
/** The share of sends late through the generator's own delay that makes an open-loop run generator-bound. */
const BEHIND = 0.01;

/** Why a run's numbers may describe the generator rather than the server. */
export function warnings(r: RunDoc, config: BenchConfigDoc): string[] {
  const w: string[] = [];
  const g = r.generator;
  if (g.eventLoopUtilization >= BUSY && config.inProcessServer)
    w.push(
      `the in-process server shares the generator's event loop (busy ${Math.round(g.eventLoopUtilization * 100)}%): these figures are for both together; for a server's own, run it in a process of its own`,
    );
  else if (g.eventLoopUtilization >= BUSY)
    w.push(
      `generator-bound: the generator's event loop was busy ${Math.round(g.eventLoopUtilization * 100)}% of the run, so the limit may be the generator, not the server (try --workers ${config.workers * 2})`,
    );
  if (g.eventLoopDelayP99 >= LAGGING_MS)
    w.push(
      `the generator's event loop lagged ${g.eventLoopDelayP99.toFixed(1)} ms (p99): latencies include the generator's own delay`,
    );
  if (config.rate !== null && r.late.started > 0 && r.late.generator / r.late.started >= BEHIND)
    w.push(
      `generator-bound: ${r.late.generator} of ${r.late.started} sends started over ${LATE_MS} ms late with a window slot free: the generator fell behind its schedule`,
    );
  if (r.late.neverStarted > 0)
    w.push(
      `${r.late.neverStarted.toLocaleString('en')} sends due in the measured time never started: the window (--window ${config.window}) stayed full to the end, so the latencies leave out the slowest; the server is behind the rate`,
    );
  else if (config.rate !== null && r.seconds >= 1 && r.messagesPerSecond < config.rate * 0.9 && r.late.window > 0)
    w.push(
      `${r.messagesPerSecond.toLocaleString('en')} ${UNIT[config.mode]}/s of the --rate ${config.rate.toLocaleString('en')}: the window (--window ${config.window}) was full for ${r.late.window} sends; the server is behind the rate`,
    );
  return w;
}

const fmt = (n: number | null, digits = 0): string =>
  n === null || Number.isNaN(n)
    ? '-'
    : n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const MODE_TEXT: Record<Mode, string> = {
  echo: 'echo (round trips)',
  send: 'send (one-way; latency until each send left the queue)',
  request: 'request (RequestChannel requests and replies)',
};

export function resultTable(doc: BenchDoc, half: boolean): string {
  const c = doc.config;
  const r = doc.summary!;
  const unit = UNIT[c.mode];
  const about = [
    ...(c.inProcessServer ? [`in-process ${c.mode === 'send' ? 'discard' : c.mode} server`] : []),
    ...(c.tls ? ['TLS'] : []),
    ...(c.auth ? ['auth'] : []),
  ];
  const rows: [string, string][] = [
    ['target', about.length ? `${c.target} (${about.join(', ')})` : c.target],
    ['mode', MODE_TEXT[c.mode]],
    ['framing', c.framing],
    ['message size', showSize(c.size)],
    ['connections', `${c.connections} x window ${c.window}${half ? ` (${c.framing} is half-duplex)` : ''}`],
    [
      'load',
      c.rate === null ? 'closed loop' : `open loop, --rate ${fmt(c.rate)}/s (latency from the intended send time)`,
    ],
  ];
  if (c.warmup > 0) rows.push(['warmup', `${fmt(c.warmup, 1)} s (measured, not reported)`]);
  if (c.workers > 1) rows.push(['workers', String(c.workers)]);
  rows.push([unit, fmt(r.messages)], ['time', `${fmt(r.seconds, 2)} s`], [`${unit}/s`, fmt(r.messagesPerSecond)]);
  if (doc.runs.length > 1)
    rows.push(['runs', `${doc.runs.length}: ${doc.runs.map((x) => fmt(x.messagesPerSecond)).join(' / ')} ${unit}/s`]);
  rows.push([
    'throughput',
    `${fmt(r.bytesPerSecond / 1e6, 1)} MB/s (${c.mode === 'send' ? 'one way' : 'both directions'})`,
  ]);
  if (c.connections > 1)
    rows.push([
      'per connection',
      `${fmt(r.connections.min)} to ${fmt(r.connections.max)} ${unit} (mean ${fmt(r.connections.mean, 1)}, stddev ${fmt(r.connections.stddev, 1)})`,
    ]);
  if (r.received)
    rows.push(['received', `${fmt(r.received.messages)} by the server, ${fmt(r.received.messagesPerSecond)}/s`]);
  const lat = r.latency;
  const open = c.rate !== null;
  for (const key of [...PERCENTILES.map((p) => `p${p}` as const), 'max' as const]) {
    const corrected = `${fmt(lat.corrected[key], 3)} ms`;
    rows.push([`latency ${key}`, open ? `${corrected} (uncorrected ${fmt(lat.uncorrected[key], 3)} ms)` : corrected]);
  }
  if (open) {
    const late = r.late.generator + r.late.window;
    rows.push([
      'late sends',
      `${fmt(late)} of ${fmt(r.late.started)} over ${LATE_MS} ms late (${fmt(r.late.window)} waited for the window, ${fmt(r.late.generator)} for the generator)`,
    ]);
    if (r.late.neverStarted > 0)
      rows.push(['never started', `${fmt(r.late.neverStarted)} due, the window full to the end`]);
  }
  if (r.abandoned > 0) rows.push(['abandoned', `${fmt(r.abandoned)} in flight at the --duration deadline`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  const line = `+${'-'.repeat(w + 2)}+${'-'.repeat(Math.max(...rows.map(([, v]) => v.length)) + 2)}+`;
  const vw = line.length - w - 7;
  return [line, ...rows.map(([k, v]) => `| ${out.dim(k.padEnd(w))} | ${v.padEnd(vw)} |`), line].join('\n');
}

/** The share of recorded values at or below `ms`: the highest percentile whose value is at most `ms` (a bisection). */
function shareAtOrBelow(h: RecordableHistogram, ms: number): number {
  const us = ms * 1000;
  if (h.min > us) return 0;
  if (h.max <= us) return 1;
  let lo = 0;
  let hi = 100;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    if (h.percentile(mid) <= us) lo = mid;
    else hi = mid;
  }
  return lo / 100;
}

/**
 * The latency distribution as text: log-spaced latency buckets from the minimum to the maximum,
 * each with its share of the messages and a bar.
 */
export function distribution(h: RecordableHistogram, label: string, rows = 10, width = 40): string {
  if (h.count === 0) return '';
  const lo = Math.max(0.001, h.min / 1000);
  const hi = Math.max(lo * 1.001, h.max / 1000);
  const ratio = Math.pow(hi / lo, 1 / rows);
  const lines = [out.bold(`latency distribution (${label})`)];
  let below = 0;
  const buckets: [string, number][] = [];
  for (let i = 0; i < rows; i++) {
    const top = i === rows - 1 ? hi : lo * Math.pow(ratio, i + 1);
    const at = shareAtOrBelow(h, top);
    buckets.push([`<= ${fmt(top, 3)} ms`, Math.max(0, at - below)]);
    below = Math.max(below, at);
  }
  const most = Math.max(...buckets.map(([, s]) => s), 1e-9);
  const lw = Math.max(...buckets.map(([l]) => l.length));
  for (const [l, share] of buckets) {
    const bar = '█'.repeat(Math.round((share / most) * width));
    lines.push(`  ${l.padStart(lw)} ${(share * 100).toFixed(2).padStart(6)}% ${out.cyan(bar)}`);
  }
  return lines.join('\n');
}
