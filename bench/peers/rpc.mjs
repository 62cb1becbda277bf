// msgchannel's RequestChannel over TCP on loopback, for the request/reply workload (g): round trips
// at 1 outstanding (timed one by one: p50/p99) and at 64 outstanding (64 async callers, each
// awaiting its request() in a loop, as an application would), then a one-way run (rc.send in
// bursts). The plain Channel's figures for the same phases come from channel.mjs.
import { Channel, RequestChannel } from '../../dist/channel.js';
import { bodyOf, burstOf, now, rttStats } from '../lib.mjs';

export async function receiver(ctx) {
  const listener = Channel.listen('127.0.0.1', 0);
  const address = await listener.listening;
  ctx.ready(address.port);
  const ch = await listener.accept();
  await listener.close();
  const rc = new RequestChannel(ch, { onRequest: (body) => body, maxPending: 1024 });
  let n = 0;
  while (n < ctx.oneway) {
    rc.tryRecv() ?? (await rc.recv());
    n++;
  }
  await rc.send('done');
  await rc.closed;
  return {};
}

export async function sender(ctx, port) {
  const ch = await Channel.connect('127.0.0.1', port);
  const rc = new RequestChannel(ch, { maxPending: 1024 });
  const body = bodyOf(ctx.size);
  // 1 outstanding, each round trip timed.
  const rtts = [];
  const total1 = ctx.count1 + ctx.warmup;
  let t = now();
  const t0 = t;
  let start1 = t;
  for (let i = 0; i < total1; i++) {
    if (i === ctx.warmup) start1 = now();
    t = now();
    await rc.request(body);
    rtts.push(now() - t);
  }
  const end1 = now();
  // `depth` outstanding: that many callers, each issuing requests one after the other.
  let issued = 0;
  const caller = async () => {
    while (issued < ctx.count) {
      issued++;
      await rc.request(body);
    }
  };
  const start64 = now();
  await Promise.all(Array.from({ length: ctx.depth }, caller));
  const end64 = now();
  // One-way: bursts of rc.send() as in (a), then the receiver's 'done' once it has them all.
  const burst = burstOf(ctx.size);
  const startOw = now();
  let last;
  for (let i = 0; i < ctx.oneway;) {
    const end = Math.min(ctx.oneway, i + burst);
    for (; i < end; i++) last = rc.send(body);
    await last;
  }
  await rc.recv();
  const endOw = now();
  await rc.close({ timeout: 60_000 }).catch(() => {});
  const s = (a, b) => Number(b - a) / 1e9;
  return {
    t0,
    t1: endOw,
    ...rttStats(rtts, ctx.warmup),
    rt1: ctx.count1 / s(start1, end1),
    rt64: ctx.count / s(start64, end64),
    oneway: ctx.oneway / s(startOw, endOw),
  };
}
