// ws 8 without compression (perMessageDeflate off), binary messages. The sender issues a burst
// without waiting and awaits the write callback of the burst's last message (ws's backpressure).
import { WebSocket, WebSocketServer } from 'ws';
import { bodyOf, burstOf, manyClients, now, rttStats, serveUntilStopped, slowConsumer } from '../lib.mjs';

/** ws's own default maxPayload (100 MiB), raised for (e); channel-ws takes it as its maxMessageSize. */
export const maxPayload = (ctx) => Math.max(ctx.maxSize, 100 * 1024 * 1024);

export function receiver(ctx) {
  if (ctx.kind === 'many') return manyReceiver(ctx);
  return new Promise((resolve, reject) => {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      perMessageDeflate: false,
      maxPayload: maxPayload(ctx),
    });
    wss.on('listening', () => ctx.ready(wss.address().port));
    wss.on('error', reject);
    wss.on('connection', (ws) => {
      wss.close();
      if (ctx.kind === 'pingpong') {
        ws.on('message', (m) => ws.send(m));
        ws.on('close', () => resolve({}));
        return;
      }
      if (ctx.slow) {
        const consumer = slowConsumer(ctx.count, { pause: () => ws.pause(), resume: () => ws.resume() });
        ws.on('message', consumer.push);
        void consumer.done.then(resolve);
        return;
      }
      let n = 0;
      let bytes = 0;
      ws.on('message', (m) => {
        n++;
        bytes += m.length;
        if (n === ctx.count) resolve({ t1: now(), n, bytes });
      });
    });
  });
}

export async function sender(ctx, port) {
  if (ctx.kind === 'many') return manySender(ctx, port);
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: maxPayload(ctx) });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws._socket.setNoDelay(true);
  const body = bodyOf(ctx.size);
  if (ctx.kind === 'pingpong') {
    let wake;
    ws.on('message', () => wake());
    const rtts = [];
    const total = ctx.count + ctx.warmup;
    const t0 = now();
    for (let i = 0; i < total; i++) {
      const t = now();
      const got = new Promise((r) => (wake = r));
      await new Promise((r, j) => ws.send(body, (e) => (e ? j(e) : r())));
      await got;
      rtts.push(now() - t);
    }
    const t1 = now();
    ws.close();
    return { t0, t1, ...rttStats(rtts, ctx.warmup) };
  }
  const burst = burstOf(ctx.size);
  const t0 = now();
  for (let i = 0; i < ctx.count;) {
    const end = Math.min(ctx.count, i + burst);
    for (; i < end - 1; i++) ws.send(body);
    i++;
    await new Promise((r, j) => ws.send(body, (e) => (e ? j(e) : r())));
  }
  return { t0 };
}

/** Workload (h): a WebSocketServer sending every binary message back to its client. */
async function manyReceiver(ctx) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, backlog: 1024 });
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('connection', (ws) => {
    ws.on('message', (m, isBinary) => ws.send(m, { binary: isBinary }));
    ws.on('error', () => {});
  });
  ctx.ready(wss.address().port);
  const result = await serveUntilStopped(() => wss.clients.size, ctx.connections);
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  return result;
}

/** Workload (h)'s hand-rolled client over ws: one WebSocket per connection, the body as one binary message. */
function manySender(ctx, port) {
  const body = bodyOf(ctx.size);
  return manyClients(
    ctx,
    (i, onReply, lost) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
        ws.once('open', () => {
          ws.off('error', reject);
          ws.on('error', lost);
          ws.on('close', () => lost(new Error(`connection ${i + 1} closed by the server`)));
          resolve({ send: () => ws.send(body), close: () => ws.terminate() });
        });
        ws.on('message', onReply);
        ws.once('error', reject);
      }),
  );
}
