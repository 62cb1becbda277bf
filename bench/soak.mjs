// Soak test (not run in CI): N clients send checksummed, sequence-numbered messages through an
// echo server (a Server from dist/, in a child process) for a while, each with a window of
// messages in flight. Every reply is checked: nothing lost, duplicated, reordered or corrupted.
// Reports messages per second and the RSS of the server and of the clients' process over time.
//
//   npm run build && node bench/soak.mjs [--clients 200] [--duration 60] [--window 8] [--size 256]
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Channel, Server } from '../dist/channel.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};

if (process.argv[2] === '--server') {
  const server = new Server({ onMessage: (conn, m) => conn.send(m), onError: (e) => console.error('server:', e) });
  const { port } = await server.listen(0, '127.0.0.1');
  process.send({ port });
  const sampler = setInterval(() => process.send({ rss: process.memoryUsage().rss }), 1000);
  process.on('message', async (m) => {
    if (m === 'stop') {
      clearInterval(sampler);
      await server.close({ timeout: 5000 });
      process.send({ stopped: true, rss: process.memoryUsage().rss });
      process.disconnect();
    }
  });
} else {
  const CLIENTS = arg('clients', 200);
  const DURATION = arg('duration', 60) * 1000;
  const WINDOW = arg('window', 8);
  const SIZE = arg('size', 256);

  const child = fork(fileURLToPath(import.meta.url), ['--server'], { stdio: 'inherit' });
  const serverRss = [];
  const port = await new Promise((resolve) =>
    child.on('message', (m) => {
      if (m.port) resolve(m.port);
      if (m.rss) serverRss.push(m.rss);
    }),
  );

  const digest = (b) => createHash('sha256').update(b.subarray(16)).digest();
  function message(client, seq) {
    const body = Buffer.alloc(SIZE + (seq % 13) * 7);
    body.writeUInt32BE(client, 0);
    body.writeUInt32BE(seq, 4);
    body.fill(seq & 0xff, 16);
    digest(body).copy(body, 8, 0, 8);
    return body;
  }
  const problems = [];
  let total = 0;
  let stop = false;

  async function client(id) {
    const ch = await Channel.connect('127.0.0.1', port);
    let sent = 0;
    let got = 0;
    const reader = (async () => {
      for (;;) {
        let m;
        try {
          m = await ch.recv();
        } catch {
          return;
        }
        const seq = m.readUInt32BE(4);
        if (m.readUInt32BE(0) !== id) problems.push(`client ${id}: someone else's message`);
        else if (seq !== got)
          problems.push(
            `client ${id}: expected seq ${got}, got ${seq} (${seq < got ? 'duplicate/reordered' : 'lost'})`,
          );
        else if (!digest(m).subarray(0, 8).equals(m.subarray(8, 16)))
          problems.push(`client ${id}: seq ${seq} corrupted`);
        got = seq + 1;
        total++;
        if (got === sent && stop) return;
        wake?.();
      }
    })();
    let wake;
    while (!stop) {
      while (sent - got >= WINDOW) await new Promise((r) => (wake = r));
      wake = undefined;
      await ch.send(message(id, sent++));
    }
    while (got < sent && problems.length === 0) await new Promise((r) => setTimeout(r, 10));
    await ch.close();
    await reader;
    return { sent, got };
  }

  const started = Date.now();
  const samples = [];
  let lastTotal = 0;
  const sampler = setInterval(() => {
    const t = Math.round((Date.now() - started) / 1000);
    const rate = (total - lastTotal) / 5;
    lastTotal = total;
    const s = {
      t,
      msgsPerSec: Math.round(rate),
      clientRssMiB: +(process.memoryUsage().rss / 2 ** 20).toFixed(1),
      serverRssMiB: +((serverRss.at(-1) ?? 0) / 2 ** 20).toFixed(1),
    };
    samples.push(s);
    console.log(`t=${s.t}s  ${s.msgsPerSec} msg/s  client RSS ${s.clientRssMiB} MiB  server RSS ${s.serverRssMiB} MiB`);
  }, 5000);
  const runs = Array.from({ length: CLIENTS }, (_, i) => client(i));
  await new Promise((r) => setTimeout(r, DURATION));
  stop = true;
  const results = await Promise.all(runs);
  clearInterval(sampler);
  const elapsed = (Date.now() - started) / 1000;
  child.send('stop');
  await new Promise((r) => child.on('exit', r));
  const sent = results.reduce((a, r) => a + r.sent, 0);
  const got = results.reduce((a, r) => a + r.got, 0);
  const peak = (xs) => Math.max(...xs);
  const summary = {
    clients: CLIENTS,
    seconds: +elapsed.toFixed(1),
    window: WINDOW,
    size: SIZE,
    sent,
    echoed: got,
    msgsPerSec: Math.round(got / elapsed),
    problems: problems.length,
    serverPeakRssMiB: +(peak(serverRss) / 2 ** 20).toFixed(1),
    serverRssAfter10sMiB: +((serverRss[9] ?? serverRss.at(-1)) / 2 ** 20).toFixed(1),
    clientPeakRssMiB: peak(samples.map((s) => s.clientRssMiB)),
  };
  console.log(JSON.stringify({ summary, samples }, null, 1));
  if (problems.length > 0 || sent !== got) {
    console.error(problems.slice(0, 20).join('\n'));
    process.exitCode = 1;
  }
}
