/**
 * packetmq's chat, redone: a packetmq Server relays each `chat:say` to every client as `chat:said`;
 * clients are packetmq Clients (adaptive, as packetmq's docs set them up). With `--memory` the
 * same runs in process (packetmq's MemoryServer/MemoryClient): same handshake, same softquit.
 *
 *   node dist/examples/packetmq-chat.js [--memory] [--seconds N]   a server and three scripted clients
 *   node dist/examples/packetmq-chat.js server [port]               node dist/examples/packetmq-chat.js client NAME [port]
 */
import { createInterface } from 'node:readline';
import { Client, Server, msgpack, packetmqProtocol, type MessagesOf } from 'msgchannel';

const chat = packetmqProtocol()
  .define('chat:say', 17, msgpack<{ text: string }>())
  .define('chat:said', 18, msgpack<{ from: string; text: string }>())
  .define('chat:nick', 19, msgpack<{ name: string }>());

const args = process.argv.slice(2);
const memory = args.includes('--memory');
const flag = args.indexOf('--seconds');
const seconds = Number(flag >= 0 ? args.splice(flag, 2)[1] : (process.env.SECONDS ?? 0));
const positional = args.filter((a) => !a.startsWith('--'));
const role = positional[0] ?? 'both';

function startServer(): Server<MessagesOf<typeof chat>> {
  const server = new Server({
    protocol: chat,
    packetmq: true,
    onConnection: (conn) => void (conn.data = `guest${conn.id}`),
    onMessage: async (conn, m) => {
      if (m.name === 'chat:nick') conn.data = m.data.name;
      else if (m.name === 'chat:say')
        await server.broadcast('chat:said', { from: String(conn.data), text: m.data.text });
    },
    onClose: (conn, reason) => console.log(`server: ${String(conn.data)} left (${String(reason ?? 'closed')})`),
  });
  return server;
}

function makeClient(name: string): Client<MessagesOf<typeof chat>> {
  return new Client({
    protocol: chat,
    packetmq: true,
    initialDelay: 200,
    onConnect: (c) => c.send('chat:nick', { name }),
    onMessage: (m) => {
      if (m.name === 'chat:said') console.log(`[${name}] <${m.data.from}> ${m.data.text}`);
    },
    onDisconnect: (reason) => console.log(`[${name}] disconnected: ${String(reason ?? 'closed')}`),
  });
}

const target = memory
  ? { memory: 'chat' }
  : { host: '127.0.0.1', port: Number(positional[role === 'client' ? 2 : 1] ?? 12345) };

if (role === 'server') {
  const server = startServer();
  await server.listen(memory ? { memory: 'chat' } : { port: target.port ?? 12345, host: '127.0.0.1' });
  console.log('chat server listening');
  const stop = (): void => void server.close({ reason: 'reason.servershutdown' });
  process.once('SIGINT', stop);
  if (seconds > 0) setTimeout(stop, seconds * 1000);
} else if (role === 'client') {
  const client = makeClient(positional[1] ?? 'me');
  await client.connect(target);
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) await client.send('chat:say', { text: line });
  await client.close({ reason: 'reason.userquit' });
} else {
  const server = startServer();
  const addr = await server.listen(memory ? { memory: 'chat' } : { port: 0, host: '127.0.0.1' });
  const where = memory ? { memory: 'chat' } : { host: '127.0.0.1', port: addr.port };
  const clients = ['alice', 'bob', 'carol'].map(makeClient);
  await Promise.all(clients.map((c) => c.connect(where)));
  await new Promise((r) => setTimeout(r, 50)); // nicknames arrive
  await clients[0]!.send('chat:say', { text: 'hi all' });
  await clients[1]!.send('chat:say', { text: 'hello alice' });
  await new Promise((r) => setTimeout(r, Math.max(100, seconds * 1000)));
  await clients[2]!.close({ reason: 'reason.userquit' });
  await server.close({ reason: 'reason.servershutdown' });
  await Promise.all(clients.map((c) => c.close()));
}
