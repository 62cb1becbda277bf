/**
 * `npm start`: an echo server and a client in one process. Prints the exchange, then echoes
 * 64-byte messages for about a second and prints the rate.
 */
import { Channel } from 'msgchannel';

const listener = Channel.listen('127.0.0.1', 0, { echo: true });
const { port } = await listener.listening;

// The server: every client is served at once, each echoing until it closes.
const serving = (async () => {
  for await (const ch of listener) {
    void (async () => {
      for await (const msg of ch) await ch.send(msg);
      await ch.close();
    })();
  }
})();

const ch = await Channel.connect('127.0.0.1', port);
for (const text of ['Hello World', 'each message is one frame on the wire', 'ünïcödé is UTF-8']) {
  await ch.send(text);
  console.log(`client sent ${JSON.stringify(text)}, got back ${JSON.stringify((await ch.recv()).toString())}`);
}

// Throughput: keep a window of sends in flight, read every echo.
const body = Buffer.alloc(64, 'x');
const start = performance.now();
let received = 0;
while (performance.now() - start < 1000) {
  for (let i = 0; i < 1000; i++) void ch.send(body);
  for (let i = 0; i < 1000; i++) await ch.recv();
  received += 1000;
}
const seconds = (performance.now() - start) / 1000;
console.log(
  `echoed ${received.toLocaleString('en')} messages of 64 B in ${seconds.toFixed(2)} s: ${Math.round(received / seconds).toLocaleString('en')} round trips/s (client and server in one process)`,
);

await ch.close();
await listener.close();
await serving;
