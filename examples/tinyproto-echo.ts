/**
 * tinyproto's echo server and client, redone: the server echoes `Echo back: <msg>`; QUIT closes
 * that client's connection, SRVQUIT shuts the whole server down (and so every client). The server
 * prints conn_init / conn_shutdown lines and listens on two addresses, as add_addr allows.
 *
 *   node dist/examples/tinyproto-echo.js server [port]   (then type lines into:)
 *   node dist/examples/tinyproto-echo.js client [port]
 *   node dist/examples/tinyproto-echo.js                  both in one process, a scripted client
 *   --seconds N (or SECONDS=N): stop after N seconds
 */
import { createInterface } from 'node:readline';
import { Channel, Server, tinyproto } from 'msgchannel';

const args = process.argv.slice(2);
const flag = args.indexOf('--seconds');
const seconds = Number(flag >= 0 ? args.splice(flag, 2)[1] : (process.env.SECONDS ?? 0));
const [role = 'both', portArg = '9123'] = args;
let port = Number(portArg); // 0: a free port (with `both`)

async function startServer(): Promise<Server> {
  const server = new Server({
    framing: tinyproto,
    onConnection: (conn) => console.log(`Connection opened from: ${conn.ip}:${conn.port}`), // conn_init
    onClose: (conn) => console.log(`Connection closed from: ${conn.ip}:${conn.port}`), // conn_shutdown
    onMessage: async (conn, msg) => {
      const text = msg.toString();
      if (text === 'QUIT') await conn.close();
      else if (text === 'SRVQUIT')
        await server.close(); // shuts the server down along with all clients
      else await conn.send(`Echo back: ${text}`);
    },
  });
  ({ port } = await server.listen(port, '127.0.0.1'));
  await server.listen(0, '127.0.0.1'); // a second address, like add_addr
  console.log(`listening on ${server.addresses.map((a) => `${a.address}:${a.port}`).join(' and ')}`);
  return server;
}

// tinyproto is half-duplex: the client sends one line and waits for the echo before the next.
async function runClient(lines: AsyncIterable<string> | Iterable<string>): Promise<void> {
  const ch = await Channel.connect('127.0.0.1', port, { framing: tinyproto });
  for await (const line of lines) {
    await ch.send(line);
    if (line === 'QUIT' || line === 'SRVQUIT') break;
    console.log(`Response from server: ${(await ch.recv()).toString()}`);
  }
  await ch.close();
}

let server: Server | undefined;
if (role === 'server' || role === 'both') server = await startServer();
if (role === 'client') await runClient(createInterface({ input: process.stdin }));
if (role === 'both') {
  await runClient(['hello', 'tinyproto', 'SRVQUIT']);
  await server!.close();
  console.log('server shut down by SRVQUIT');
}
if (seconds > 0 && server) setTimeout(() => void server!.close(), seconds * 1000).unref();
