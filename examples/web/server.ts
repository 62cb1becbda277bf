/**
 * A live chat: one Server that a web page (over WebSocket, with msgchannel/browser), TCP clients
 * and the Python gist's peers (MSG framing over TCP) all talk to. Each message from anyone goes
 * to everyone. `npm run web` builds and starts it:
 *
 *   node dist/examples/web/server.js [--http PORT] [--tcp PORT]
 *
 * then open the printed http:// address in a browser, and join from a terminal with
 * `msgchannel connect 127.0.0.1 <tcp port>` or a Python gist Channel.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { Server } from 'msgchannel';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

// This file runs as dist/examples/web/server.js; the browser build is dist/browser.js.
const bundle = readFileSync(new URL('../../browser.js', import.meta.url));

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>msgchannel chat</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; }
  #log p { margin: .2em 0; }
  #status { color: #666; }
</style>
<h1>msgchannel chat</h1>
<p id="status">connecting…</p>
<div id="log"></div>
<form id="form"><input id="text" size="50" autocomplete="off" placeholder="say something"> <button>send</button></form>
<script type="module">
import { Channel } from '/browser.js';
const log = document.getElementById('log');
const show = (text) => {
  const p = document.createElement('p');
  p.textContent = text;
  log.append(p);
  log.scrollTop = log.scrollHeight;
};
const ch = await Channel.connect((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat');
document.getElementById('status').textContent = 'connected';
document.getElementById('form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = document.getElementById('text');
  if (input.value !== '') void ch.send(input.value);
  input.value = '';
});
for await (const message of ch) show(new TextDecoder().decode(message));
document.getElementById('status').textContent = 'disconnected';
</script>`;

const web = http.createServer((request, response) => {
  if (request.url === '/browser.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
  else response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
});
await new Promise<void>((resolve) => web.listen(option('http', 8080), '127.0.0.1', resolve));
const { port: httpPort } = web.address() as { port: number };

const server: Server = new Server({
  onMessage: (_conn, message): Promise<number> => server.broadcast(message as Buffer),
});
const tcp = await server.listen(option('tcp', 5000), '127.0.0.1');
await server.listen({ ws: { server: web, path: '/chat', allowedOrigins: [`http://127.0.0.1:${httpPort}`] } });
console.log(`chat page on http://127.0.0.1:${httpPort}/, TCP (MSG framing) on 127.0.0.1:${tcp.port}`);

process.once('SIGINT', () => {
  void server.close().then(() => {
    web.closeAllConnections();
    web.close();
  });
});
