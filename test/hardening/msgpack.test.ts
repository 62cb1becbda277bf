/**
 * msgpack bombs: a body whose headers announce more than the body holds (array32 announcing
 * 33,554,431 elements, 20 levels deep, in 100 bytes) must cost time and memory in proportion to
 * the frame, not to the claims. The victims (a packetmq Server, which decodes the handshake init
 * itself, and a Server with a msgpack Protocol over ltprotocol) run as child processes with a
 * 256 MiB heap, so a regression is a dead child, not a dead test runner.
 */
import { decode, encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  MessageDecodeError,
  PacketmqSession,
  Protocol,
  Server,
  TypedChannel,
  ltprotocol,
  msgpack,
  msgpackCodec,
  packetmqChannelOptions,
  packetmqProtocol,
} from '../../channel.js';
import { openHandles, resultWithin, sleep, unhandled } from '../helpers.js';
import { childKind, spawnChild, tell } from './child.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** The reported bomb: 20 nested array32 headers, each announcing 33,554,431 elements (100 bytes; 106 with packetmq's header). */
const BOMB = Buffer.concat(Array.from({ length: 20 }, () => hex('dd 01 ff ff ff')));

const PM = packetmqProtocol().define('app:echo', 16);
const LT = new Protocol({ maxId: 255 }).define('echo', 1);

// ------------------------------------------------------------------ child processes

if (childKind === 'packetmq-server' || childKind === 'lt-server') {
  const report = (e: Error & { code?: string }): void =>
    tell({ code: e.code ?? e.name, cause: String((e.cause as Error | undefined)?.message) });
  const server =
    childKind === 'packetmq-server'
      ? new Server({
          protocol: PM,
          packetmq: true,
          onMessage: (conn, m) => conn.send('app:echo', m.data),
          onError: report,
        })
      : new Server({
          framing: ltprotocol(),
          protocol: LT,
          onMessage: (conn, m) => conn.send('echo', m.data),
          onError: report,
        });
  const { port } = await server.listen(0, '127.0.0.1');
  tell({ port });
}

// ------------------------------------------------------------------ tests

if (childKind === undefined) {
  /** recv() on a typed pair after the far side sent `body` with type 1. */
  async function decodeError(body: Buffer): Promise<MessageDecodeError> {
    const [a, b] = Channel.pair({ framing: ltprotocol('I', 'B') });
    const t = new TypedChannel(LT, b);
    await a.send(body, { type: 1 });
    let error: unknown;
    try {
      await t.recv();
    } catch (e) {
      error = e;
    }
    await a.close();
    await t.closed;
    if (error === undefined) assert.unreachable(`${body.subarray(0, 16).toString('hex')}... decoded`);
    return error as MessageDecodeError;
  }

  test('msgpack codec: a header announcing more than the body holds is ERR_DECODE, refused from the header', async () => {
    const filler = Buffer.alloc(8, 0x01);
    const cases: Record<string, Buffer> = {
      array16: hex('dc ff ff'),
      array32: hex('dd 01 ff ff ff'),
      'array32 max': hex('dd ff ff ff ff'),
      map16: hex('de ff ff'),
      map32: hex('df 01 ff ff ff'),
      'map32 max': hex('df ff ff ff ff'),
      str8: hex('d9 ff'),
      str16: hex('da ff ff'),
      str32: hex('db ff ff ff ff'),
      bin8: hex('c4 ff'),
      bin16: hex('c5 ff ff'),
      bin32: hex('c6 ff ff ff ff'),
      ext8: hex('c7 ff 01'),
      ext16: hex('c8 ff ff 01'),
      ext32: hex('c9 ff ff ff ff 01'),
      'fixmap in a map value': hex('81 a1 61 8f'),
      // each level fits the body on its own (64 <= 69 bytes); together they claim 64 + 63 + 63
      'nested, each within the body': Buffer.concat([hex('dc 00 40 dc 00 40 dc 00 40'), Buffer.alloc(60, 1)]),
      'the reported bomb': BOMB,
    };
    const e = await decodeError(Buffer.concat([Buffer.alloc(2000, 0x91), hex('01')]));
    assert.is(e.code, 'ERR_DECODE', 'nested deeper than maxDepth');
    for (const [name, header] of Object.entries(cases)) {
      const e = await decodeError(Buffer.concat([header, filler]));
      assert.instance(e, MessageDecodeError, name);
      assert.is(e.code, 'ERR_DECODE', name);
      // refused from the header, not by running out of bytes after allocating what it claimed
      assert.match(String((e.cause as Error).message), /more than the \d+ bytes? left/, name);
    }
  });

  test('msgpack codec: truncated values and headers, trailing bytes and 0xc1 are ERR_DECODE', async () => {
    for (const body of [
      hex(''),
      hex('dd 00 00'),
      hex('cb 00 00'),
      hex('92 01'),
      hex('01 02'),
      hex('c1'),
      hex('a5 61 62'),
    ]) {
      assert.is((await decodeError(body)).code, 'ERR_DECODE', body.toString('hex'));
    }
  });

  test('msgpack codec: well-formed bodies still decode, up to the body’s exact capacity and deep nesting', () => {
    const c = msgpack();
    assert.equal(c.unpack(hex('dc 00 03 01 02 03')), [1, 2, 3]); // as many elements as bytes left
    assert.equal(c.unpack(hex('de 00 01 a1 61 c0')), { a: null });
    assert.equal(c.unpack(hex('dd 00 00 00 00')), []);
    assert.equal(c.unpack(hex('81 c4 01 6b 92 90 80')), { k: [[], {}] }); // bin key
    assert.equal(c.unpack(hex('c9 00 00 00 04 ff 00 00 00 01')), new Date(1000)); // timestamp ext
    const nested = (depth: number): Buffer => Buffer.concat([Buffer.alloc(depth, 0x91), hex('2a')]);
    let v = c.unpack(nested(1024)) as unknown; // the default maxDepth
    for (let i = 0; i < 1024; i++) v = (v as unknown[])[0];
    assert.is(v, 42);
    assert.throws(() => c.unpack(nested(1025)), /maxDepth 1024/);
    assert.ok(Array.isArray(msgpack({ maxDepth: 5000 }).unpack(nested(5000))));
    assert.throws(() => msgpack({ maxDepth: 2 }).unpack(hex('91 81 a1 61 90')), /maxDepth 2/);
    assert.throws(() => msgpack({ maxDepth: -1 }), RangeError);
    assert.equal(msgpack({ binAsString: true }).unpack(hex('92 c4 01 78 91 c4 01 79')), ['x', ['y']]);
  });

  test('msgpack codec: the same answers as @msgpack/msgpack on whatever it accepts, for any value and any bytes', () => {
    // the codec's own key rule: str and numbers as they are, bin as UTF-8, anything else refused
    const utf8 = new TextDecoder();
    const mapKey = (k: unknown): string | number => {
      if (typeof k === 'string' || typeof k === 'number') return k;
      if (k instanceof Uint8Array) return utf8.decode(k);
      throw new TypeError('key');
    };
    const reference = (b: Buffer): unknown => {
      try {
        return { ok: decode(b, { mapKeyConverter: mapKey }) };
      } catch {
        return 'error';
      }
    };
    const ours = (b: Buffer): unknown => {
      try {
        return { ok: msgpackCodec.unpack(b) };
      } catch {
        return 'error';
      }
    };
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const b = Buffer.from(encode(v));
        assert.equal(ours(b), reference(b));
      }),
      { numRuns: 500 },
    );
    // Bytes biased toward headers and small lengths, so the structure is often almost valid. Only
    // short claims: the reference has no bounds.
    const byte = fc.oneof(
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom(0x00, 0x01, 0x02, 0x91, 0x92, 0x81, 0xa1, 0xc4, 0xc7, 0xd4, 0xdc, 0xde, 0xd9),
    );
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 40 }), (bytes) => {
        const b = Buffer.from(bytes);
        const big = [0xdd, 0xdf, 0xdb, 0xc6, 0xc9].some((h) => b.includes(h)); // may announce 2^32: skip the reference
        if (!big) assert.equal(ours(b), reference(b));
        else ours(b);
      }),
      { numRuns: 3000 },
    );
  });

  test('a packetmq Server gets the 106-byte bomb as a handshake init: ERR_PROTOCOL for that connection, quickly; the process lives and serves a good client', async () => {
    const child = spawnChild(import.meta.url, 'packetmq-server', ['--max-old-space-size=256']);
    try {
      const { port } = await child.next();
      const bad = await Channel.connect('127.0.0.1', port, packetmqChannelOptions());
      const started = performance.now();
      await bad.send(BOMB, { type: 0 }); // id 0: packetmq:handshake_init, decoded by the library itself
      const report = await child.next();
      assert.is(report.code, 'ERR_PROTOCOL', JSON.stringify(report));
      assert.is.not(await resultWithin(bad.closed, 5000), 'pending', 'the server drops the connection');
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 2000, `refused in ${elapsed.toFixed(0)} ms`);
      const good = new PacketmqSession(PM, await Channel.connect('127.0.0.1', port, packetmqChannelOptions()), {
        adaptive: true,
      });
      await good.ready;
      await good.send('app:echo', { after: 'the bomb' });
      assert.equal((await good.recv({ timeout: 5000 })).data, { after: 'the bomb' });
      await good.softquit('reason.done');
      assert.is(child.proc.exitCode, null, 'the server process is alive');
    } finally {
      await child.kill();
    }
  });

  test('a Server with a msgpack Protocol over ltprotocol gets the bomb: ERR_DECODE for that message, quickly; the same connection and a good client go on', async () => {
    const child = spawnChild(import.meta.url, 'lt-server', ['--max-old-space-size=256']);
    try {
      const { port } = await child.next();
      const bad = await Channel.connect('127.0.0.1', port, { framing: ltprotocol() });
      const started = performance.now();
      await bad.send(BOMB, { type: 1 });
      const report = await child.next();
      assert.is(report.code, 'ERR_DECODE', JSON.stringify(report));
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 2000, `refused in ${elapsed.toFixed(0)} ms`);
      // the bomb was one bad message: the connection that sent it is still served
      await bad.send(Buffer.from(encode({ n: 1 })), { type: 1 });
      const echo = await bad.recvFrame({ timeout: 5000 });
      assert.equal(decode(echo.data), { n: 1 });
      await bad.close();
      const good = new TypedChannel(LT, await Channel.connect('127.0.0.1', port, { framing: ltprotocol() }));
      await good.send('echo', 'hello');
      assert.equal((await good.recv({ timeout: 5000 })).data, 'hello');
      await good.close();
      assert.is(child.proc.exitCode, null, 'the server process is alive');
    } finally {
      await child.kill();
    }
  });

  test('msgpack suite leaves no unhandled rejection, socket, timer or child process behind', async () => {
    await sleep(50);
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
