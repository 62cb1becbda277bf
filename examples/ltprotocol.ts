/**
 * ltprotocol's demo, redone: the server sends NumMsg(200), StrMsg("hello world!") and NumMsg(7)
 * to each client every second; the client prints what it gets and reconnects by itself (Twisted's
 * ReconnectingClientFactory defaults) if the server goes away.
 *
 *   node dist/examples/ltprotocol.js                both, in one process: stops after 3.5 s (four rounds)
 *   node dist/examples/ltprotocol.js server [port]  node dist/examples/ltprotocol.js client [port]
 *                                                   one side each: stop after 60 s
 *   --seconds N (or SECONDS=N): stop after N seconds instead; 0 runs until Ctrl-C
 */
import { Client, Protocol, Server, ltprotocol, raw, uint32 } from 'msgchannel';

const TEST_PROTOCOL = new Protocol({ maxId: 255 }).define('NumMsg', 1, uint32).define('StrMsg', 2, raw);
const args = process.argv.slice(2);
const flag = args.indexOf('--seconds');
const secondsArg = flag >= 0 ? args.splice(flag, 2)[1] : process.env.SECONDS;
const [role = 'both', portArg = '9999'] = args;
const seconds = secondsArg !== undefined ? Number(secondsArg) : role === 'both' ? 3.5 : 60;
let port = Number(portArg); // 0: a free port (with `both`)

const stops: (() => Promise<void>)[] = [];

if (role === 'server' || role === 'both') {
  const timers = new Map<number, NodeJS.Timeout>();
  const server = new Server({
    framing: ltprotocol(),
    protocol: TEST_PROTOCOL,
    onConnection: (conn) => {
      console.log(`server: client ${conn.ip}:${conn.port} connected`);
      const send = (): void => {
        void conn.send('NumMsg', 200).catch(() => {});
        void conn.send('StrMsg', Buffer.from('hello world!')).catch(() => {});
        void conn.send('NumMsg', 7).catch(() => {});
      };
      send();
      timers.set(conn.id, setInterval(send, 1000));
    },
    onClose: (conn, reason) => {
      clearInterval(timers.get(conn.id));
      timers.delete(conn.id);
      console.log(`server: client ${conn.id} left${reason ? ` (${String(reason)})` : ''}`);
    },
  });
  ({ port } = await server.listen(port, '127.0.0.1'));
  console.log(`server: listening on 127.0.0.1:${port}`);
  stops.push(() => server.close());
}

if (role === 'client' || role === 'both') {
  const client = new Client({
    framing: ltprotocol(),
    protocol: TEST_PROTOCOL,
    onConnect: () => console.log('client: connected'),
    onMessage: (m) => console.log('client got:', m.name === 'StrMsg' ? Buffer.from(m.data).toString() : m.data),
    onDisconnect: (reason) => console.log(`client: disconnected${reason ? ` (${String(reason)})` : ''}; reconnecting`),
    onRetry: (n, delay) => console.log(`client: attempt ${n} in ${(delay / 1000).toFixed(2)} s`),
  });
  void client.connect('127.0.0.1', port).catch((e: Error) => console.error(`client: ${e.message}`));
  stops.push(() => client.close());
}

const stop = async (): Promise<void> => {
  for (const s of stops.reverse()) await s();
};
if (seconds > 0) setTimeout(() => void stop(), seconds * 1000);
process.once('SIGINT', () => void stop());
