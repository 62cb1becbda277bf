// One side of one benchmark run, in its own process so its peak RSS is its own.
//   node bench/side.mjs <peer> <role> '<workload json>' [port]
// role: recv (listens; prints `READY <port>`), send (connects to port), inproc (both sides here).
// Prints `RESULT <json>` on stdout when done; everything else goes to stderr.
import { peakRss } from './lib.mjs';

const [peerName, role, json, port] = process.argv.slice(2);
const ctx = JSON.parse(json);
ctx.ready = (p) => process.stdout.write(`READY ${p}\n`);

const peer = await import(`./peers/${peerName}.mjs`);
let result;
try {
  if (role === 'recv') result = await peer.receiver(ctx);
  else if (role === 'send') result = await peer.sender(ctx, Number(port));
  else result = await peer.inproc(ctx);
} catch (error) {
  process.stderr.write(`${peerName} ${role}: ${error?.stack ?? error}\n`);
  process.stdout.write(`RESULT ${JSON.stringify({ error: String(error?.message ?? error) })}\n`, () => process.exit(1));
  await new Promise(() => {});
}
result.rss = peakRss();
const out = JSON.stringify(result, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
process.stdout.write(`RESULT ${out}\n`, () => process.exit(0));
