// The hand-rolled baseline: a plain net.Socket writing MSG frames (a burst of small ones packed
// into one buffer, big ones under cork/uncork), and the minimal parser of lib.mjs. The practical limit for Node, and the denominator of every ratio.
import * as net from 'node:net';
import {
  MiniParser,
  bodyOf,
  burstOf,
  framesOf,
  headerOf,
  manyClients,
  now,
  rttStats,
  serveUntilStopped,
  slowConsumer,
} from '../lib.mjs';

function listen(ctx, onSocket) {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    server.close();
    onSocket(s);
  });
  server.listen(0, '127.0.0.1', () => ctx.ready(server.address().port));
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

const drained = (s) => new Promise((resolve) => s.once('drain', resolve));

export function receiver(ctx) {
  if (ctx.kind === 'many') return manyReceiver(ctx);
  return new Promise((resolve) => {
    listen(ctx, (s) => {
      if (ctx.kind === 'pingpong') {
        const parser = new MiniParser((m) => {
          s.cork();
          s.write(headerOf(m.length));
          s.write(m);
          s.uncork();
        });
        s.on('data', (c) => parser.push(c));
        s.on('end', () => resolve({}));
        s.on('error', () => resolve({}));
        return;
      }
      if (ctx.slow) {
        const consumer = slowConsumer(ctx.count, { pause: () => s.pause(), resume: () => s.resume() });
        const parser = new MiniParser(consumer.push);
        s.on('data', (c) => parser.push(c));
        void consumer.done.then((r) => {
          resolve(r);
          s.destroy();
        });
        return;
      }
      let n = 0;
      let bytes = 0;
      let t1;
      const parser = new MiniParser((m) => {
        n++;
        bytes += m.length;
        if (n === ctx.count) t1 = now();
      });
      s.on('data', (c) => {
        parser.push(c);
        if (t1 !== undefined) {
          resolve({ t1, n, bytes });
          s.destroy();
        }
      });
    });
  });
}

export async function sender(ctx, port) {
  if (ctx.kind === 'many') return manySender(ctx, port);
  const s = await connect(port);
  const body = bodyOf(ctx.size);
  const header = headerOf(ctx.size);
  if (ctx.kind === 'pingpong') return pingpong(ctx, s, body, header);
  const burst = burstOf(ctx.size);
  const t0 = now();
  // The strongest hand-rolled sender: small frames of a burst packed into one buffer (one write,
  // one allocation per burst); big bodies written after their header under cork, never copied.
  const pack = ctx.size <= 16 * 1024;
  const frame = header.length + body.length;
  for (let i = 0; i < ctx.count;) {
    const end = Math.min(ctx.count, i + burst);
    if (pack) {
      const out = Buffer.allocUnsafe((end - i) * frame);
      for (let at = 0; i < end; i++, at += frame) {
        header.copy(out, at);
        body.copy(out, at + header.length);
      }
      s.write(out);
    } else {
      s.cork();
      for (; i < end; i++) {
        s.write(header);
        s.write(body);
      }
      s.uncork();
    }
    if (s.writableNeedDrain) await drained(s);
  }
  s.end();
  return { t0 };
}

async function pingpong(ctx, s, body, header) {
  let wake;
  const parser = new MiniParser(() => wake());
  s.on('data', (c) => parser.push(c));
  const rtts = [];
  const total = ctx.count + ctx.warmup;
  const t0 = now();
  for (let i = 0; i < total; i++) {
    const t = now();
    const got = new Promise((r) => (wake = r));
    s.cork();
    s.write(header);
    s.write(body);
    s.uncork();
    await got;
    rtts.push(now() - t);
  }
  const t1 = now();
  s.end();
  return { t0, t1, ...rttStats(rtts, ctx.warmup) };
}

/**
 * Workload (h)'s raw server: every client's MSG requests parsed by the minimal parser and answered
 * with the same body, the replies to one read written together (one buffer, one write).
 */
async function manyReceiver(ctx) {
  const sockets = new Set();
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    sockets.add(s);
    const replies = [];
    const parser = new MiniParser((m) => replies.push(m));
    s.on('data', (c) => {
      parser.push(c);
      if (replies.length === 0) return;
      s.write(framesOf(replies));
      replies.length = 0;
    });
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 1024 }, resolve));
  ctx.ready(server.address().port);
  const result = await serveUntilStopped(() => sockets.size, ctx.connections);
  server.close();
  for (const s of sockets) s.destroy();
  return result;
}

/**
 * Workload (h)'s hand-rolled client, for any server that answers MSG frames (this raw one and
 * msgchannel's Server): plain sockets, the request written as one prebuilt frame, replies counted
 * by the minimal parser.
 */
export function manySender(ctx, port) {
  const frame = framesOf([bodyOf(ctx.size)]);
  return manyClients(
    ctx,
    (i, onReply, lost) =>
      new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.off('error', reject);
          s.on('error', lost);
          s.on('close', () => lost(new Error(`connection ${i + 1} closed by the server`)));
          resolve({ send: () => s.write(frame), close: () => s.destroy() });
        });
        s.setNoDelay(true);
        const parser = new MiniParser(onReply);
        s.on('data', (c) => parser.push(c));
        s.once('error', reject);
      }),
  );
}
