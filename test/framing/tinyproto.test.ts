import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type AckIO,
  Channel,
  ConnectionRefusedError,
  MessageRefusedError,
  ProtocolError,
  tinyproto,
} from '../../channel.js';
import { memoryPair } from '../../src/core/memory.js';
import { encode, hex } from './codec.js';

/** A decoder with a recording AckIO. */
function recorder(maxMessageSize = 1 << 20) {
  const replies: string[] = [];
  const acks: (string | undefined)[] = [];
  const frames: string[] = [];
  const ack: AckIO = {
    reply: (b) => replies.push(b.toString('hex')),
    acked: (e) => acks.push(e === undefined ? 'ok' : (e as MessageRefusedError).code),
  };
  const decoder = tinyproto.createDecoder({ maxMessageSize }, ack);
  const push = (chunk: Buffer) => decoder.push(chunk, (data) => frames.push(data.toString('hex')));
  return { decoder, push, replies, acks, frames };
}

test('golden bytes: [u32 BE size] then the body; the answer is FF or 00', () => {
  assert.equal(encode(tinyproto, 'hi'), hex('00 00 00 02 68 69'));
  assert.equal(encode(tinyproto, ''), hex('00 00 00 00'));
  assert.is(tinyproto.acknowledged, true);
  assert.is(tinyproto.maxEncodableSize, 0xf0ffffff);
  assert.is(tinyproto.hasType, false);
  const r = recorder();
  r.push(hex('00 00 00 02'));
  assert.equal(r.replies, ['ff'], 'answers a header at once, before the body');
  assert.not.ok(r.decoder.atBoundary);
  r.push(hex('68 69'));
  assert.equal(r.frames, ['6869']);
  assert.ok(r.decoder.atBoundary);
});

test('decoder: every split point, with answers to our headers in between', () => {
  // Peer: message "hi", answer FF to our first header, empty message, answer 00 to our second, message "!".
  const wire = hex('00 00 00 02 68 69  FF  00 00 00 00  00  00 00 00 01 21');
  // We wrote our first header while the peer's body was arriving (offset 4: safe, the answer
  // follows that body), the second at a boundary (offset 11).
  const expectAt = [4, 11];
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const r = recorder();
      const cuts = [...new Set([0, i, j, ...expectAt, wire.length])].sort((x, y) => x - y);
      for (let k = 0; k + 1 < cuts.length; k++) {
        if (expectAt.includes(cuts[k]!)) r.decoder.expectAck!(5);
        r.push(wire.subarray(cuts[k], cuts[k + 1]));
      }
      assert.equal(r.frames, ['6869', '', '21'], `split at ${i},${j}`);
      assert.equal(r.acks, ['ok', 'ERR_MESSAGE_REFUSED'], `split at ${i},${j}`);
      assert.equal(r.replies, ['ff', 'ff', 'ff'], `split at ${i},${j}`);
    }
  }
  // One byte at a time.
  const r = recorder();
  for (let k = 0; k < wire.length; k++) {
    if (expectAt.includes(k)) r.decoder.expectAck!(5);
    r.push(wire.subarray(k, k + 1));
  }
  assert.equal(r.frames, ['6869', '', '21']);
});

test('refuses from the header above maxMessageSize or F0FFFFFF and stays in step', () => {
  const r = recorder(10);
  r.push(hex('00 00 00 0B  F1 00 00 00  00 00 00 01 7A'));
  assert.equal(r.replies, ['00', '00', 'ff']);
  assert.equal(r.frames, ['7a']);
  const big = recorder(0xffffffff);
  big.push(hex('F1 00 00 00'));
  assert.equal(big.replies, ['00']);
});

test('an answer byte other than FF/00/FE/FD is a ProtocolError; FE and FD are refusals', () => {
  const r = recorder();
  r.decoder.expectAck!(1);
  r.push(hex('FE'));
  assert.equal(r.acks, ['ERR_MESSAGE_REFUSED']);
  r.decoder.expectAck!(1);
  try {
    r.push(hex('12'));
    assert.unreachable('accepted 0x12 as an answer');
  } catch (error) {
    assert.instance(error, ProtocolError);
  }
});

test('Channel.pair: both directions, concurrent sends, empty messages', async () => {
  const [a, b] = Channel.pair({ framing: tinyproto });
  try {
    await Promise.all([a.ready, b.ready]);
    // Several sends from one side at once: serialised, each waits for its answer.
    await Promise.all([a.send('one'), a.send(''), a.send(Buffer.alloc(100_000, 3))]);
    assert.is(String(await b.recv()), 'one');
    assert.is((await b.recv()).length, 0);
    assert.is((await b.recv()).length, 100_000);
    await b.send('reply');
    assert.is(String(await a.recv()), 'reply');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('a refused message rejects that send with ERR_MESSAGE_REFUSED; the channel goes on', async () => {
  const [x, y] = memoryPair();
  const a = new Channel(x, { framing: tinyproto });
  const b = new Channel(y, { framing: tinyproto, maxMessageSize: 10, isServer: true });
  try {
    try {
      await a.send(Buffer.alloc(11));
      assert.unreachable('a refused send resolved');
    } catch (error) {
      assert.instance(error, MessageRefusedError);
      assert.is((error as MessageRefusedError).code, 'ERR_MESSAGE_REFUSED');
      assert.is((error as MessageRefusedError).status, 0);
      assert.is((error as MessageRefusedError).size, 11);
    }
    await a.send('fits');
    assert.is(String(await b.recv()), 'fits');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('the init byte: anything but FF fails the handshake', async () => {
  const [x, y] = memoryPair();
  const a = new Channel(x, { framing: tinyproto });
  y.write(hex('FE'));
  try {
    await a.ready;
    assert.unreachable('accepted FE as the init byte');
  } catch (error) {
    assert.instance(error, ProtocolError);
    assert.match((error as Error).message, /connection limit/);
  }
  y.destroy();
  await a.closed;
});

test('the peer closing while our header waits for its answer rejects the send', async () => {
  const [x, y] = memoryPair();
  const a = new Channel(x, { framing: tinyproto });
  y.write(hex('FF'));
  await a.ready;
  const sent = a.send('never answered');
  y.end();
  try {
    await sent;
    assert.unreachable('resolved without an answer');
  } catch (error) {
    assert.is((error as { code?: string }).code, 'ERR_CHANNEL_CLOSED');
  }
  await a.closed;
});

test('half-duplex: a header from the peer where our answer is due reads as a refusal, then the stream is out of step', async () => {
  const [x, y] = memoryPair();
  const a = new Channel(x, { framing: tinyproto });
  const fromA: Buffer[] = [];
  y.on('data', (c: Buffer) => fromA.push(c));
  y.write(hex('FF'));
  await a.ready;
  // Both sides start a message at once: a sends "from a", the peer its own 6-byte header.
  const sent = a.send('from a');
  await new Promise((r) => setImmediate(r));
  y.write(hex('00 00 00 06'));
  try {
    await sent;
    assert.unreachable('the collision went unnoticed');
  } catch (error) {
    // The first byte of the peer's size (00) was taken as the answer to our header.
    assert.is((error as MessageRefusedError).code, 'ERR_MESSAGE_REFUSED');
  }
  // The remaining 00 00 06 are now the start of a header: nothing lines up any more.
  assert.not.ok(a.isOpen && a.bufferedMessages > 0);
  assert.equal(Buffer.concat(fromA), hex('FF 00 00 00 06'), 'a wrote its init byte and its header, never the body');
  a.destroy();
  y.destroy();
  await a.closed;
});

test('refusals name the status byte and its meaning; an answer is due until it arrives', () => {
  const messages: string[] = [];
  const decoder = tinyproto.createDecoder(
    { maxMessageSize: 100 },
    { reply: () => {}, acked: (e) => messages.push(e ? e.message : 'ok') },
  );
  for (const status of ['00', 'FE', 'FD', 'FF']) {
    decoder.expectAck!(5);
    assert.is(decoder.atBoundary, false, 'an answer is due');
    decoder.push(hex(status), () => {});
    assert.is(decoder.atBoundary, true);
  }
  assert.equal(messages, [
    'peer refused a 5-byte message (0x00: error)',
    'peer refused a 5-byte message (0xfe: connection limit)',
    'peer refused a 5-byte message (0xfd: conflict)',
    'ok',
  ]);
  assert.is(tinyproto.name, 'tinyproto');
  assert.throws(() => tinyproto.writeHeader(Buffer.alloc(4), 0, 0xf1000000, 0), /above the protocol's maximum/);
  assert.throws(
    () => tinyproto.writeHeader(Buffer.alloc(4), 0, -1, 0),
    (e: unknown) => e instanceof RangeError && e.message === 'tinyproto: a -1-byte body is negative',
  );
});

test('the init byte, answered directly: FE and 00 are ConnectionRefusedError (connection limit), anything else a ProtocolError', async () => {
  const init = async (byte: number): Promise<Error | undefined> => {
    const written: string[] = [];
    const io = {
      isServer: false,
      write: (b: Uint8Array) => void written.push(Buffer.from(b).toString('hex')),
      read: async () => Buffer.from([byte]),
    };
    const outcome = await tinyproto.handshake!(io).then(
      () => undefined,
      (error: Error) => error,
    );
    assert.equal(written, ['ff'], 'our init byte first');
    return outcome;
  };
  assert.is(await init(0xff), undefined);
  for (const [byte, says] of [
    [0xfe, /sent 0xfe instead of FF \(connection limit\)/],
    [0x00, /sent 0x00 instead of FF.*254 zero bytes/],
  ] as const) {
    const e = await init(byte);
    assert.instance(e, ConnectionRefusedError);
    assert.is((e as ConnectionRefusedError).code, 'ERR_CONNECTION_LIMIT');
    assert.is((e as ConnectionRefusedError).offset, 0);
    assert.match(e!.message, says);
  }
  for (const [byte, message] of [
    [0x42, 'tinyproto initialisation failed: the peer sent 0x42 instead of FF'],
    [0xfd, 'tinyproto initialisation failed: the peer sent 0xfd instead of FF (conflict)'],
  ] as const) {
    const e = await init(byte);
    assert.instance(e, ProtocolError);
    assert.not.instance(e, ConnectionRefusedError);
    assert.is((e as ProtocolError).code, 'ERR_PROTOCOL');
    assert.is((e as ProtocolError).offset, 0);
    assert.is(e!.message, message);
  }
});

test('a bad answer byte: ProtocolError at its stream offset, naming the byte and the half-duplex rule, however the stream is cut', () => {
  // Peer: message "hi", answer FF, message "!", then 12 where the answer to our second header is due.
  // We wrote our headers while the peer's messages were arriving (offsets 4 and 9): their answers follow those messages.
  const wire = hex('00 00 00 02 68 69  FF  00 00 00 01 21  12');
  const expectAt = [4, 9];
  const splits: number[][] = [];
  for (let i = 0; i <= wire.length; i++) for (let j = i; j <= wire.length; j++) splits.push([i, j]);
  splits.push([...wire.keys()]);
  for (const points of splits) {
    const r = recorder();
    const cuts = [...new Set([0, ...points, ...expectAt, wire.length])].sort((x, y) => x - y);
    const where = `cut at ${cuts.join(',')}`;
    try {
      for (let k = 0; k + 1 < cuts.length; k++) {
        if (expectAt.includes(cuts[k]!)) r.decoder.expectAck!(5);
        r.push(wire.subarray(cuts[k], cuts[k + 1]));
      }
      assert.unreachable(`${where}: accepted 0x12 as an answer`);
    } catch (error) {
      assert.instance(error, ProtocolError, where);
      assert.is((error as ProtocolError).offset, 12, where);
      assert.is(
        (error as Error).message,
        'tinyproto: expected FF or 00 answering our message header, got 0x12 (did both sides send at once? tinyproto is half-duplex)',
        where,
      );
    }
    assert.equal(r.frames, ['6869', '21'], where);
    assert.equal(r.acks, ['ok'], where);
  }
});

test('the refusal a listener at its connection limit writes (tinyproto.refusal, FE) fails the connecting handshake with ConnectionRefusedError', async () => {
  assert.equal(Buffer.from(tinyproto.refusal!), hex('FE'));
  const refusal = Buffer.from(tinyproto.refusal!);
  const e = await tinyproto.handshake!({
    isServer: false,
    write: () => {},
    read: async (n) => refusal.subarray(0, n),
  }).then(
    () => undefined,
    (error: Error) => error,
  );
  assert.instance(e, ConnectionRefusedError);
  assert.is((e as ConnectionRefusedError).code, 'ERR_CONNECTION_LIMIT');
  // Over TCP: a listener with room for one connection refuses the second with those bytes.
  const listener = Channel.listen('127.0.0.1', 0, { framing: tinyproto, maxConnections: 1 });
  const { port } = await listener.listening;
  const first = await Channel.connect('127.0.0.1', port, { framing: tinyproto });
  try {
    await Channel.connect('127.0.0.1', port, { framing: tinyproto }).then(
      (second) => {
        void second.close();
        assert.unreachable('accepted over the limit');
      },
      (error: unknown) => {
        assert.instance(error, ConnectionRefusedError);
        assert.match((error as Error).message, /0xfe instead of FF \(connection limit\)/);
      },
    );
  } finally {
    await first.close();
    await listener.close();
  }
});

test.run();
