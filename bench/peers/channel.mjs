// msgchannel's Channel over TCP on loopback (and, through inproc(), the in-memory Channel.pair).
import { Channel, ChannelClosedError } from '../../dist/channel.js';
import { bodyOf, burstOf, now, rttStats, sleep, slowEvery } from '../lib.mjs';

const options = (ctx) => ({ maxMessageSize: Math.max(ctx.maxSize, 64 * 1024 * 1024) });

/**
 * The receiver drains what is already buffered with tryRecv() (no promise) and awaits recv() only
 * when nothing is: the documented fast way to read a busy channel. The `channel-await` peer runs
 * the plain `for await (const m of ch)` loop most code writes, for comparison; `channel-release`
 * gives each message back with ch.release() once counted.
 */
export async function recvLoop(ch, ctx, forAwait = false, release = false) {
  let n = 0;
  let bytes = 0;
  if (forAwait) {
    for await (const m of ch) {
      n++;
      bytes += m.length;
      if (n === ctx.count) break;
      if (ctx.slow && n % slowEvery === 0) await sleep(1);
    }
  } else {
    while (n < ctx.count) {
      const m = ch.tryRecv() ?? (await ch.recv());
      n++;
      bytes += m.length;
      if (release) ch.release(m);
      if (ctx.slow && n % slowEvery === 0) await sleep(1);
    }
  }
  // How much of it the direct receive path read straight into message bodies (0 for the pair).
  return { t1: now(), n, bytes, direct: ch.stats.bytesReadDirect };
}

export async function sendLoop(ch, ctx) {
  const body = bodyOf(ctx.size);
  const burst = burstOf(ctx.size);
  const t0 = now();
  let last;
  for (let i = 0; i < ctx.count;) {
    const end = Math.min(ctx.count, i + burst);
    for (; i < end; i++) last = ch.send(body); // not awaited: one await per burst, for backpressure
    await last;
  }
  return { t0 };
}

export async function echoLoop(ch) {
  for (;;) {
    let m;
    try {
      m = await ch.recv();
    } catch (error) {
      if (error instanceof ChannelClosedError) return {};
      throw error;
    }
    await ch.send(m);
  }
}

export async function pingLoop(ch, ctx) {
  const body = bodyOf(ctx.size);
  const rtts = [];
  const total = ctx.count + ctx.warmup;
  const t0 = now();
  for (let i = 0; i < total; i++) {
    const t = now();
    await ch.send(body);
    await ch.recv();
    rtts.push(now() - t);
  }
  return { t0, t1: now(), ...rttStats(rtts, ctx.warmup) };
}

/**
 * Workload (g), the plain-Channel side of the request/reply comparison: echo every message (in
 * order, so replies need no id), then count the one-way run and answer 'done'.
 */
async function rpcReceiver(ch, ctx) {
  const echoes = ctx.warmup + ctx.count1 + ctx.count;
  for (let i = 0; i < echoes; i++) void ch.send(ch.tryRecv() ?? (await ch.recv()));
  for (let n = 0; n < ctx.oneway; n++) ch.tryRecv() ?? (await ch.recv());
  await ch.send('done');
  await ch.closed;
  return {};
}

/** (g) sender: ping-pong at 1 outstanding (timed), pipelined echo at `depth` outstanding, a one-way run. */
async function rpcSender(ch, ctx) {
  const body = bodyOf(ctx.size);
  const rtts = [];
  const total1 = ctx.count1 + ctx.warmup;
  const t0 = now();
  let start1 = t0;
  for (let i = 0; i < total1; i++) {
    if (i === ctx.warmup) start1 = now();
    const t = now();
    await ch.send(body);
    ch.tryRecv() ?? (await ch.recv());
    rtts.push(now() - t);
  }
  const end1 = now();
  const start64 = now();
  let sent = 0;
  for (; sent < Math.min(ctx.depth, ctx.count); sent++) void ch.send(body);
  for (let got = 0; got < ctx.count; got++) {
    ch.tryRecv() ?? (await ch.recv());
    if (sent < ctx.count) {
      sent++;
      void ch.send(body);
    }
  }
  const end64 = now();
  const startOw = now();
  const burst = burstOf(ctx.size);
  let last;
  for (let i = 0; i < ctx.oneway;) {
    const end = Math.min(ctx.oneway, i + burst);
    for (; i < end; i++) last = ch.send(body);
    await last;
  }
  await ch.recv();
  const endOw = now();
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

export async function receiver(ctx, forAwait = false, release = false) {
  const listener = Channel.listen('127.0.0.1', 0, options(ctx));
  const address = await listener.listening;
  ctx.ready(address.port);
  const ch = await listener.accept();
  await listener.close();
  if (ctx.kind === 'rpc') return rpcReceiver(ch, ctx);
  const result = ctx.kind === 'pingpong' ? await echoLoop(ch) : await recvLoop(ch, ctx, forAwait, release);
  ch.destroy();
  return result;
}

export async function sender(ctx, port) {
  const ch = await Channel.connect('127.0.0.1', port, options(ctx));
  const result =
    ctx.kind === 'rpc'
      ? await rpcSender(ch, ctx)
      : ctx.kind === 'pingpong'
        ? await pingLoop(ch, ctx)
        : await sendLoop(ch, ctx);
  await ch.close({ timeout: 60_000 }).catch(() => {});
  return result;
}
