// zeromq (zeromq.js 6, libzmq prebuilt in its npm package): PUSH/PULL for the streams,
// REQ/REP for the ping-pong (PUSH/PULL is one-way). zeromq.js allows one send in flight per
// socket, so its sender awaits every send: it has no "not awaited" mode.
import * as zmq from 'zeromq';
import { bodyOf, now, rttStats, sleep, slowEvery } from '../lib.mjs';

const portOf = (endpoint) => Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));

export async function receiver(ctx) {
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
  const body = bodyOf(ctx.size);
  if (ctx.kind === 'pingpong') {
    const req = new zmq.Request();
    req.connect(`tcp://127.0.0.1:${port}`);
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
  push.connect(`tcp://127.0.0.1:${port}`);
  const t0 = now();
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
