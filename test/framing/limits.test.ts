/**
 * maxMessageSize at its boundary, for every framing whose decoder checks it: a message of exactly
 * the limit is accepted and one byte more is refused from the header (MessageTooLargeError, or
 * tinyproto's refusal byte), however the header is split across chunks: whole, at every byte,
 * one byte at a time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type AckIO,
  type Framing,
  MessageTooLargeError,
  int32,
  lengthPrefixed,
  ltprotocol,
  msg,
  openflow,
  pythonConnection,
  tinyproto,
} from '../../channel.js';

const LIMITS = [0, 1, 9, 10, 99, 100, 200, 1000];

/** A frame header as a peer writes it: the framing's own, or one written by hand (`header`). */
interface Case {
  name: string;
  framing: Framing;
  header?: (length: number) => Buffer;
}

function header(c: Case, length: number, type: number): Buffer {
  if (c.header) return c.header(length);
  const h = Buffer.alloc(c.framing.maxHeaderLength);
  return h.subarray(0, c.framing.writeHeader(h, 0, length, type));
}

/** multiprocessing's long form, `FF FF FF FF` + u64 length, which Python reads for any length. */
function escapedHeader(length: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt32BE(0xffffffff, 0);
  h.writeUInt32BE(0, 4);
  h.writeUInt32BE(length, 8);
  return h;
}

const cases: Case[] = [
  { name: 'msg', framing: msg },
  { name: 'int32', framing: int32 },
  { name: "ltprotocol('H', 'B')", framing: ltprotocol() },
  { name: "ltprotocol('B', 'B')", framing: ltprotocol('B', 'B') },
  { name: "ltprotocol('I', 'H')", framing: ltprotocol('I', 'H') },
  { name: "ltprotocol('Q', 'Q')", framing: ltprotocol('Q', 'Q') },
  { name: 'openflow', framing: openflow },
  { name: 'lengthPrefixed 1-byte length', framing: lengthPrefixed({ lengthSize: 1 }) },
  {
    name: 'lengthPrefixed packetmq layout',
    framing: lengthPrefixed({ lengthSize: 4, typeSize: 2, lengthAdjustment: 2 }),
  },
  {
    name: 'lengthPrefixed LE, frame-counted',
    framing: lengthPrefixed({ lengthSize: 2, littleEndian: true, typeSize: 1, lengthCounts: 'frame' }),
  },
  {
    name: 'lengthPrefixed 8-byte length at an offset',
    framing: lengthPrefixed({ lengthSize: 8, lengthOffset: 4, typeSize: 4, typeOffset: 0, lengthAdjustment: 5 }),
  },
  { name: 'pythonConnection', framing: pythonConnection() },
  { name: 'pythonConnection, long-form header', framing: pythonConnection(), header: escapedHeader },
  { name: 'tinyproto', framing: tinyproto },
];

/** The header cut at every byte, and one byte at a time. */
function headerSplits(h: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let k = 0; k <= h.length; k++) out.push([h.subarray(0, k), h.subarray(k)]);
  out.push([...h].map((b) => Buffer.from([b])));
  return out;
}

const describe = (chunks: Buffer[]): string => `header in chunks of ${chunks.map((c) => c.length).join('+')}`;

for (const c of cases) {
  const f = c.framing;
  const type = f.hasType ? Math.min(f.maxType, 7) : 0;
  const limits = LIMITS.filter((limit) => limit + 1 <= f.maxEncodableSize);

  test(`${c.name}: a message of exactly maxMessageSize is accepted, with its header split anywhere`, () => {
    for (const limit of limits) {
      const body = Buffer.alloc(limit, 0x5a);
      const h = header(c, limit, type);
      for (const chunks of headerSplits(h)) {
        // The body after the header's last piece, in the same chunk and in a chunk of its own.
        const last = chunks.length - 1;
        const together = [...chunks.slice(0, last), Buffer.concat([chunks[last]!, body])];
        for (const feed of [together, [...chunks, body]]) {
          const d = f.createDecoder({ maxMessageSize: limit });
          const got: Buffer[] = [];
          try {
            for (const piece of feed) {
              d.push(piece, (b, t) => {
                got.push(Buffer.from(b));
                assert.is(t, type);
              });
            }
          } catch (error) {
            assert.unreachable(`limit ${limit}, ${describe(chunks)}: ${String(error)}`);
          }
          assert.equal(got, [body], `limit ${limit}, ${describe(chunks)}`);
          assert.ok(d.atBoundary);
        }
      }
    }
  });

  test(`${c.name}: one byte above maxMessageSize is refused from the header, split anywhere`, () => {
    for (const limit of limits) {
      const h = header(c, limit + 1, type);
      for (const chunks of headerSplits(h)) {
        const d = f.createDecoder({ maxMessageSize: limit });
        // The header alone: the refusal must not wait for the body.
        assert.throws(
          () => {
            for (const piece of chunks) d.push(piece, () => assert.unreachable('a frame above the limit'));
          },
          (e: unknown) =>
            e instanceof MessageTooLargeError &&
            e.code === 'ERR_MESSAGE_TOO_LARGE' &&
            e.size === limit + 1 &&
            e.limit === limit &&
            // The receive side's wording: the peer announced it (not "cannot send").
            e.message.startsWith(`peer announced a ${limit + 1}-byte message`),
          `limit ${limit}, ${describe(chunks)}`,
        );
      }
    }
  });
}

test('tinyproto with the Channel’s answers: FF for exactly maxMessageSize, 00 for one byte more, header split anywhere; the stream stays in step', () => {
  for (const limit of LIMITS) {
    for (const [size, answer] of [
      [limit, 0xff],
      [limit + 1, 0x00],
    ] as const) {
      const h = header({ name: 'tinyproto', framing: tinyproto }, size, 0);
      const next = header({ name: 'tinyproto', framing: tinyproto }, 0, 0);
      for (const chunks of headerSplits(h)) {
        const replies: number[] = [];
        const ack: AckIO = { reply: (b) => replies.push(...b), acked: () => assert.unreachable('no header of ours') };
        const d = tinyproto.createDecoder({ maxMessageSize: limit }, ack);
        const got: Buffer[] = [];
        const sink = (b: Buffer): void => void got.push(Buffer.from(b));
        for (const piece of chunks) d.push(piece, sink);
        assert.equal(replies, [answer], `size ${size}, limit ${limit}, ${describe(chunks)}`);
        // A refused sender writes no body; an accepted one does. Then the next frame decodes.
        if (answer === 0xff) d.push(Buffer.alloc(size, 1), sink);
        d.push(next, sink); // an empty message, within any limit
        assert.equal(got, answer === 0xff ? [Buffer.alloc(size, 1), Buffer.alloc(0)] : [Buffer.alloc(0)]);
        assert.equal(replies, [answer, 0xff]);
      }
    }
  }
});

test.run();
