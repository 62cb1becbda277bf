// axon 2 push/pull (amp framing) for the streams, req/rep for the ping-pong. axon has no
// backpressure of its own: the sender awaits 'drain' of the underlying net.Socket after a burst.
import axon from 'axon';
import { bodyOf, burstOf, now, rttStats, slowConsumer } from '../lib.mjs';

function bind(sock, ctx) {
  return new Promise((resolve) =>
    sock.bind(0, '127.0.0.1', () => {
      ctx.ready(sock.server.address().port);
      resolve();
    }),
  );
}

function connected(sock, port) {
  return new Promise((resolve) => {
    sock.once('connect', (s) => resolve(s));
    sock.connect(port, '127.0.0.1');
  });
}

export async function receiver(ctx) {
  if (ctx.kind === 'pingpong') {
    const rep = axon.socket('rep');
    const total = ctx.count + ctx.warmup;
    let n = 0;
    return new Promise((resolve) => {
      rep.on('message', (m, reply) => {
        reply(m);
        if (++n === total) setTimeout(() => resolve({}), 50);
      });
      bind(rep, ctx);
    });
  }
  const pull = axon.socket('pull');
  let n = 0;
  let bytes = 0;
  return new Promise((resolve) => {
    if (ctx.slow) {
      const flow = {
        pause: () => {
          for (const s of pull.socks) s.pause();
        },
        resume: () => {
          for (const s of pull.socks) s.resume();
        },
      };
      const consumer = slowConsumer(ctx.count, flow);
      pull.on('message', consumer.push);
      void consumer.done.then(resolve);
      bind(pull, ctx);
      return;
    }
    pull.on('message', (m) => {
      n++;
      bytes += m.length;
      if (n === ctx.count) resolve({ t1: now(), n, bytes });
    });
    bind(pull, ctx);
  });
}

export async function sender(ctx, port) {
  const body = bodyOf(ctx.size);
  if (ctx.kind === 'pingpong') {
    const req = axon.socket('req');
    await connected(req, port);
    const rtts = [];
    const total = ctx.count + ctx.warmup;
    const t0 = now();
    for (let i = 0; i < total; i++) {
      const t = now();
      await new Promise((r) => req.send(body, () => r()));
      rtts.push(now() - t);
    }
    const t1 = now();
    return { t0, t1, ...rttStats(rtts, ctx.warmup) };
  }
  const push = axon.socket('push');
  const s = await connected(push, port);
  s.setNoDelay(true);
  const burst = burstOf(ctx.size);
  const t0 = now();
  for (let i = 0; i < ctx.count;) {
    const end = Math.min(ctx.count, i + burst);
    for (; i < end; i++) push.send(body);
    if (s.writableNeedDrain) await new Promise((r) => s.once('drain', r));
  }
  return { t0 };
}
