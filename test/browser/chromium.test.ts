/**
 * A real browser (Debian's chromium, driven by puppeteer-core): a page loads the browser build
 * (dist/browser.js, msgchannel/browser) from an http.Server that a Server also serves WebSocket
 * on (`ws: { server }`), connects over ws://, and through that Server exchanges 10,000 messages
 * each way with a Node client over TCP (the Server forwards each to the other side) and 1,000
 * requests (the page's requests go to the Server's onRequest, which asks the TCP client), and
 * shows the counts on the page. A TypedChannel in the page exchanges typed messages (utf8String,
 * uint32, json, msgpack) over ltprotocol with a Node TypedChannel over TCP, through a typed Server
 * on the same http.Server. Skipped, saying what to install, where chromium is missing (.ci/run
 * installs it).
 */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import { once } from 'node:events';
import { delimiter, join } from 'node:path';
import puppeteer from 'puppeteer-core';
import {
  Channel,
  Client,
  Protocol,
  Server,
  TypedChannel,
  json,
  ltprotocol,
  msgpack,
  uint32,
  utf8String,
  type Connection,
  type MessagesOf,
} from '../../channel.js';
import { testNeeding } from '../peers.js';

const MESSAGES = 10_000;
const REQUESTS = 1_000;
const TYPED = 1_000;

/** Where chromium is (CHROMIUM_PATH, or chromium on PATH), or undefined. */
function chromiumPath(): string | undefined {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv !== undefined) return existsSync(fromEnv) ? fromEnv : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser'])
      if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

const executablePath = chromiumPath();
const test = testNeeding(
  'browser (chromium)',
  executablePath === undefined
    ? "chromium not found: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH to a Chromium or Chrome binary"
    : undefined,
);
void uvuTest;

const PAGE = `<!doctype html><meta charset="utf-8"><title>msgchannel in the browser</title>
<p id="status">loading</p>
<script type="module">
import { Channel, Protocol, RequestChannel, TypedChannel, json, ltprotocol, msgpack, uint32, utf8String } from '/browser.js';
const show = (text) => (document.getElementById('status').textContent = text);
const decode = (m) => new TextDecoder().decode(m);
window.run = async (url, messages, requests) => {
  const peer = new RequestChannel(await Channel.connect(url));
  show('connected');
  window.connected = true;
  let received = 0;
  let sum = 0;
  const receiving = (async () => {
    while (received < messages) {
      sum += Number(decode(await peer.recv()));
      if (++received % 1000 === 0) show('received ' + received);
    }
  })();
  for (let i = 0; i < messages; i++) await peer.send(String(i));
  const replies = await Promise.all(Array.from({ length: requests }, (_, i) => peer.request('q' + i)));
  const repliesRight = replies.filter((r, i) => decode(r) === 'tcp:q' + i).length;
  await receiving;
  show('received ' + received + ' messages, sent ' + messages + ', ' + repliesRight + ' replies');
  await peer.close();
  return { received, sum, repliesRight };
};
window.runTyped = async (url, count) => {
  const proto = new Protocol({ minId: 16, maxId: 65535 })
    .define('chat', 16, utf8String)
    .define('count', 17, uint32)
    .define('doc', 18, json())
    .define('state', 19, msgpack());
  const typed = new TypedChannel(proto, await Channel.connect(url, { framing: ltprotocol('I', 'H') }));
  window.typedConnected = true;
  const send = (i) =>
    [
      () => typed.send('chat', 'message ' + i),
      () => typed.send('count', 4e9 + i),
      () => typed.send('doc', { i, list: [i, 'x'] }),
      () => typed.send('state', { i, bytes: new Uint8Array([i & 255, 7]) }),
    ][i % 4]();
  const right = (m, i) =>
    [
      () => m.name === 'chat' && m.data === 'tcp: message ' + i,
      () => m.name === 'count' && m.data === 4e9 + i + 1,
      () => m.name === 'doc' && m.data.i === i && m.data.list[1] === 'x' && m.data.seen === 'tcp',
      () => m.name === 'state' && m.data.i === i && m.data.bytes[0] === (i & 255) && m.data.seen === 'tcp',
    ][i % 4]();
  let rightOnes = 0;
  const receiving = (async () => {
    for (let i = 0; i < count; i++) if (right(await typed.recv(), i)) rightOnes++;
  })();
  for (let i = 0; i < count; i++) await send(i);
  await receiving;
  show('typed: sent ' + count + ', ' + rightOnes + ' replies right');
  await typed.close();
  return { rightOnes };
};
window.ready = true;
</script>`;

test(`a page exchanges ${MESSAGES} messages each way and ${REQUESTS} requests with a TCP client through a Server`, async () => {
  const bundle = readFileSync('dist/browser.js');
  const web = http.createServer((request, response) => {
    if (request.url === '/browser.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    else response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  });
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  const webPort = (web.address() as { port: number }).port;

  let tcpSide: Connection | undefined;
  const server: Server = new Server({
    onConnection: (conn) => void (tcpSide ??= conn), // the TCP client connects first
    // Forward each one-way message to the other side.
    onMessage: async (conn, message): Promise<void> => {
      for (const other of server.connections) if (other !== conn) await other.send(message as Buffer);
    },
    // The page's requests are answered by the TCP client.
    onRequest: (_conn, body) => tcpSide!.request(body),
  });
  const { port: tcpPort } = await server.listen(0, '127.0.0.1');
  await server.listen({ ws: { server: web, path: '/ws', allowedOrigins: [`http://127.0.0.1:${webPort}`] } });

  let tcpReceived = 0;
  let tcpSum = 0;
  let allReceived!: () => void;
  const tcpDone = new Promise<void>((r) => (allReceived = r));
  const client = new Client({
    onMessage: (message) => {
      tcpSum += Number(String(message));
      if (++tcpReceived === MESSAGES) allReceived();
    },
    onRequest: (body) => `tcp:${body.toString()}`,
  });
  await client.connect('127.0.0.1', tcpPort);
  while (tcpSide === undefined) await new Promise((r) => setTimeout(r, 5));

  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    await page.goto(`http://127.0.0.1:${webPort}/`);
    await page.waitForFunction('window.ready === true', { timeout: 10_000 });
    const running = page.evaluate(
      (url, m, r) =>
        (globalThis as unknown as { run: (u: string, m: number, r: number) => Promise<unknown> }).run(url, m, r),
      `ws://127.0.0.1:${webPort}/ws`,
      MESSAGES,
      REQUESTS,
    ) as Promise<{ received: number; sum: number; repliesRight: number }>;
    await page.waitForFunction('window.connected === true', { timeout: 10_000 });
    while (server.connections.size < 2) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < MESSAGES; i++) await client.send(String(i));
    const result = await running;
    await tcpDone;
    const expectedSum = (MESSAGES * (MESSAGES - 1)) / 2;
    assert.equal(result, { received: MESSAGES, sum: expectedSum, repliesRight: REQUESTS });
    assert.is(tcpReceived, MESSAGES);
    assert.is(tcpSum, expectedSum);
    const shown = await page.$eval('#status', (el) => el.textContent);
    assert.is(shown, `received ${MESSAGES} messages, sent ${MESSAGES}, ${REQUESTS} replies`);
    assert.equal(pageErrors, []);
  } finally {
    await browser.close();
    await client.close();
    await server.close();
    web.closeAllConnections();
    await new Promise((r) => web.close(r));
  }
});

test('the example chat page (examples/web): a TCP client and the page talk through it; a screenshot of it', async () => {
  const child = spawn(process.execPath, ['dist/examples/web/server.js', '--http', '0', '--tcp', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  let tcp: Channel | undefined;
  try {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    let ports: RegExpExecArray | null = null;
    for (let i = 0; i < 200 && ports === null; i++) {
      await new Promise((r) => setTimeout(r, 50));
      ports = /http:\/\/127\.0\.0\.1:(\d+)\/, TCP \(MSG framing\) on 127\.0\.0\.1:(\d+)/.exec(out);
    }
    assert.ok(ports, `the example printed its ports: ${out}`);
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${ports[1]}/`);
    await page.waitForFunction("document.getElementById('status').textContent === 'connected'", { timeout: 10_000 });
    tcp = await Channel.connect('127.0.0.1', Number(ports[2]));
    await tcp.send('hello from TCP');
    await page.waitForFunction("document.getElementById('log').textContent.includes('hello from TCP')", {
      timeout: 10_000,
    });
    assert.is((await tcp.recv()).toString(), 'hello from TCP'); // everyone gets every message, the sender too
    await page.type('#text', 'hello from the page');
    await page.keyboard.press('Enter');
    assert.is((await tcp.recv()).toString(), 'hello from the page');
    const shot = await page.screenshot({ path: '.build/web-example.png' });
    assert.ok(shot.length > 1000, 'a screenshot was taken');
    assert.equal([...shot.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
  } finally {
    await tcp?.close();
    await browser.close();
    child.kill('SIGINT');
    if (child.exitCode === null) await once(child, 'exit');
  }
});

test(`a page's TypedChannel exchanges ${TYPED} typed messages (utf8String, uint32, json, msgpack) with a Node TypedChannel over TCP through a typed Server`, async () => {
  const bundle = readFileSync('dist/browser.js');
  const web = http.createServer((request, response) => {
    if (request.url === '/browser.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    else response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  });
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  const webPort = (web.address() as { port: number }).port;
  // The same protocol as the page's, over ltprotocol (a type field) on both transports.
  const proto = new Protocol({ minId: 16, maxId: 65535 })
    .define('chat', 16, utf8String)
    .define('count', 17, uint32)
    .define('doc', 18, json<Record<string, unknown>>())
    .define('state', 19, msgpack<Record<string, unknown>>());
  const framing = ltprotocol('I', 'H');
  const server: Server<MessagesOf<typeof proto>> = new Server({
    framing,
    protocol: proto,
    // Forward each typed message to the other side, re-packed by the Server.
    onMessage: async (conn, message): Promise<void> => {
      for (const other of server.connections) if (other !== conn) await other.send(message.name, message.data as never);
    },
  });
  const { port: tcpPort } = await server.listen(0, '127.0.0.1');
  await server.listen({ ws: { server: web, path: '/typed' } });
  // The Node peer: a TypedChannel over TCP answering each message with one of the same type.
  const tcp = new TypedChannel(proto, await Channel.connect('127.0.0.1', tcpPort, { framing }));
  const answering = (async () => {
    for await (const m of tcp) {
      if (m.name === 'chat') await tcp.send('chat', `tcp: ${m.data}`);
      else if (m.name === 'count') await tcp.send('count', m.data + 1);
      else await tcp.send(m.name, { ...m.data, seen: 'tcp' });
    }
  })();
  while (server.connections.size < 1) await new Promise((r) => setTimeout(r, 5));

  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    await page.goto(`http://127.0.0.1:${webPort}/`);
    await page.waitForFunction('window.ready === true', { timeout: 10_000 });
    const result = (await page.evaluate(
      (url, n) => (globalThis as unknown as { runTyped: (u: string, n: number) => Promise<unknown> }).runTyped(url, n),
      `ws://127.0.0.1:${webPort}/typed`,
      TYPED,
    )) as { rightOnes: number };
    assert.equal(result, { rightOnes: TYPED });
    assert.is(await page.$eval('#status', (el) => el.textContent), `typed: sent ${TYPED}, ${TYPED} replies right`);
    assert.equal(pageErrors, []);
  } finally {
    await browser.close();
    await tcp.close();
    await answering;
    await server.close();
    web.closeAllConnections();
    await new Promise((r) => web.close(r));
  }
});

uvuTest.run();
