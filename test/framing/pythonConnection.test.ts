import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuthenticationError, Channel, MessageTooLargeError, ProtocolError, pythonConnection } from '../../channel.js';
import { createResponse, verifyResponse } from '../../src/auth.js';
import { memoryPair } from '../../src/core/memory.js';
import { assertEverySplit, decodeAll, encode, hex, throwsCode } from './codec.js';

const pc = pythonConnection();

test('[i32 BE len][body] golden vectors', () => {
  assert.equal(encode(pc, 'hello'), hex('00 00 00 05 68 65 6C 6C 6F'));
  assert.equal(encode(pc, ''), hex('00 00 00 00'));
  const h = Buffer.alloc(12);
  assert.is(pc.writeHeader(h, 0, 0x7fffffff, 0), 4);
  assert.equal(h.subarray(0, 4), hex('7F FF FF FF'));
  assert.is(pc.writeHeader(h, 0, 0x80000000, 0), 12);
  assert.equal(h, hex('FF FF FF FF 00 00 00 00 80 00 00 00'));
  assert.is(pc.writeHeader(h, 0, 2 ** 40 + 5, 0), 12);
  assert.equal(h, hex('FF FF FF FF 00 00 01 00 00 00 00 05'));
  assert.is(pc.hasType, false);
  assert.is(pc.maxType, 0);
  assert.is(pc.maxHeaderLength, 12);
});

test('decodes short and escaped headers split at every point', () => {
  const wire = hex(
    '00 00 00 02 68 69  FF FF FF FF 00 00 00 00 00 00 00 03 61 62 63  00 00 00 00  FF FF FF FF 00 00 00 00 00 00 00 00',
  );
  assertEverySplit(pc, wire, [
    { type: 0, data: Buffer.from('hi') },
    { type: 0, data: Buffer.from('abc') },
    { type: 0, data: Buffer.alloc(0) },
    { type: 0, data: Buffer.alloc(0) },
  ]);
});

test('a negative length other than the -1 escape is a ProtocolError', () => {
  for (const wire of ['FF FF FF FE', '80 00 00 00']) {
    try {
      decodeAll(pc, [hex(wire)]);
      assert.unreachable(wire);
    } catch (error) {
      assert.instance(error, ProtocolError, wire);
      assert.is((error as ProtocolError).code, 'ERR_PROTOCOL');
    }
  }
});

test('checks maxMessageSize from the header (short, escaped, beyond 2^53)', () => {
  throwsCode(() => decodeAll(pc, [hex('00 00 04 01')], 1024), 'ERR_MESSAGE_TOO_LARGE');
  throwsCode(() => decodeAll(pc, [hex('FF FF FF FF 00 00 00 00 80 00 00 00')], 1024), 'ERR_MESSAGE_TOO_LARGE');
  throwsCode(() => decodeAll(pc, [hex('FF FF FF FF FF FF FF FF FF FF FF FF')], 1024), 'ERR_MESSAGE_TOO_LARGE');
  assert.throws(
    () => decodeAll(pc, [hex('FF FF FF FF 00 20 00 00 00 00 00 01')]),
    (e: unknown) => e instanceof MessageTooLargeError,
  );
});

test('HMAC answers match CPython (sha256 with the prefix MACed; legacy raw MD5)', () => {
  const key = Buffer.from('secret');
  const modern = Buffer.concat([Buffer.from('{sha256}'), Buffer.from(Array.from({ length: 40 }, (_, i) => i))]);
  const legacy = Buffer.from(Array.from({ length: 20 }, (_, i) => i));
  assert.equal(
    createResponse(key, modern),
    Buffer.concat([Buffer.from('{sha256}'), hex('fc57fbe650d6124b98215e7b5d197d5807ad69982d275a9735ea2d56f1fa6989')]),
  );
  assert.equal(createResponse(key, legacy), hex('7defa9cc46abc3583325d17ccda75190'));
  // What Python 3.11 answers to a {sha256} challenge: raw HMAC-MD5 of the whole message; accepted.
  verifyResponse(key, modern, hex('8e48d2bb349b4b72b9382999ed5b62eb'));
  verifyResponse(key, modern, createResponse(key, modern));
  assert.throws(
    () => verifyResponse(Buffer.from('other'), modern, createResponse(key, modern)),
    (e: unknown) => e instanceof AuthenticationError,
  );
  assert.throws(
    () => verifyResponse(key, modern, Buffer.from('{sha1}0123456789abcdef0123')),
    (e: unknown) => e instanceof AuthenticationError,
  );
});

function pairWithKeys(
  a: Parameters<typeof pythonConnection>[0],
  b: Parameters<typeof pythonConnection>[0],
): [Channel, Channel] {
  const [x, y] = memoryPair();
  return [
    new Channel(x, { framing: pythonConnection(a), isServer: false }),
    new Channel(y, { framing: pythonConnection(b), isServer: true }),
  ];
}

test('authkey: both sides authenticate, in both challenge schemes', async () => {
  for (const challenge of ['sha256', 'legacy'] as const) {
    const [client, server] = pairWithKeys({ authkey: 'k', challenge }, { authkey: Buffer.from('k'), challenge });
    await Promise.all([client.ready, server.ready]);
    await client.send('after auth');
    assert.is(String(await server.recv()), 'after auth');
    await Promise.all([client.close(), server.close()]);
  }
  // Mixed schemes interoperate too.
  const [client, server] = pairWithKeys({ authkey: 'k', challenge: 'legacy' }, { authkey: 'k' });
  await Promise.all([client.ready, server.ready]);
  await Promise.all([client.close(), server.close()]);
});

test('a wrong authkey fails on both sides with ERR_AUTH', async () => {
  const [client, server] = pairWithKeys({ authkey: 'right' }, { authkey: 'wrong' });
  const [c, s] = await Promise.allSettled([client.ready, server.ready]);
  assert.is(c.status, 'rejected');
  assert.is(s.status, 'rejected');
  assert.is(((c as PromiseRejectedResult).reason as AuthenticationError).code, 'ERR_AUTH');
  assert.is(((s as PromiseRejectedResult).reason as AuthenticationError).code, 'ERR_AUTH');
  assert.instance((s as PromiseRejectedResult).reason, AuthenticationError);
  await Promise.all([client.closed, server.closed]);
});

test('handshake messages are read with a 256-byte limit', async () => {
  const [x, y] = memoryPair();
  const client = new Channel(x, { framing: pythonConnection({ authkey: 'k' }), isServer: false });
  const header = Buffer.alloc(4);
  header.writeUInt32BE(300);
  y.write(Buffer.concat([header, Buffer.alloc(300)]));
  try {
    await client.ready;
    assert.unreachable('accepted a 300-byte challenge');
  } catch (error) {
    assert.instance(error, ProtocolError);
    assert.is((error as Error).message, 'bad message length 300 in the multiprocessing handshake (limit 256)');
  }
  y.destroy();
  await client.closed;
});

/** Bytes one way between two handshakes: read(n) waits until n bytes have come. */
class Pipe {
  #buffered = Buffer.alloc(0);
  #wake: (() => void) | undefined;
  write(bytes: Uint8Array): void {
    this.#buffered = Buffer.concat([this.#buffered, bytes]);
    this.#wake?.();
  }
  async read(n: number): Promise<Buffer> {
    while (this.#buffered.length < n) await new Promise<void>((resolve) => (this.#wake = resolve));
    const out = this.#buffered.subarray(0, n);
    this.#buffered = this.#buffered.subarray(n);
    return out;
  }
}

/** A whole handshake message `[i32 length][message]` as multiprocessing writes a long one: `FF FF FF FF [u64 length][message]`. */
function escaped(bytes: Uint8Array): Buffer {
  const b = Buffer.from(bytes);
  assert.is(b.readUInt32BE(0), b.length - 4, 'one whole message per write');
  const header = Buffer.alloc(12);
  header.writeUInt32BE(0xffffffff, 0);
  header.writeUInt32BE(b.length - 4, 8);
  return Buffer.concat([header, b.subarray(4)]);
}

test('authkey: the handshake reads lengths in the u64 escape too (multiprocessing accepts it on any message)', async () => {
  const toServer = new Pipe();
  const toClient = new Pipe();
  const framing = pythonConnection({ authkey: 'k' });
  const client = framing.handshake!({
    isServer: false,
    write: (b) => toServer.write(escaped(b)),
    read: (n) => toClient.read(n),
  });
  const server = framing.handshake!({
    isServer: true,
    write: (b) => toClient.write(escaped(b)),
    read: (n) => toServer.read(n),
  });
  await Promise.all([client, server]);
  // An escaped length above the limit: refused from the header, with the length it announced.
  const bigger = new Pipe();
  const header = Buffer.alloc(12);
  header.writeUInt32BE(0xffffffff, 0);
  header.writeUInt32BE(0x100, 4);
  bigger.write(header);
  try {
    await framing.handshake!({ isServer: false, write: () => {}, read: (n) => bigger.read(n) });
    assert.unreachable('accepted a 2^40-byte challenge');
  } catch (error) {
    assert.instance(error, ProtocolError);
    assert.is(
      (error as Error).message,
      'bad message length 1099511627776 in the multiprocessing handshake (limit 256)',
    );
  }
});

test('bad options', () => {
  assert.throws(
    () => pythonConnection({ challenge: 'md5' as 'legacy' }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => pythonConnection({ authkey: 5 as unknown as string }),
    (e: unknown) => e instanceof TypeError,
  );
});

test('bad options are named in their errors; no authkey, no handshake', () => {
  assert.throws(() => pythonConnection({ challenge: 'md5' as 'legacy' }), /`challenge`/);
  assert.throws(() => pythonConnection({ authkey: 5 as unknown as string }), /`authkey`/);
  assert.throws(() => pythonConnection({ authkey: {} as unknown as string }), /`authkey`/);
  assert.is(pc.name, 'pythonConnection');
  assert.is(pc.handshake, undefined);
  assert.type(pythonConnection({ authkey: new Uint8Array([1]) }).handshake, 'function');
});

test('a negative length: ProtocolError at the offset of its header, however it is split, even right after an escaped header', () => {
  const good = encode(pc, 'ok');
  // After an escaped header (parsed from split chunks), FF FF FF FE is still a short, negative header.
  const escaped = hex('FF FF FF FF 00 00 00 00 00 00 00 03 61 62 63');
  for (const before of [good, Buffer.concat([good, escaped])]) {
    const wire = Buffer.concat([before, hex('FF FF FF FE 00 00 00 00 00 00 00 01 78')]);
    const splits: Buffer[][] = [[wire], [...wire].map((b) => Buffer.from([b]))];
    for (let i = before.length; i < before.length + 4; i++) {
      splits.push([before.subarray(0, 3), before.subarray(3), wire.subarray(before.length, i), wire.subarray(i)]);
      // The bad header starting inside a chunk, after the frames before it, and cut by its end.
      splits.push([wire.subarray(0, i), wire.subarray(i)]);
    }
    for (const chunks of splits) {
      const what = `chunks of ${chunks.map((c) => c.length).join('+')}`;
      try {
        decodeAll(pc, chunks);
        assert.unreachable(what);
      } catch (error) {
        assert.instance(error, ProtocolError, what);
        assert.is((error as ProtocolError).offset, before.length, what);
        assert.match((error as Error).message, /negative length -2\b/, what);
      }
    }
  }
  // 7F FF FF FF is the largest short length: too large here, not negative.
  throwsCode(() => decodeAll(pc, [hex('7F FF FF FF')]), 'ERR_MESSAGE_TOO_LARGE');
});

test.run();
