/**
 * Using more cores: the same Server in several worker processes sharing one port, with
 * node:cluster (the primary accepts and hands connections to the workers round-robin). Each worker
 * echoes `<pid>: <message>`, so a client can see which process served it.
 *
 *   node dist/examples/cluster.js [--workers N] [--port P] [--seconds N]
 *
 * Prints `listening on 127.0.0.1:PORT with N workers` once every worker listens (port 0 picks a
 * free port, the same for every worker). Without --seconds (or SECONDS=N) the primary then
 * connects four clients itself, prints which worker echoed each, and stops: the example ends by
 * itself. With --seconds N it serves other clients for N seconds instead (0: until SIGINT/SIGTERM).
 * Stopping: each worker closes its Server gracefully (Server.close(): stop accepting, finish what
 * arrived, close every connection), then exits.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { Channel, Server } from 'msgchannel';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

if (cluster.isPrimary) {
  const workers = option('workers', availableParallelism());
  const port = option('port', 5000);
  const secondsEnv = process.env.SECONDS;
  const seconds = option('seconds', secondsEnv !== undefined ? Number(secondsEnv) : -1); // -1: a fixed exchange
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    const worker = cluster.fork({ CLUSTER_PORT: String(port) });
    worker.on('message', (m: { listening?: number }) => {
      if (m.listening !== undefined && ++listening === workers) {
        console.log(`listening on 127.0.0.1:${m.listening} with ${workers} workers`);
        if (seconds < 0)
          void exchange(m.listening)
            .catch((error: Error) => {
              console.error(error);
              process.exitCode = 1;
            })
            .finally(stop);
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
  // The default run: four clients, one after another, each answered by the worker its connection went to.
  const exchange = async (port: number): Promise<void> => {
    for (let i = 0; i < 4; i++) {
      const ch = await Channel.connect('127.0.0.1', port);
      await ch.send(`hello ${i}`);
      console.log(`client ${i} got: ${await ch.recv({ timeout: 5000 })}`);
      await ch.close();
    }
  };
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
  process.on('message', (m) => {
    if (m !== 'stop') return;
    void server.close().then(() => process.disconnect()); // disconnecting lets the worker exit
  });
  process.on('SIGINT', () => {}); // the primary coordinates the shutdown
}
