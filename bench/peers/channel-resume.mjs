// msgchannel's Channel over TCP with `resume` on both ends (a resumable session, docs/sessions.md),
// the same loops as the plain Channel; and, for the chaos row, the same through a proxy on
// loopback that resets every connection each `cutEvery` ms (`channel-proxy` runs the proxy without
// cuts, so the two differ only by the resets).
import * as net from 'node:net';
import { Channel } from '../../dist/channel.js';
import { pingLoop, recvLoop, sendLoop } from './channel.mjs';

const options = (ctx) => ({ maxMessageSize: Math.max(ctx.maxSize, 64 * 1024 * 1024), resume: true });

export async function receiver(ctx) {
  const listener = Channel.listen('127.0.0.1', 0, options(ctx));
  const address = await listener.listening;
  ctx.ready(address.port);
  const ch = await listener.accept();
  const result = await recvLoop(ch, ctx);
  result.resumes = ch.stats.session?.resumes ?? 0;
  // The sender's close() waits for this side's acknowledgement of everything: close, then stop.
  await ch.close({ timeout: 60_000 }).catch(() => {});
  await listener.close();
  return result;
}

/** `cutEvery`: undefined connects directly; a number goes through the proxy (0: no cuts). */
export async function sender(ctx, port, cutEvery) {
  const proxy = cutEvery === undefined ? undefined : await startProxy(port, cutEvery);
  const ch = await Channel.connect('127.0.0.1', proxy?.port ?? port, options(ctx));
  const result = ctx.kind === 'pingpong' ? await pingLoop(ch, ctx) : await sendLoop(ch, ctx);
  await ch.close({ timeout: 60_000 }).catch(() => {});
  result.cuts = proxy?.cuts ?? 0;
  proxy?.stop();
  return result;
}

/** A TCP proxy to `target` on 127.0.0.1 that resets every connection each `cutEvery` ms (0: never). */
async function startProxy(target, cutEvery) {
  const links = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    const link = [client, upstream];
    links.add(link);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = { port: server.address().port, cuts: 0, stop: () => {} };
  const timer =
    cutEvery > 0 &&
    setInterval(() => {
      for (const [client, upstream] of links) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      links.clear();
      proxy.cuts++;
    }, cutEvery);
  proxy.stop = () => {
    if (timer) clearInterval(timer);
    server.close();
    for (const [client, upstream] of links) {
      client.destroy();
      upstream.destroy();
    }
  };
  return proxy;
}
