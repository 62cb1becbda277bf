// zeromq (zeromq.js 6, libzmq prebuilt in its npm package): PUSH/PULL for the streams,
// REQ/REP for the ping-pong (PUSH/PULL is one-way). zeromq.js allows one send in flight per
// socket, so its sender awaits every send: it has no "not awaited" mode.
import * as zmq from 'zeromq';
import { bodyOf, manyClients, now, rttStats, serveUntilStopped, sleep, slowEvery } from '../lib.mjs';

const portOf = (endpoint) => Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));

/** Workload (g): a ROUTER echoing each [identity, id, body] back, for warmup + count1 + count messages. */
async function rpcReceiver(ctx) {
  const router = new zmq.Router();
  await router.bind('tcp://127.0.0.1:*');
  ctx.ready(portOf(router.lastEndpoint));
  const total = ctx.warmup + ctx.count1 + ctx.count;
  for (let i = 0; i < total; i++) await router.send(await router.receive());
  router.linger = 1000;
  router.close();
  return {};
}

/** Connect and wait until the connection is established (zeromq connects in the background). */
function connected(socket, port) {
  const up = new Promise((resolve) => socket.events.on('connect', resolve));
  socket.connect(`tcp://127.0.0.1:${port}`);
  return up;
}

/**
 * Workload (g): a DEALER sending [id, body] requests and matching [id, body] replies, at 1 and at
 * `depth` outstanding. zeromq.js allows one send() in flight per socket, so the sends of the
 * window are awaited one by one while a receive loop takes the replies.
 */
async function rpcSender(ctx, port) {
  const dealer = new zmq.Dealer();
  await connected(dealer, port);
  const body = bodyOf(ctx.size);
  const id = Buffer.alloc(4);
  const rtts = [];
  const total1 = ctx.count1 + ctx.warmup;
  const t0 = now();
  let start1 = t0;
  for (let i = 0; i < total1; i++) {
    if (i === ctx.warmup) start1 = now();
    const t = now();
    id.writeUInt32BE(i);
    await dealer.send([id, body]);
    await dealer.receive();
    rtts.push(now() - t);
  }
  const end1 = now();
  const start64 = now();
  let sent = 0;
  let got = 0;
  let wake;
  const receiving = (async () => {
    while (got < ctx.count) {
      await dealer.receive();
      got++;
      wake?.();
    }
  })();
  while (sent < ctx.count) {
    if (sent - got >= ctx.depth) {
      await new Promise((r) => (wake = r));
      wake = undefined;
      continue;
    }
    id.writeUInt32BE(sent++);
    await dealer.send([id, body]);
  }
  await receiving;
  const end64 = now();
  dealer.linger = 0;
  dealer.close();
  const s = (a, b) => Number(b - a) / 1e9;
  return {
    t0,
    t1: end64,
    ...rttStats(rtts, ctx.warmup),
    rt1: ctx.count1 / s(start1, end1),
    rt64: ctx.count / s(start64, end64),
  };
}

export async function receiver(ctx) {
  if (ctx.kind === 'many') return manyReceiver(ctx);
  if (ctx.kind === 'rpc') return rpcReceiver(ctx);
  if (ctx.kind === 'pingpong') {
    const rep = new zmq.Reply();
    await rep.bind('tcp://127.0.0.1:*');
    ctx.ready(portOf(rep.lastEndpoint));
    const total = ctx.count + ctx.warmup;
    for (let i = 0; i < total; i++) {
      const [m] = await rep.receive();
      await rep.send(m);
    }
    rep.linger = 1000;
    rep.close();
    return {};
  }
  const pull = new zmq.Pull();
  await pull.bind('tcp://127.0.0.1:*');
  ctx.ready(portOf(pull.lastEndpoint));
  let n = 0;
  let bytes = 0;
  while (n < ctx.count) {
    const [m] = await pull.receive();
    n++;
    bytes += m.length;
    if (ctx.slow && n % slowEvery === 0) await sleep(1);
  }
  const t1 = now();
  pull.linger = 0;
  pull.close();
  return { t1, n, bytes };
}

export async function sender(ctx, port) {
  if (ctx.kind === 'many') return manySender(ctx, port);
  if (ctx.kind === 'rpc') return rpcSender(ctx, port);
  const body = bodyOf(ctx.size);
  if (ctx.kind === 'pingpong') {
    const req = new zmq.Request();
    await connected(req, port);
    const rtts = [];
    const total = ctx.count + ctx.warmup;
    const t0 = now();
    for (let i = 0; i < total; i++) {
      const t = now();
      await req.send(body);
      await req.receive();
      rtts.push(now() - t);
    }
    const t1 = now();
    req.linger = 0;
    req.close();
    return { t0, t1, ...rttStats(rtts, ctx.warmup) };
  }
  const push = new zmq.Push();
  push.linger = 60_000; // let close() deliver what is queued
  await connected(push, port);
  const t0 = now(); // after the connection is up, as every other peer's clock
  for (let i = 0; i < ctx.count; i++) await push.send(body);
  // send() resolves once libzmq has queued the message: stay until the receiver has it all and
  // hangs up, or the process would exit with messages still queued.
  await new Promise((resolve) => {
    push.events.on('disconnect', resolve);
    push.events.on('close', resolve);
  });
  push.close();
  return { t0 };
}

/** Workload (h): one ROUTER for every client, sending each [identity, body] back as it came. */
async function manyReceiver(ctx) {
  const router = new zmq.Router();
  let peers = 0;
  router.events.on('accept', () => peers++);
  router.events.on('disconnect', () => peers--);
  await router.bind('tcp://127.0.0.1:*');
  ctx.ready(portOf(router.lastEndpoint));
  const echoing = (async () => {
    for (;;) await router.send(await router.receive());
  })().catch(() => {}); // ends when the router is closed
  const result = await serveUntilStopped(() => peers, ctx.connections);
  router.linger = 0;
  router.close();
  await echoing;
  return result;
}

/**
 * Workload (h)'s hand-rolled client over zeromq: a DEALER per connection (zeromq.js allows one
 * send() in flight per socket, so a request waits for the previous send to resolve). The first
 * round trip (manyClients) proves each connection up: waiting for `events`' connect would add a
 * monitor socket and its files to each of the thousand.
 */
function manySender(ctx, port) {
  zmq.context.maxSockets = Math.max(zmq.context.maxSockets, ctx.connections + 64);
  const body = bodyOf(ctx.size);
  return manyClients(ctx, async (i, onReply, lost) => {
    const dealer = new zmq.Dealer();
    dealer.linger = 0;
    dealer.connect(`tcp://127.0.0.1:${port}`);
    let sending = Promise.resolve();
    void (async () => {
      for (;;) {
        await dealer.receive();
        onReply();
      }
    })().catch((e) => {
      if (!dealer.closed) lost(e);
    });
    return {
      send: () => {
        sending = sending.then(() => dealer.send(body)).catch(lost);
      },
      close: () => dealer.close(),
    };
  });
}
