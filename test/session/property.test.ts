/**
 * Property tests over random cut schedules (fast-check), for every framing: through a chaos proxy
 * that resets every connection when a side reaches a drawn message number, numbered messages of
 * drawn sizes go both ways at once (one way after the other for half-duplex tinyproto), and each side receives exactly the other's sequence: every
 * message once, in order. Windows are drawn too, down to a few KiB, so sends wait on full windows
 * and resumes replay what was in flight.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, int32, msg, pythonConnection, tinyproto, type Framing } from '../../channel.js';
import { ChaosProxy } from './chaos.js';

const N = 300;

function numbered(i: number, size: number): Buffer {
  const b = Buffer.alloc(Math.max(4, size));
  b.writeUInt32BE(i, 0);
  for (let j = 4; j < b.length; j++) b[j] = (i + j) & 0xff;
  return b;
}

/** Check message i: its number and its filler bytes. */
function check(got: Buffer, i: number): void {
  assert.is(got.readUInt32BE(0), i);
  for (let j = 4; j < got.length; j++)
    if (got[j] !== ((i + j) & 0xff)) assert.unreachable(`message ${i} corrupted at ${j}`);
}

/** Send N numbered messages (sizes drawn), cutting every connection at the drawn message numbers. */
async function sendAll(ch: Channel, sizes: number[], cuts: Set<number>, proxy: ChaosProxy): Promise<void> {
  for (let i = 0; i < N; i++) {
    if (cuts.has(i)) proxy.cut();
    await ch.send(numbered(i, sizes[i % sizes.length]!));
  }
}

async function receiveAll(ch: Channel): Promise<void> {
  for (let i = 0; i < N; i++) check(await ch.recv(), i);
}

async function run(framing: Framing, window: number, sizes: number[], clientCuts: number[], serverCuts: number[]) {
  const resume = { window, heartbeat: 200, keep: 5000 };
  const listener = Channel.listen('127.0.0.1', 0, { framing, resume });
  const { port } = await listener.listening;
  const proxy = await ChaosProxy.start(port);
  try {
    const [client, server] = await Promise.all([
      Channel.connect('127.0.0.1', proxy.port, { framing, resume }),
      listener.accept(),
    ]);
    const up = (): Promise<unknown> =>
      Promise.all([sendAll(client, sizes, new Set(clientCuts), proxy), receiveAll(server!)]);
    const down = (): Promise<unknown> =>
      Promise.all([sendAll(server!, sizes, new Set(serverCuts), proxy), receiveAll(client)]);
    // tinyproto is half-duplex (one frame at a time, each answered): one direction after the other.
    if (framing.acknowledged === true) {
      await up();
      await down();
    } else await Promise.all([up(), down()]);
    // The cuts happened: a drawn cut while connected forces a resume (the proxy keeps no link open otherwise).
    if (clientCuts.length + serverCuts.length > 0) assert.ok(client.stats.session!.resumes > 0, 'no resume');
    await Promise.all([client.close(), server!.close()]);
    assert.is(listener.sessions, 0);
  } finally {
    await proxy.close();
    await listener.close();
  }
}

const schedule = fc.record({
  window: fc.constantFrom(4096, 20_000, 1024 * 1024),
  sizes: fc.array(fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1000, max: 70_000 })), {
    minLength: 1,
    maxLength: 5,
  }),
  clientCuts: fc.uniqueArray(fc.integer({ min: 0, max: N - 1 }), { maxLength: 5 }),
  serverCuts: fc.uniqueArray(fc.integer({ min: 0, max: N - 1 }), { maxLength: 5 }),
});

const framings: [string, Framing][] = [
  ['msg', msg],
  ['int32', int32],
  ['pythonConnection', pythonConnection()],
  ['tinyproto', tinyproto],
];

for (const [name, framing] of framings) {
  test(`${name}: exactly once, in order, both ways, whatever the cut schedule`, async () => {
    await fc.assert(
      fc.asyncProperty(schedule, (s) => run(framing, s.window, s.sizes, s.clientCuts, s.serverCuts)),
      { numRuns: 4 },
    );
  });
}

test.run();
