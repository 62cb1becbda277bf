// Shared helpers of the benchmark's child processes (bench/side.mjs and the peers in bench/peers/).
import { createHistogram, performance } from 'node:perf_hooks';

/** Monotonic nanoseconds (CLOCK_MONOTONIC, the same clock in every process of the machine). */
export const now = () => process.hrtime.bigint();

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Peak resident set size of this process so far, in bytes. */
export const peakRss = () => process.resourceUsage().maxRSS * 1024;

/**
 * How many messages a sender issues without awaiting before it waits once for backpressure:
 * up to 1,000 messages or 1 MiB, whichever comes first (so 1 for 1 MiB messages).
 */
export const burstOf = (size) => Math.max(1, Math.min(1000, Math.floor((1024 * 1024) / Math.max(size, 1))));

/** The message body every sender sends: `size` bytes of 'a'. */
export const bodyOf = (size) => Buffer.alloc(size, 0x61);

/** Percentile of a sorted array of numbers. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Pause 1 ms every 1,000 messages when the workload is a slow consumer; returns a promise or undefined. */
export const slowEvery = 1000;

/** Bytes a slow consumer's queue may hold before a peer with flow control pauses reading: Channel's default highWaterMark. */
export const slowHighWaterMark = 1024 * 1024;

/**
 * The slow consumer (f) of every peer that delivers messages by callback: the callback only queues
 * (push); the consumer takes them one at a time and sleeps 1 ms every 1,000, while reading goes
 * on underneath. A peer with flow control passes pause/resume: reading pauses while the queue
 * holds more than slowHighWaterMark and resumes at half, as Channel does; one without just queues.
 * So every peer's consumer does the same thing as msgchannel's recv() loop and zeromq's.
 */
export function slowConsumer(count, flow = {}) {
  const queue = [];
  let head = 0;
  let queued = 0;
  let paused = false;
  let wake;
  const push = (m) => {
    queue.push(m);
    queued += m.length;
    if (flow.pause && !paused && queued > slowHighWaterMark) {
      paused = true;
      flow.pause();
    }
    if (wake) {
      const w = wake;
      wake = undefined;
      w();
    }
  };
  const done = (async () => {
    let n = 0;
    let bytes = 0;
    while (n < count) {
      if (head === queue.length) {
        await new Promise((r) => (wake = r));
        continue;
      }
      const m = queue[head];
      queue[head++] = undefined;
      if (head > 4096 && head * 2 > queue.length) {
        queue.splice(0, head);
        head = 0;
      }
      queued -= m.length;
      n++;
      bytes += m.length;
      if (paused && queued <= slowHighWaterMark / 2) {
        paused = false;
        flow.resume();
      }
      if (n % slowEvery === 0 && n < count) await sleep(1);
    }
    return { t1: now(), n, bytes };
  })();
  return { push, done };
}

/** Round-trip statistics from a list of nanosecond bigints (the first `warmup` are dropped). */
export function rttStats(rtts, warmup) {
  const xs = rtts
    .slice(warmup)
    .map((x) => Number(x) / 1000)
    .sort((a, b) => a - b);
  return { p50us: percentile(xs, 50), p99us: percentile(xs, 99), n: xs.length };
}

/**
 * The minimal MSG parser of the hand-rolled baselines: no validation beyond what it needs. With
 * `copy`, the chunks pushed are a reused read buffer (the onread baseline), so small messages and
 * a cut header are copied out of them; `bodyFilled(n)` counts bytes read straight into `body`.
 */
export class MiniParser {
  constructor(onMessage, { copy = false } = {}) {
    this.onMessage = onMessage;
    this.copy = copy;
    this.rest = null;
    this.body = null;
    this.filled = 0;
  }

  bodyFilled(n) {
    this.filled += n;
    if (this.filled === this.body.length) {
      const b = this.body;
      this.body = null;
      this.onMessage(b);
    }
  }

  push(chunk) {
    if (this.rest !== null) {
      chunk = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.body !== null) {
        const take = Math.min(n - i, this.body.length - this.filled);
        chunk.copy(this.body, this.filled, i, i + take);
        i += take;
        this.bodyFilled(take);
        continue;
      }
      // Header: CR LF 'MSG ' digits CR LF
      const lf = chunk.indexOf(0x0a, i + 6);
      if (lf < 0) {
        this.rest = this.copy ? Buffer.from(chunk.subarray(i)) : chunk.subarray(i);
        return;
      }
      let len = 0;
      for (let j = i + 6; j < lf - 1; j++) len = len * 10 + (chunk[j] - 0x30);
      i = lf + 1;
      if (n - i >= len) {
        const b = this.copy ? Buffer.from(chunk.subarray(i, i + len)) : chunk.subarray(i, i + len);
        i += len;
        this.onMessage(b);
      } else {
        this.body = Buffer.allocUnsafe(len);
        this.filled = 0;
      }
    }
  }
}

/** `\r\nMSG <len>\r\n` as a Buffer. */
export const headerOf = (len) => Buffer.from(`\r\nMSG ${len}\r\n`, 'latin1');

/** `\r\nMSG <len>\r\n` + body, each message of `bodies` after the other, in one buffer: one write for all of them. */
export function framesOf(bodies) {
  let total = 0;
  for (const b of bodies) total += 12 + b.length; // a header is at most 12 bytes up to 999,999
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const b of bodies) {
    at += out.write(`\r\nMSG ${b.length}\r\n`, at, 'latin1');
    at += b.copy(out, at);
  }
  return out.subarray(0, at);
}

/** Connections opened at once by workload (h)'s clients, as `msgchannel bench` does: a listen backlog holds them. */
const CONNECT_BATCH = 128;

/**
 * Workload (h)'s hand-rolled client: `ctx.connections` connections, each with one request in
 * flight at a time (a closed loop: the reply sends the next request), for `ctx.warmup` seconds,
 * then `ctx.seconds` measured. `open(i, onReply, lost)` connects connection i and resolves with
 * `{ send, close }`; it calls onReply() for each reply and lost(error) if the connection fails.
 * Each connection's first round trip is part of opening it: a connect resolves once the kernel
 * has the connection, and a busy server may take seconds to accept the last of a thousand, so the
 * run starts once every connection is served, for every server alike.
 * Returns the measured replies, the clock at both ends, and the round trips' p50 and p99.
 */
export async function manyClients(ctx, open) {
  const n = ctx.connections;
  const sends = new Array(n);
  const closes = [];
  const sentAt = new Float64Array(n);
  const rtt = createHistogram();
  let measuring = false;
  let stopping = false;
  let done = 0;
  let failure;
  const lost = (e) => {
    if (!stopping) failure ??= e;
  };
  /** Connections opening: the resolver of each one's first reply. */
  const first = new Array(n);
  const reply = (i) => {
    const opening = first[i];
    if (opening !== undefined) {
      first[i] = undefined;
      return opening();
    }
    const t = performance.now();
    if (measuring) {
      done++;
      rtt.record(Math.max(1, Math.round((t - sentAt[i]) * 1e6)));
    }
    if (stopping) return;
    sentAt[i] = t;
    sends[i]();
  };
  try {
    for (let i = 0; i < n; i += CONNECT_BATCH) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + CONNECT_BATCH); j++) {
        batch.push(
          open(j, () => reply(j), lost).then((c) => {
            sends[j] = c.send;
            closes.push(c.close);
            return new Promise((resolve) => {
              first[j] = resolve;
              c.send();
            });
          }),
        );
      }
      await Promise.all(batch);
    }
    for (let i = 0; i < n; i++) {
      sentAt[i] = performance.now();
      sends[i]();
    }
    await sleep(ctx.warmup * 1000);
    measuring = true;
    const t0 = now();
    const cpu0 = process.cpuUsage();
    await sleep(ctx.seconds * 1000);
    const t1 = now();
    const cpu = process.cpuUsage(cpu0);
    measuring = false;
    if (failure) throw failure;
    return {
      t0,
      t1,
      n: done,
      p50us: rtt.percentile(50) / 1000,
      p99us: rtt.percentile(99) / 1000,
      connections: n,
      cpuUs: cpu.user + cpu.system, // this process's CPU time in the measured seconds
    };
  } finally {
    stopping = true;
    for (const close of closes) close();
  }
}

/**
 * Workload (h)'s server side, once listening: its RSS before any client, then sampled every 100 ms
 * until the benchmark writes to stdin (the clients are done), with `connections()` (and how long
 * it took to have all `expected` of them: `acceptMs`) and the CPU time used so far (`cpu`: [monotonic ns, CPU µs] pairs, so the benchmark can take the CPU time of
 * the client's measured seconds). Returns the idle RSS, the highest RSS and connection count seen.
 */
export async function serveUntilStopped(connections, expected) {
  const rssIdle = process.memoryUsage.rss();
  let rssLoaded = rssIdle;
  let peak = 0;
  let firstAt;
  let allAt;
  const cpu = [];
  const sample = () => {
    const c = process.cpuUsage();
    cpu.push([String(now()), c.user + c.system]);
  };
  sample();
  const timer = setInterval(() => {
    rssLoaded = Math.max(rssLoaded, process.memoryUsage.rss());
    const open = connections();
    peak = Math.max(peak, open);
    if (open > 0) firstAt ??= performance.now();
    if (open >= expected) allAt ??= performance.now();
    sample();
  }, 100);
  await new Promise((resolve) => {
    process.stdin.once('data', resolve);
    process.stdin.once('end', resolve);
    process.stdin.resume();
  });
  clearInterval(timer);
  sample();
  // From the first connection seen to all of them (to the 100 ms sample), or null if never all.
  const acceptMs = allAt === undefined ? null : Math.round(allAt - firstAt);
  return { rssIdle, rssLoaded, connectionsPeak: peak, acceptMs, cpu };
}

/** CPU µs a server had used at monotonic time `t` (ns, a bigint), interpolated between its samples. */
export function cpuAt(samples, t) {
  let before = samples[0];
  for (const s of samples) {
    const at = BigInt(s[0]);
    if (at >= t) {
      const from = BigInt(before[0]);
      const span = Number(at - from);
      return span === 0 ? s[1] : before[1] + ((s[1] - before[1]) * Number(t - from)) / span;
    }
    before = s;
  }
  return before[1];
}
