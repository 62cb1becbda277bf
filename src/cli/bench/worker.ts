/** A worker thread of `--workers N`: runs its share of the connections and posts the result (see workers.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { CliError, EXIT_ERROR, describeError } from '../output.js';
import { run, type RunConfig } from './run.js';
import type { ToWorker, WorkerMessage } from './workers.js';

const port = parentPort!;
const post = (m: WorkerMessage): void => port.postMessage(m);
const stop = new AbortController();
port.on('message', (m: ToWorker) => {
  if (m === 'stop') stop.abort();
});
try {
  const result = await run(
    workerData as RunConfig,
    (done, elapsed) => post({ kind: 'progress', done, elapsed }),
    stop.signal,
  );
  post({ kind: 'result', result });
} catch (e) {
  post({ kind: 'failed', message: describeError(e), exitCode: e instanceof CliError ? e.exitCode : EXIT_ERROR });
}
port.unref(); // the result is posted: nothing more to wait for
