/**
 * packetmq packet names are data: a name that happens to be an Object.prototype property
 * (`constructor`, `toString`, ...) is an ordinary packet name, on both sides of the handshake;
 * only packetmq's own four names are reserved.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  PACKETMQ_RESERVED,
  PacketmqSession,
  packetmqChannelOptions,
  packetmqProtocol,
  uint32,
} from '../../channel.js';
import { openHandles, sleep, unhandled } from '../helpers.js';

const NAMES = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf'] as const;

const protocolWith = (first: number) =>
  packetmqProtocol()
    .define('constructor', first, uint32)
    .define('toString', first + 1, uint32)
    .define('valueOf', first + 2, uint32)
    .define('hasOwnProperty', first + 3, uint32)
    .define('isPrototypeOf', first + 4, uint32);

test('packets named constructor, toString, valueOf...: defined, handshaken (ids adapted), sent and received as any name', async () => {
  const [a, b] = Channel.pair(packetmqChannelOptions());
  // the fixed side numbers them differently: the adaptive side must adopt these names from its idmap
  const adaptive = new PacketmqSession(protocolWith(16), a, { adaptive: true });
  const fixed = new PacketmqSession(protocolWith(100), b, { adaptive: false });
  await Promise.all([adaptive.ready, fixed.ready]);
  assert.equal(Object.fromEntries(adaptive.wireIds), Object.fromEntries(NAMES.map((n, i) => [n, 100 + i])));
  for (const [i, name] of NAMES.entries()) {
    await adaptive.send(name, i);
    const m = await fixed.recv();
    assert.equal([m.name, m.id, m.data], [name, 100 + i, i]);
    await fixed.send(name, 1000 + i);
    const back = await adaptive.recv();
    assert.equal([back.name, back.id, back.data], [name, 100 + i, 1000 + i]);
  }
  await adaptive.softquit('reason.done');
  await fixed.closed;
});

test('only packetmq’s own names are reserved', () => {
  const [a] = Channel.pair(packetmqChannelOptions());
  for (const name of Object.keys(PACKETMQ_RESERVED)) {
    assert.throws(
      () => new PacketmqSession(packetmqProtocol().define(name, 16), a, { adaptive: true }),
      RangeError,
      name,
    );
  }
  a.destroy();
});

test('packetmq-names suite leaves no unhandled rejection, socket or timer behind', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
