/**
 * Using more cores: the same Server in several worker processes sharing one port, with
 * node:cluster (the primary accepts and hands connections to the workers round-robin). Each worker
 * echoes `<pid>: <message>`, so a client can see which process served it.
 *
 *   node dist/examples/cluster.js [--workers N] [--port P] [--seconds N]
 *
 * Prints `listening on 127.0.0.1:PORT with N workers` once every worker listens (port 0 picks a
 * free port, the same for every worker). SIGINT/SIGTERM or --seconds: each worker closes its
 * Server gracefully (Server.close(): stop accepting, finish what arrived, close every connection), then exits.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { Server } from 'msgchannel';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

if (cluster.isPrimary) {
  const workers = option('workers', availableParallelism());
  const port = option('port', 5000);
  const seconds = option('seconds', Number(process.env.SECONDS ?? 0));
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    const worker = cluster.fork({ CLUSTER_PORT: String(port) });
    worker.on('message', (m: { listening?: number }) => {
      if (m.listening !== undefined && ++listening === workers) {
        console.log(`listening on 127.0.0.1:${m.listening} with ${workers} workers`);
      }
    });
  }
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.send('stop');
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const timer = seconds > 0 ? setTimeout(stop, seconds * 1000) : undefined;
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers ?? {}).length === 0) {
      clearTimeout(timer);
      console.log('all workers stopped');
    }
  });
} else {
  const server = new Server({ onMessage: (conn, msg) => conn.send(`${process.pid}: ${msg}`) });
  const { port } = await server.listen(Number(process.env.CLUSTER_PORT), '127.0.0.1');
  process.send!({ listening: port });
  process.on('message', async (m) => {
    if (m !== 'stop') return;
    await server.close();
    process.disconnect(); // lets the worker exit
  });
  process.on('SIGINT', () => {}); // the primary coordinates the shutdown
}
