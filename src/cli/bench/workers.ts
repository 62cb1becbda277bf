/**
 * `--workers N`: the run split over N worker threads when one event loop is the bottleneck. Each
 * worker opens its share of the connections (and of --count; the open-loop schedule is global, so
 * the shares of --rate follow), runs them with run(), and posts its result back: the histograms
 * are cloneable and merge exactly with add(), the per-second samples add up second by second.
 */
import { Worker } from 'node:worker_threads';
import { CliError } from '../output.js';
import { nothingAnswered, run, type Progress, type RunConfig, type RunResult } from './run.js';

/** What the main thread posts to a worker: 'stop' ends its run early (Ctrl-C). */
export type ToWorker = 'stop';

/** What a worker posts: its progress, its result, or its failure as the one line to report. */
export type WorkerMessage =
  | { kind: 'progress'; done: number; elapsed: number }
  | { kind: 'result'; result: RunResult }
  | { kind: 'failed'; message: string; exitCode: number };

/** The shares of `total` over `parts`, as even as whole numbers go. */
export function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

export function merge(results: RunResult[]): RunResult {
  const [first, ...rest] = results;
  const m: RunResult = { ...first!, samples: [...first!.samples], perConnection: [...first!.perConnection] };
  for (const r of rest) {
    m.messages += r.messages;
    m.perConnection.push(...r.perConnection); // the workers' connections follow each other
    m.abandoned += r.abandoned;
    m.seconds = Math.max(m.seconds, r.seconds);
    m.corrected.add(r.corrected);
    m.uncorrected.add(r.uncorrected);
    m.lateGenerator += r.lateGenerator;
    m.lateWindow += r.lateWindow;
    m.started += r.started;
    m.neverStarted += r.neverStarted;
    m.inFlight += r.inFlight;
    m.answered += r.answered;
    m.eventLoopUtilization = Math.max(m.eventLoopUtilization, r.eventLoopUtilization);
    m.eventLoopDelayP99 = Math.max(m.eventLoopDelayP99, r.eventLoopDelayP99);
    // Whole seconds every worker completed.
    m.samples = m.samples.slice(0, r.samples.length).map((n, i) => n + r.samples[i]!);
  }
  return m;
}

/** Runs `config` on `workers` threads (in this thread when 1) and merges the results. */
export async function runOnWorkers(
  config: RunConfig,
  workers: number,
  onProgress: Progress,
  stop?: AbortSignal,
): Promise<RunResult> {
  const result = await (workers <= 1 ? run(config, onProgress, stop) : onWorkers(config, workers, onProgress, stop));
  // Decided on every connection together: one worker's silent share is not a silent server.
  const silent = nothingAnswered(config, result, stop?.aborted === true);
  if (silent !== undefined) throw silent;
  return result;
}

/** Runs `config`'s connections shared over `workers` threads and merges their results. */
async function onWorkers(
  config: RunConfig,
  workers: number,
  onProgress: Progress,
  stop?: AbortSignal,
): Promise<RunResult> {
  const connections = shares(config.connections, workers);
  const counts = config.count === undefined ? undefined : shares(config.count, workers);
  const progress = new Array<number>(workers).fill(0);
  const threads: Worker[] = [];
  let first = config.firstConnection;
  const results = connections.map((n, i) => {
    const share: RunConfig = { ...config, connections: n, firstConnection: first, count: counts?.[i] };
    first += n;
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: share });
    threads.push(worker);
    stop?.addEventListener('abort', () => worker.postMessage('stop'), { once: true });
    return new Promise<RunResult>((resolve, reject) => {
      worker.on('message', (m: WorkerMessage) => {
        if (m.kind === 'progress') {
          progress[i] = m.done;
          onProgress(
            progress.reduce((a, b) => a + b, 0),
            m.elapsed,
          );
        } else if (m.kind === 'result') resolve(m.result);
        else reject(new CliError(m.message, m.exitCode));
      });
      worker.on('error', reject);
      worker.on('exit', (code) =>
        reject(new CliError(`worker ${i + 1} of ${workers} exited (code ${code}) without a result`)),
      );
    });
  });
  try {
    return merge(await Promise.all(results));
  } finally {
    await Promise.all(threads.map((w) => w.terminate()));
  }
}
