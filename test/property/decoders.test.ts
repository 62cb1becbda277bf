/**
 * Property tests (fast-check) over every framing's decoder: any bytes in any split give only
 * ProtocolError or MessageTooLargeError, never allocate past the limit, and encode-then-decode is
 * the identity for any payloads and any chunking.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chunkAt } from '../helpers.js';
import {
  type AckIO,
  type Framing,
  MessageTooLargeError,
  ProtocolError,
  int32,
  lengthPrefixed,
  ltprotocol,
  msg,
  openflow,
  pythonConnection,
  tinyproto,
} from '../../channel.js';

const LIMIT = 512;

const framings: Framing[] = [
  msg,
  int32,
  ltprotocol(),
  ltprotocol('I', 'H'),
  ltprotocol('Q', 'Q'),
  openflow,
  lengthPrefixed({ lengthSize: 2, littleEndian: true, typeSize: 1, lengthCounts: 'frame' }),
  lengthPrefixed({ lengthSize: 8, lengthOffset: 4, typeSize: 4, typeOffset: 0, lengthAdjustment: 5 }),
  lengthPrefixed({ lengthSize: 1 }),
  pythonConnection(),
  tinyproto,
];

/** A stand-in for the Channel's side of an acknowledged framing: answers are just recorded. */
const ackIO: AckIO = { reply: () => {}, acked: () => {} };

function frame(f: Framing, body: Uint8Array, type: number): Buffer {
  const header = Buffer.alloc(f.maxHeaderLength);
  const end = f.writeHeader(header, 0, body.length, type);
  return Buffer.concat([header.subarray(0, end), body]);
}

/** Track the largest Buffer.allocUnsafe/alloc the decoders make while `fn` runs. */
function largestAllocation(fn: () => void): number {
  const { allocUnsafe, alloc, allocUnsafeSlow } = Buffer;
  let largest = 0;
  const spy =
    <F extends (size: number, ...rest: never[]) => Buffer>(orig: F) =>
    (size: number, ...rest: never[]) => {
      largest = Math.max(largest, size);
      return orig.call(Buffer, size, ...rest);
    };
  Buffer.allocUnsafe = spy(allocUnsafe) as typeof allocUnsafe;
  Buffer.alloc = spy(alloc as never) as typeof alloc;
  Buffer.allocUnsafeSlow = spy(allocUnsafeSlow) as typeof allocUnsafeSlow;
  try {
    fn();
  } finally {
    Buffer.allocUnsafe = allocUnsafe;
    Buffer.alloc = alloc;
    Buffer.allocUnsafeSlow = allocUnsafeSlow;
  }
  return largest;
}

test('the allocation spy sees a decoder allocating a body that spans chunks', () => {
  const wire = frame(msg, Buffer.alloc(300, 1), 0);
  const decoder = msg.createDecoder({ maxMessageSize: LIMIT });
  const largest = largestAllocation(() => {
    decoder.push(wire.subarray(0, 20), () => {});
    decoder.push(wire.subarray(20), () => {});
  });
  assert.is(largest, 300);
});

for (const f of framings) {
  const name = `${f.name}${f.hasType ? ` (type <= ${f.maxType})` : ''}`;

  test(`${name}: encode then decode is the identity for any payloads and any chunking`, () => {
    const maxType = Math.min(f.maxType, 2 ** 31);
    fc.assert(
      fc.property(
        fc.array(fc.record({ body: fc.uint8Array({ maxLength: 300 }), type: fc.integer({ min: 0, max: maxType }) }), {
          maxLength: 12,
        }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (messages, cuts) => {
          const wire = Buffer.concat(messages.map((m) => frame(f, m.body, m.type)));
          const decoder = f.createDecoder({ maxMessageSize: LIMIT }, f.acknowledged ? ackIO : undefined);
          const got: { body: Buffer; type: number }[] = [];
          for (const c of chunkAt(wire, cuts))
            decoder.push(c, (body, type) => got.push({ body: Buffer.from(body), type }));
          assert.is(got.length, messages.length);
          got.forEach((g, i) => {
            assert.ok(g.body.equals(messages[i]!.body));
            if (f.hasType) assert.is(g.type, messages[i]!.type);
          });
          assert.ok(decoder.atBoundary);
        },
      ),
      { numRuns: 300 },
    );
  });

  test(`${name}: any bytes in any split throw only ProtocolError or MessageTooLargeError, and never allocate past the limit`, () => {
    fc.assert(
      fc.property(
        // Hostile input: random bytes, or a valid frame followed by random bytes.
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc
            .tuple(fc.uint8Array({ maxLength: 50 }), fc.uint8Array({ maxLength: 100 }))
            .map(([b, tail]) => Buffer.concat([frame(f, b, 0), tail])),
        ),
        fc.array(fc.nat(), { maxLength: 10 }),
        (bytes, cuts) => {
          const decoder = f.createDecoder({ maxMessageSize: LIMIT }, f.acknowledged ? ackIO : undefined);
          const largest = largestAllocation(() => {
            try {
              for (const c of chunkAt(Buffer.from(bytes), cuts))
                decoder.push(c, (body) => assert.ok(body.length <= LIMIT));
            } catch (error) {
              if (!(error instanceof ProtocolError || error instanceof MessageTooLargeError)) throw error;
            }
          });
          assert.ok(largest <= LIMIT, `allocated ${largest} bytes with a limit of ${LIMIT}`);
        },
      ),
      { numRuns: 500 },
    );
  });

  test(`${name}: a length far above the limit is refused from the header`, () => {
    // A frame header claiming a huge body, whatever its form for this framing. A framing whose
    // largest length is not far above LIMIT (a 1-byte length: 255) gets a limit far below it.
    const claimed = Math.min(f.maxEncodableSize, 2 ** 40);
    const limit = claimed >= 4 * LIMIT ? LIMIT : Math.floor(claimed / 4);
    assert.ok(limit >= 1 && claimed >= 4 * limit, `claimed ${claimed}, limit ${limit}`);
    const header = Buffer.alloc(f.maxHeaderLength);
    const end = f.writeHeader(header, 0, claimed, 0);
    const replies: number[] = [];
    const ack: AckIO = { reply: (b) => replies.push(...b), acked: () => assert.unreachable('no header of ours') };
    const decoder = f.createDecoder({ maxMessageSize: limit }, f.acknowledged ? ack : undefined);
    const largest = largestAllocation(() => {
      try {
        decoder.push(header.subarray(0, end), () => assert.unreachable('no frame'));
        // tinyproto refuses with an answer byte instead of an error: the body is never expected.
        assert.ok(f.acknowledged, 'expected MessageTooLargeError');
        assert.equal(replies, [0x00], 'refused with 00');
        assert.ok(decoder.atBoundary, 'no body expected after a refusal');
      } catch (error) {
        assert.ok(error instanceof MessageTooLargeError, String(error));
        assert.is(error.limit, limit);
        assert.ok(error.size > limit, `size ${error.size}`);
      }
    });
    assert.ok(largest <= limit, `allocated ${largest} bytes with a limit of ${limit}`);
  });
}

test.run();
