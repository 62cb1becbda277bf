import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageTooLargeError, ProtocolError, msg } from '../../channel.js';

function encode(body: Buffer): Buffer {
  const header = Buffer.alloc(msg.maxHeaderLength);
  const end = msg.writeHeader(header, 0, body.length, 0);
  return Buffer.concat([header.subarray(0, end), body]);
}

function decodeAll(chunks: Buffer[], max = 1 << 20): Buffer[] {
  const d = msg.createDecoder({ maxMessageSize: max });
  const out: Buffer[] = [];
  for (const c of chunks) d.push(c, (b) => out.push(Buffer.from(b)));
  return out;
}

test('encodes the gist golden vectors', () => {
  assert.equal(encode(Buffer.from('Hello World')).toString('latin1'), '\r\nMSG 11\r\nHello World');
  assert.equal(encode(Buffer.alloc(0)).toString('latin1'), '\r\nMSG 0\r\n');
});

test('decodes a frame split at every point', () => {
  const wire = Buffer.concat([encode(Buffer.from('Hello World')), encode(Buffer.alloc(0)), encode(Buffer.from('x'))]);
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const got = decodeAll([wire.subarray(0, i), wire.subarray(i, j), wire.subarray(j)]);
      assert.equal(got.map((b) => b.toString()), ['Hello World', '', 'x'], `split at ${i},${j}`);
    }
  }
});

test('rejects a malformed header with ProtocolError', () => {
  assert.throws(() => decodeAll([Buffer.from('\r\nMSG -1\r\n')]), (e: unknown) => e instanceof ProtocolError && e.code === 'ERR_PROTOCOL');
});

test('rejects a too-large length before allocating', () => {
  assert.throws(() => decodeAll([Buffer.from('\r\nMSG 1025')], 1024), (e: unknown) => e instanceof MessageTooLargeError);
});

test.run();
