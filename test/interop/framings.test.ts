/** Our framings against Python peers written from the wire format (test/interop/peers/framed_peer.py). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, type Framing, int32, ltprotocol, openflow, openflowType, pythonConnection } from '../../channel.js';
import { pythonTest, startPeer, startServerPeer, within } from './python.js';

/** Skipped (or failed under MSGCHANNEL_STRICT_PEERS=1) without python3. */
const peerTest = pythonTest('interop/framings');

interface Case {
  format: string;
  framing: Framing;
  greeting: { type: number; data: Buffer }[];
  frames: { type: number; data: Buffer }[];
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const big = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31) & 0xff));

const cases: Case[] = [
  {
    format: 'ltprotocol',
    framing: ltprotocol(),
    greeting: [
      { type: 1, data: u32(200) },
      { type: 2, data: Buffer.from('hello world!') },
      { type: 1, data: u32(7) },
    ],
    frames: [
      { type: 1, data: u32(42) },
      { type: 0, data: Buffer.alloc(0) },
      { type: 255, data: big(65532) },
    ],
  },
  {
    format: 'ltprotocol:I:H',
    framing: ltprotocol('I', 'H'),
    greeting: [
      { type: 1, data: u32(200) },
      { type: 2, data: Buffer.from('hello world!') },
      { type: 1, data: u32(7) },
    ],
    frames: [
      { type: 65535, data: big(200_000) },
      { type: 3, data: Buffer.from('x') },
    ],
  },
  {
    format: 'int32',
    framing: int32,
    greeting: [{ type: 0, data: Buffer.from('hello from int32') }],
    frames: [
      { type: 0, data: Buffer.from('ping') },
      { type: 0, data: Buffer.alloc(0) },
      { type: 0, data: big(300_000) },
    ],
  },
  {
    format: 'openflow',
    framing: openflow,
    greeting: [{ type: openflowType(4, 0), data: u32(1) }],
    frames: [
      { type: openflowType(4, 2), data: Buffer.concat([u32(9), Buffer.from('echo me')]) },
      { type: openflowType(1, 0), data: u32(10) },
      { type: openflowType(4, 10), data: Buffer.concat([u32(11), big(65000)]) },
    ],
  },
  {
    format: 'mp',
    framing: pythonConnection(),
    greeting: [{ type: 0, data: Buffer.from('hello from python') }],
    frames: [
      { type: 0, data: Buffer.from('ping') },
      { type: 0, data: Buffer.alloc(0) },
      { type: 0, data: big(300_000) },
    ],
  },
];

async function exchange(ch: Channel, c: Case): Promise<void> {
  for (const g of c.greeting) assert.equal(await ch.recvFrame({ timeout: 5000 }), g);
  for (const f of c.frames) await ch.send(f.data, { type: f.type });
  for (const f of c.frames) {
    const got = await ch.recvFrame({ timeout: 5000 });
    assert.is(got.type, f.type);
    assert.ok(got.data.equals(f.data), `echo of a ${f.data.length}-byte body`);
  }
  await ch.close();
}

for (const c of cases) {
  peerTest(`${c.format}: we connect to a Python server`, async () => {
    const peer = await startServerPeer('framed_peer.py', [c.format, 'server']);
    try {
      await within(10_000, async () => {
        const ch = await Channel.connect('127.0.0.1', peer.port, { framing: c.framing, timeout: 5000 });
        await exchange(ch, c);
        await peer.waitLine(/^EOF$/);
      });
      assert.is(peer.lines.filter((l) => l.startsWith('GOT ')).length, c.frames.length);
    } finally {
      await peer.stop();
    }
  });

  peerTest(`${c.format}: a Python client connects to us`, async () => {
    const listener = Channel.listen('127.0.0.1', 0, { framing: c.framing });
    const { port } = await listener.listening;
    const peer = startPeer('framed_peer.py', [c.format, 'client', String(port)]);
    try {
      await within(10_000, async () => {
        const ch = (await listener.accept())!;
        await exchange(ch, c);
        await peer.waitLine(/^EOF$/);
      });
    } finally {
      await listener.close();
      await peer.stop();
    }
  });
}

test.run();
