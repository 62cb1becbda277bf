// msgchannel's Server (src/peer/server.ts) for workload (h), many clients: `onMessage` sends each
// request back. Its clients are raw.mjs's hand-rolled ones (the same MSG frames), or the generator.
import { Server } from '../../dist/channel.js';
import { serveUntilStopped } from '../lib.mjs';
import { manySender } from './raw.mjs';

export async function receiver(ctx) {
  if (ctx.kind !== 'many') throw new Error('the server peer runs workload (h) only');
  // Returning send()'s promise makes the Server wait for it before the connection's next message.
  const server = new Server({ onMessage: (conn, m) => conn.send(m), backlog: 1024 });
  const { port } = await server.listen(0, '127.0.0.1');
  ctx.ready(port);
  const result = await serveUntilStopped(() => server.connections.size, ctx.connections);
  await server.close({ timeout: 1000 }).catch(() => {});
  return result;
}

export const sender = (ctx, port) => manySender(ctx, port);
