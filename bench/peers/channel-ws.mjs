// msgchannel's Channel over WebSocket (Channel.listen({ ws }) and Channel.connect('ws://...'), the
// `ws` package underneath), with the plain Channel's loops, beside the `ws` peer on (a) and (b).
// Set as the ws peer is: the largest message accepted is ws's maxPayload there and maxMessageSize
// here (the same number, from ws.mjs); msgchannel's own WebSocket maxPayload stays 64 KiB, since
// its WebSocket messages carry the framing's bytes in pieces of at most 64 KiB (docs/websocket.md).
// Backpressure is the same bound: the ws sender awaits the write callback of each burst's last
// message, this one awaits each burst's last send(), which waits while 1 MiB is unwritten.
import { Channel } from '../../dist/channel.js';
import { echoLoop, pingLoop, recvLoop, sendLoop } from './channel.mjs';
import { maxPayload } from './ws.mjs';

const options = (ctx) => ({ maxMessageSize: maxPayload(ctx) });

export async function receiver(ctx) {
  const listener = Channel.listen({ host: '127.0.0.1', port: 0, ws: true, ...options(ctx) });
  const address = await listener.listening;
  ctx.ready(address.port);
  const ch = await listener.accept();
  await listener.close();
  const result = ctx.kind === 'pingpong' ? await echoLoop(ch) : await recvLoop(ch, ctx);
  ch.destroy();
  return result;
}

export async function sender(ctx, port) {
  const ch = await Channel.connect(`ws://127.0.0.1:${port}/`, options(ctx));
  const result = ctx.kind === 'pingpong' ? await pingLoop(ch, ctx) : await sendLoop(ch, ctx);
  await ch.close({ timeout: 60_000 }).catch(() => {});
  return result;
}
