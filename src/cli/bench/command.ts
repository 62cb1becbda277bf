/**
 * `msgchannel bench`: drive a server (or an in-process one when no address is given) in one of the
 * modes (echo, send, request) under a closed or an open loop, once or --runs N times, and report
 * the result as a table with the latency distribution, as JSON (--json), and as an SVG (--svg).
 */
import { writeFileSync } from 'node:fs';
import { parseFraming } from '../args.js';
import { CliError, EXIT_USAGE, codeOf, describeError, err, fail, note, print, showSize } from '../output.js';
import { showTarget, transportOf, type Target, type TransportFlags } from '../transport.js';
import { UNIT, type Mode } from './driver.js';
import { newHistogram, percentileCurve } from './histogram.js';
import {
  SCHEMA,
  distribution,
  environment,
  resultTable,
  runDoc,
  warnings,
  type BenchConfigDoc,
  type BenchDoc,
} from './report.js';
import type { RunConfig, RunResult } from './run.js';
import { startLocalServer, type LocalServer } from './servers.js';
import { percentilePlot } from './svg.js';
import { runOnWorkers } from './workers.js';

declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === 'string' ? __VERSION__ : '0.0.0-dev';

export interface BenchFlags extends TransportFlags {
  mode: Mode;
  /** The --framing text (parsed where it is used, and in every worker). */
  framing: string;
  size: number;
  count?: number;
  duration?: number;
  connections?: number;
  /** The former name of --connections. */
  concurrency?: number;
  window: number;
  rate?: number;
  warmup: number;
  workers: number;
  runs: number;
  timeout: number;
  json?: boolean;
  svg?: string;
}

/** Every run together: histograms merged, counts and seconds summed, samples one run after the other. */
function together(results: RunResult[]): RunResult {
  const corrected = newHistogram();
  const uncorrected = newHistogram();
  const sum = (of: (r: RunResult) => number): number => results.reduce((a, r) => a + of(r), 0);
  for (const r of results) {
    corrected.add(r.corrected);
    uncorrected.add(r.uncorrected);
  }
  return {
    messages: sum((r) => r.messages),
    abandoned: sum((r) => r.abandoned),
    seconds: sum((r) => r.seconds),
    samples: results.flatMap((r) => r.samples),
    perConnection: results[0]!.perConnection.map((_, i) => sum((r) => r.perConnection[i]!)),
    corrected,
    uncorrected,
    lateGenerator: sum((r) => r.lateGenerator),
    lateWindow: sum((r) => r.lateWindow),
    started: sum((r) => r.started),
    neverStarted: sum((r) => r.neverStarted),
    inFlight: sum((r) => r.inFlight),
    answered: sum((r) => r.answered),
    eventLoopUtilization: Math.max(...results.map((r) => r.eventLoopUtilization)),
    eventLoopDelayP99: Math.max(...results.map((r) => r.eventLoopDelayP99)),
  };
}

/** The server's count of messages received once it stops changing (the last sends are still on their way), within a second. */
async function settled(server: LocalServer): Promise<number> {
  let last = -1;
  for (let i = 0; i < 50 && server.received() !== last; i++) {
    last = server.received();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return server.received();
}

/** The live progress line, on a TTY stderr only. */
function progressLine(flags: BenchFlags, run: number): (done: number, elapsed: number) => void {
  if (process.stderr.isTTY !== true) return () => {};
  const unit = UNIT[flags.mode];
  return (done, elapsed) => {
    const warming = elapsed < flags.warmup;
    const measured = Math.max(0, elapsed - flags.warmup);
    const fraction = warming
      ? elapsed / flags.warmup
      : flags.count !== undefined
        ? done / flags.count
        : measured / flags.duration!;
    const width = 30;
    const filled = Math.round(Math.min(1, fraction) * width);
    const rate = measured > 0 ? Math.round(done / measured).toLocaleString('en') : '0';
    const runs = flags.runs > 1 ? `run ${run}/${flags.runs} ` : '';
    const what = warming ? 'warming up' : `${done.toLocaleString('en')} ${unit}, ${rate}/s`;
    process.stderr.write(
      `\r${runs}${err.cyan('█'.repeat(filled))}${err.dim('░'.repeat(width - filled))} ${Math.round(Math.min(1, fraction) * 100)}%  ${what}   `,
    );
  };
}

export async function benchCommand(given: Target | undefined, flags: BenchFlags): Promise<void> {
  if (flags.count === undefined && flags.duration === undefined) flags.duration = 5;
  const framing = parseFraming(flags.framing);
  const connections = flags.connections ?? flags.concurrency ?? 1;
  // A half-duplex framing (tinyproto) must not have both sides start a message at once: the echo
  // of one message would cross the header of the next. One message in flight per connection.
  const half = framing.acknowledged === true;
  if (half) flags.window = 1;
  const workers = Math.min(flags.workers, connections);
  const transport = transportOf(flags, 'client', given);
  if (given === undefined && transport.tls)
    throw new CliError(
      'TLS needs a server to connect to (the in-process server has no certificate): give its address, e.g. msgchannel listen 5000 --echo --cert FILE --key FILE',
      EXIT_USAGE,
    );
  let server: LocalServer | undefined;
  let target: Target;
  if (given === undefined) {
    server = await startLocalServer(flags.mode, framing, transport);
    target = server.address;
  } else {
    target = given;
  }
  const where = showTarget(target);
  const config: BenchConfigDoc = {
    mode: flags.mode,
    target: where,
    tls: transport.tls !== undefined,
    auth: transport.auth !== undefined,
    inProcessServer: server !== undefined,
    framing: framing.name,
    size: flags.size,
    connections,
    window: flags.window,
    rate: flags.rate ?? null,
    count: flags.count ?? null,
    duration: flags.duration ?? null,
    warmup: flags.warmup,
    workers,
    runs: flags.runs,
    timeout: flags.timeout,
  };
  const runConfig: RunConfig = {
    mode: flags.mode,
    target,
    transport,
    framing: flags.framing,
    size: flags.size,
    count: flags.count,
    duration: flags.duration,
    warmup: flags.warmup,
    window: flags.window,
    rate: flags.rate,
    timeout: flags.timeout,
    connections,
    firstConnection: 0,
    totalConnections: connections,
  };
  const doc: BenchDoc = {
    schema: SCHEMA,
    config,
    environment: environment(VERSION),
    runs: [],
    summary: null,
    warnings: [],
    errors: [],
  };
  const results: RunResult[] = [];
  const receivedCounts: number[] = [];
  const tty = process.stderr.isTTY === true;
  // Ctrl-C ends the bench early with what it measured so far; a second one kills it as usual.
  const stopping = new AbortController();
  process.once('SIGINT', () => stopping.abort());
  try {
    for (let i = 1; i <= flags.runs && !stopping.signal.aborted; i++) {
      // Send mode's receiving side, when the server is ours: what arrived from the end of the
      // warmup (seen on the progress ticks) until it stopped arriving after the run.
      let before = server?.received() ?? 0;
      let warm = flags.warmup === 0;
      const show = progressLine(flags, i);
      const result = await runOnWorkers(
        runConfig,
        workers,
        (done, elapsed) => {
          if (!warm && elapsed >= flags.warmup) {
            warm = true;
            before = server?.received() ?? 0;
          }
          show(done, elapsed);
        },
        stopping.signal,
      );
      if (tty) process.stderr.write('\n');
      results.push(result);
      const received = server && flags.mode === 'send' ? (await settled(server)) - before : null;
      if (received !== null) receivedCounts.push(received);
      doc.runs.push(runDoc(result, config, received));
    }
  } catch (e) {
    if (tty) process.stderr.write('\n');
    if (flags.json) {
      doc.errors.push({ message: describeError(e, { address: where }), code: errorCode(e) });
      print(JSON.stringify(doc, null, 2));
    }
    fail(e, { address: where });
  }
  const all = together(results);
  doc.summary = runDoc(all, config, receivedCounts.length ? receivedCounts.reduce((a, b) => a + b, 0) : null);
  doc.summary.samples = all.samples;
  doc.warnings = warnings(doc.summary, config);
  if (flags.svg !== undefined) {
    const lines = [{ label: 'latency (corrected)', color: '#d62728', points: percentileCurve(all.corrected) }];
    if (flags.rate !== undefined)
      lines.push({
        label: 'uncorrected (coordinated omission)',
        color: '#1f77b4',
        points: percentileCurve(all.uncorrected),
      });
    const title = `msgchannel bench ${flags.mode} ${config.target}: ${showSize(flags.size)}, ${connections} connections, ${flags.rate === undefined ? 'closed loop' : `${flags.rate}/s`}`;
    try {
      writeFileSync(flags.svg, percentilePlot(title, lines));
    } catch (e) {
      fail(new CliError(`cannot write --svg ${flags.svg}: ${describeError(e)}`));
    }
  }
  if (flags.json) print(JSON.stringify(doc, null, 2));
  else {
    print(resultTable(doc, half));
    const which = flags.rate === undefined ? [] : ['corrected'];
    if (flags.runs > 1) which.push(`all ${flags.runs} runs`);
    const shown = distribution(all.corrected, which.join(', ') || 'measured');
    if (shown) print(shown);
  }
  for (const w of doc.warnings) note(w);
  await server?.close();
  process.exit(0);
}

/** The error's code, or the last one its line names (a CliError names the code it reports). */
function errorCode(e: unknown): string | null {
  const named = describeError(e).match(/\b(?:ERR_[A-Z_]+|E[A-Z]{3,})\b/g);
  return codeOf(e) ?? named?.at(-1) ?? null;
}
