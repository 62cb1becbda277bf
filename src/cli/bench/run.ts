/**
 * One run in one thread: open the connections, drive them through the warmup and the measured
 * phase, end at the count or the hard deadline, and return the counts, the per-second samples, the
 * two latency histograms and the generator's own load. Every failure rejects with an error the
 * command reports in one line; nothing here exits the process (a worker thread runs this too).
 */
import { monitorEventLoopDelay, performance, type RecordableHistogram } from 'node:perf_hooks';
import { Channel, RequestChannel } from '../../../channel.js';
import { parseFraming } from '../args.js';
import { CliError, EXIT_TIMEOUT, codeOf, describeError } from '../output.js';
import { framingMismatch, peerEnded, sameFraming, settleWithin } from '../commands/connect.js';
import { drive, Tally, UNIT, type Connection, type Mode } from './driver.js';
import { newHistogram } from './histogram.js';
import { closedLoop, openLoop } from './schedule.js';
import { connectHint, connectOptions, showTarget, type Target, type Transport } from '../transport.js';

/** What a run (or a worker's share of one) needs: plain data, so that it can go to a worker thread. */
export interface RunConfig {
  mode: Mode;
  target: Target;
  /** TLS and auth, as plain data. */
  transport: Transport;
  /** The --framing text (a Framing holds functions, which cannot go to a worker). */
  framing: string;
  size: number;
  /** Measured messages to complete; undefined: until the deadline. */
  count?: number;
  /** Measured seconds (after the warmup); undefined: until the count. */
  duration?: number;
  warmup: number;
  window: number;
  /** Messages/s in all (open loop); undefined: closed loop. */
  rate?: number;
  timeout: number;
  /** This thread's connections: indexes [firstConnection, firstConnection + connections) of totalConnections. */
  connections: number;
  firstConnection: number;
  totalConnections: number;
}

export interface RunResult {
  /** Measured messages completed. */
  messages: number;
  /** Measured messages started and not completed when the deadline ended the run. */
  abandoned: number;
  /** The measured phase, from the end of the warmup to the end. */
  seconds: number;
  /** Messages completed in each whole second of the measured phase. */
  samples: number[];
  /** Measured messages completed by each connection, in connection order. */
  perConnection: number[];
  corrected: RecordableHistogram;
  uncorrected: RecordableHistogram;
  lateGenerator: number;
  lateWindow: number;
  /** Measured messages started (the late counts' denominator). */
  started: number;
  /** Open loop: measured messages due over LATE_MS before the end that never started (the window stayed full). */
  neverStarted: number;
  /** Messages (measured or not) still in flight at the end. */
  inFlight: number;
  /** Messages answered, the warmup's included (none: the server may speak another framing). */
  answered: number;
  /** The fraction of the measured phase this thread's event loop was busy (0-1). */
  eventLoopUtilization: number;
  /** The 99th percentile of this thread's event-loop delay in the measured phase, ms. */
  eventLoopDelayP99: number;
}

/** Connections opened at once: more would overflow a server's listen backlog (511 by default) and wait for SYN retries. */
const CONNECT_BATCH = 128;
/** How often the watchdog, the samples and the progress callback run. */
const TICK_MS = 100;

async function openConnections(config: RunConfig): Promise<Connection[]> {
  const options = connectOptions(config.target, config.transport, parseFraming(config.framing), config.timeout);
  const where = showTarget(config.target);
  const conns: Connection[] = [];
  try {
    for (let i = 0; i < config.connections; i += CONNECT_BATCH) {
      const batch = Array.from({ length: Math.min(CONNECT_BATCH, config.connections - i) }, (_, j) =>
        Channel.connect(options).catch((e: unknown) => {
          throw connectError(e, config, where, i + j);
        }),
      );
      const settled = await Promise.allSettled(batch);
      for (const s of settled) if (s.status === 'fulfilled') conns.push({ ch: s.value });
      const failure = settled.find((s) => s.status === 'rejected');
      if (failure) throw failure.reason;
    }
  } catch (e) {
    for (const c of conns) c.ch.destroy();
    throw e;
  }
  if (config.mode === 'request') for (const c of conns) c.rc = new RequestChannel(c.ch);
  return conns;
}

function connectError(e: unknown, config: RunConfig, where: string, index: number): CliError {
  const which =
    config.totalConnections > 1
      ? ` (connection ${config.firstConnection + index + 1} of ${config.totalConnections})`
      : '';
  const hint = connectHint(codeOf(e), config.transport, parseFraming(config.framing));
  switch (codeOf(e)) {
    case 'EMFILE':
    case 'ENFILE':
      return new CliError(
        `cannot open another connection to ${where}${which}: too many open files (${codeOf(e)}): raise the limit (ulimit -n) or use fewer --connections`,
      );
    case 'EADDRNOTAVAIL':
      return new CliError(
        `cannot open another connection to ${where}${which}: no local port left (EADDRNOTAVAIL): use fewer --connections`,
      );
    case 'ERR_TIMEOUT':
      return new CliError(
        `cannot connect to ${where}${which}: no answer within ${config.timeout} s (ERR_TIMEOUT)${hint}`,
        EXIT_TIMEOUT,
      );
    case undefined:
    default:
      return new CliError(
        describeError(e, { action: 'connect', address: where }) + hint + (which && ` ${which.trim()}`),
      );
  }
}

/** The one line for a run that failed: a CliError as it is, a lost connection with what was done. */
function failure(e: unknown, config: RunConfig, tally: Tally): CliError {
  if (e instanceof CliError) return e;
  const where = showTarget(config.target);
  const framing = parseFraming(config.framing);
  const closedEarly =
    tally.answered === 0 && tally.firstSentAt !== undefined && performance.now() - tally.firstSentAt < 1000;
  if (peerEnded(e) && closedEarly) return framingMismatch(where, framing, e);
  return new CliError(
    `connection to ${where} lost during the benchmark after ${tally.doneMeasured} ${UNIT[config.mode]}: ${describeError(e, { address: where })}`,
  );
}

/** What a stall's line says of the run so far. */
interface Progressed {
  doneMeasured: number;
  inFlight: number;
  answered: number;
}

/**
 * No answer for `span` (by default --timeout, with messages in flight; else the measured time
 * before the deadline, named by `limit`): the one line, exit 124.
 */
function stalled(
  config: RunConfig,
  tally: Progressed,
  span = `for ${config.timeout} s`,
  limit = '--timeout',
): CliError {
  const where = showTarget(config.target);
  const framing = parseFraming(config.framing);
  const done = `after ${tally.doneMeasured} ${UNIT[config.mode]}`;
  const hint = tally.answered === 0 ? ` ${sameFraming(framing)}` : '';
  const cause = `(${limit}; ERR_TIMEOUT)`;
  switch (config.mode) {
    case 'echo':
      return new CliError(
        `no echo from ${where} ${span} ${done}, with ${tally.inFlight} messages in flight ${cause}: is it an echo server?${hint}`,
        EXIT_TIMEOUT,
      );
    case 'request':
      return new CliError(
        `no reply from ${where} ${span} ${done}, with ${tally.inFlight} requests outstanding ${cause}: does it answer requests (a Server with onRequest)?${hint}`,
        EXIT_TIMEOUT,
      );
    case 'send':
      return new CliError(
        `sends to ${where} made no progress ${span} ${done}, with ${tally.inFlight} messages queued ${cause}: is it reading?`,
        EXIT_TIMEOUT,
      );
  }
}

/**
 * A run (all its connections, on every worker) that the deadline or Ctrl-C ended before any
 * measured answer, with messages in flight: no result to show, so the stall's one line, exit 124.
 */
export function nothingAnswered(config: RunConfig, r: RunResult, stopped: boolean): CliError | undefined {
  if (r.messages > 0 || r.inFlight === 0) return undefined;
  const progressed = { doneMeasured: 0, inFlight: r.inFlight, answered: r.answered };
  return stalled(config, progressed, `in the ${r.seconds.toFixed(1)} s measured`, stopped ? 'stopped' : '--duration');
}

/** Called every TICK_MS with the measured messages done and the seconds since the start (warmup included). */
export type Progress = (done: number, elapsed: number) => void;

/**
 * One run. `stop` ends it early as the deadline would (Ctrl-C): what was measured until then is
 * the result.
 */
export async function run(config: RunConfig, onProgress: Progress = () => {}, stop?: AbortSignal): Promise<RunResult> {
  const conns = await openConnections(config);
  const where = showTarget(config.target);
  const tally = new Tally(newHistogram(), newHistogram(), new Array<number>(conns.length).fill(0));
  tally.limit = config.count ?? Infinity;
  const start = performance.now();
  tally.measureStart = start + config.warmup * 1000;
  tally.lastDoneAt = start;
  const body = Buffer.alloc(config.size, 'x');
  const failed = (ch: Channel, e: unknown, sending: boolean): void => {
    if (tally.finished) return; // the run is over: the channels were closed under their loops
    if (e instanceof CliError) return tally.finish({ ok: false, error: e });
    if (codeOf(e) === 'ERR_REMOTE') {
      const error = new CliError(
        `${where} answered a request with an error after ${tally.doneMeasured} requests: ${describeError(e)}: is it a Server with onRequest?`,
      );
      return tally.finish({ ok: false, error });
    }
    if (sending && ch.isOpen) {
      // Refused here (too large for the framing or maxMessageSize, the send queue full): not a lost connection.
      const error = new CliError(
        `cannot send to ${where} (--size ${config.size}) after ${tally.doneMeasured} ${UNIT[config.mode]}: ${describeError(e)}`,
      );
      return tally.finish({ ok: false, error });
    }
    void (async () => {
      const reason = ch.isOpen ? e : ((await settleWithin(ch.closed, 1000, undefined)) ?? e);
      tally.finish({ ok: false, error: reason });
    })();
  };
  const driven = conns.map((conn, i) => {
    const index = config.firstConnection + i;
    return drive(conn, tally, {
      mode: config.mode,
      index: i,
      schedule: config.rate === undefined ? closedLoop : openLoop(config.rate, index, config.totalConnections, start),
      window: config.window,
      body,
      failed: (e, sending) => failed(conn.ch, e, sending),
      unexpected: () => new CliError(`${where} sent a message with none of ours in flight: is it an echo server?`),
    });
  });

  // The generator's own load, over the measured phase.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  let eluStart: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  let measuring = config.warmup === 0;
  if (measuring) {
    lag.enable();
    eluStart = performance.eventLoopUtilization();
  }
  const samples: number[] = [];
  let nextSampleAt = tally.measureStart + 1000;
  let doneAtLastSample = 0;
  /** Closes the per-second samples of every whole second up to `now`. */
  const sample = (now: number): void => {
    while (now >= nextSampleAt) {
      samples.push(tally.doneMeasured - doneAtLastSample);
      doneAtLastSample = tally.doneMeasured;
      nextSampleAt += 1000;
    }
  };
  const ticker = setInterval(() => {
    const now = performance.now();
    if (!measuring && now >= tally.measureStart) {
      measuring = true;
      lag.enable();
      eluStart = performance.eventLoopUtilization();
    }
    sample(now);
    onProgress(tally.doneMeasured, (now - start) / 1000);
    if (tally.inFlight > 0 && now - tally.lastDoneAt > config.timeout * 1000) {
      tally.finish({ ok: false, error: stalled(config, tally) });
    }
  }, TICK_MS);
  const onStop = (): void => tally.finish({ ok: true });
  stop?.addEventListener('abort', onStop, { once: true });
  if (stop?.aborted) onStop();
  const deadline =
    config.duration === undefined
      ? undefined
      : setTimeout(() => tally.finish({ ok: true }), (config.warmup + config.duration) * 1000);

  const outcome = await tally.outcome;
  const end = performance.now();
  clearInterval(ticker);
  sample(end);
  clearTimeout(deadline);
  stop?.removeEventListener('abort', onStop);
  lag.disable();
  const elu = eluStart === undefined ? 0 : performance.eventLoopUtilization(eluStart).utilization;
  onProgress(tally.doneMeasured, (end - start) / 1000);
  const abandoned = tally.startedMeasured - tally.doneMeasured;
  const neverStarted = Math.min(
    driven.reduce((n, d) => n + d.neverStarted(end), 0),
    tally.limit - tally.startedMeasured,
  );
  if (!outcome.ok || tally.inFlight > 0) {
    // Messages still in flight: close without waiting for their answers, or for a server that stalls.
    for (const c of conns) c.ch.destroy();
  } else {
    const lost = await Promise.all(
      conns.map(async (c) => {
        const closing = (c.rc ?? c.ch).close({ timeout: 2000 }).catch(() => c.ch.destroy());
        await closing;
        return settleWithin(c.ch.closed, 1000, undefined);
      }),
    );
    // One-way sends resolve once written: a peer that reset the connection under them shows only here.
    const reason = lost.find((e) => e !== undefined);
    if (config.mode === 'send' && reason !== undefined) throw failure(reason, config, tally);
  }
  if (!outcome.ok) throw failure(outcome.error, config, tally);
  return {
    messages: tally.doneMeasured,
    abandoned,
    seconds: Math.max(0, end - tally.measureStart) / 1000,
    samples,
    perConnection: tally.perConnection,
    corrected: tally.corrected,
    uncorrected: tally.uncorrected,
    lateGenerator: tally.lateGenerator,
    lateWindow: tally.lateWindow,
    started: tally.startedMeasured,
    neverStarted,
    inFlight: tally.inFlight,
    answered: tally.answered,
    eventLoopUtilization: elu,
    eventLoopDelayP99: lag.count === 0 ? 0 : lag.percentile(99) / 1e6,
  };
}
