// Channel.pair(): both ends in this one process, joined in memory (RSS is the two sides together).
import { Channel } from '../../dist/channel.js';
import { echoLoop, pingLoop, recvLoop, sendLoop } from './channel.mjs';

export async function inproc(ctx) {
  const [a, b] = Channel.pair({ maxMessageSize: Math.max(ctx.maxSize, 64 * 1024 * 1024) });
  if (ctx.kind === 'pingpong') {
    const echo = echoLoop(b);
    const r = await pingLoop(a, ctx);
    await a.close();
    await echo;
    return r;
  }
  const [sent, got] = await Promise.all([sendLoop(a, ctx), recvLoop(b, ctx)]);
  a.destroy();
  b.destroy();
  return { ...sent, ...got };
}
