/**
 * Property tests (fast-check) for the decoder cases the generic properties in decoders.test.ts do
 * not reach: pythonConnection's u64 escape header (`FF FF FF FF` + u64 length) for any length, and
 * tinyproto's answers to our own headers (FF, 00, FE, FD) interleaved with the peer's frames.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chunkAt } from '../helpers.js';
import {
  type AckIO,
  MessageRefusedError,
  MessageTooLargeError,
  ProtocolError,
  pythonConnection,
  tinyproto,
} from '../../channel.js';

const LIMIT = 512;

function escaped(body: Uint8Array): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt32BE(0xffffffff, 0);
  h.writeBigUInt64BE(BigInt(body.length), 4);
  return Buffer.concat([h, body]);
}

function short(body: Uint8Array): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length);
  return Buffer.concat([h, body]);
}

test('pythonConnection: frames with the u64 escape header, mixed with short ones, decode to the same bodies under any chunking', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ body: fc.uint8Array({ maxLength: 300 }), escape: fc.boolean() }), { maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (frames, cuts) => {
        const wire = Buffer.concat(frames.map((f) => (f.escape ? escaped(f.body) : short(f.body))));
        const decoder = pythonConnection().createDecoder({ maxMessageSize: LIMIT });
        const got: Buffer[] = [];
        for (const c of chunkAt(wire, cuts)) decoder.push(c, (b) => got.push(Buffer.from(b)));
        assert.is(got.length, frames.length);
        got.forEach((g, i) => assert.ok(g.equals(frames[i]!.body)));
        assert.ok(decoder.atBoundary);
      },
    ),
    { numRuns: 300 },
  );
});

test('pythonConnection: any u64 escaped length above the limit (up to 2^64 - 1) is MessageTooLargeError from the header', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: BigInt(LIMIT + 1), max: 2n ** 64n - 1n }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (len, cuts) => {
        const h = Buffer.alloc(12);
        h.writeUInt32BE(0xffffffff, 0);
        h.writeBigUInt64BE(len, 4);
        const decoder = pythonConnection().createDecoder({ maxMessageSize: LIMIT });
        try {
          for (const c of chunkAt(h, cuts)) decoder.push(c, () => assert.unreachable('no frame'));
          assert.unreachable('expected an error');
        } catch (error) {
          assert.ok(error instanceof MessageTooLargeError, String(error));
        }
      },
    ),
    { numRuns: 300 },
  );
});

type Event =
  | { kind: 'frame'; body: Uint8Array }
  | { kind: 'oversize'; size: number }
  | { kind: 'answer'; status: number; size: number };

test("tinyproto: the peer's answers to our headers, interleaved with its frames, are reported in order under any chunking", () => {
  const event: fc.Arbitrary<Event> = fc.oneof(
    fc.record({ kind: fc.constant('frame' as const), body: fc.uint8Array({ maxLength: 200 }) }),
    fc.record({ kind: fc.constant('oversize' as const), size: fc.integer({ min: LIMIT + 1, max: 0xf0ffffff }) }),
    fc.record({
      kind: fc.constant('answer' as const),
      status: fc.constantFrom(0xff, 0x00, 0xfe, 0xfd),
      size: fc.nat(1000),
    }),
  );
  fc.assert(
    fc.property(fc.array(event, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (events, cuts) => {
      // The wire, and where each answer byte sits: an answer chunk starts there, so expectAck() is
      // called just before it, as the Channel does (after our header went out, at a frame boundary).
      const parts: Buffer[] = [];
      const answerAt: number[] = [];
      let at = 0;
      for (const e of events) {
        let b: Buffer;
        if (e.kind === 'frame') b = short(e.body);
        else if (e.kind === 'oversize') {
          b = Buffer.alloc(4);
          b.writeUInt32BE(e.size);
        } else {
          answerAt.push(at);
          b = Buffer.from([e.status]);
        }
        parts.push(b);
        at += b.length;
      }
      const wire = Buffer.concat(parts);
      const replies: number[] = [];
      const acks: (number | undefined)[] = [];
      const ack: AckIO = {
        reply: (bytes) => replies.push(...bytes),
        acked: (error) => acks.push(error === undefined ? undefined : (error as MessageRefusedError).status),
      };
      const decoder = tinyproto.createDecoder({ maxMessageSize: LIMIT }, ack);
      const got: Buffer[] = [];
      const answers = events.filter((e) => e.kind === 'answer');
      let next = 0;
      for (const c of chunkAt(wire, [...cuts, ...answerAt])) {
        if (next < answers.length && c.byteOffset - wire.byteOffset === answerAt[next]) {
          decoder.expectAck!(answers[next]!.size);
          next++;
        }
        decoder.push(c, (b) => got.push(Buffer.from(b)));
      }
      const frames = events.filter((e) => e.kind === 'frame');
      assert.is(got.length, frames.length);
      got.forEach((g, i) => assert.ok(g.equals(frames[i]!.body)));
      // One answer of ours per header of the peer's: FF for a frame, 00 for one above the limit.
      assert.equal(
        replies,
        events.filter((e) => e.kind !== 'answer').map((e) => (e.kind === 'frame' ? 0xff : 0x00)),
      );
      assert.equal(
        acks,
        answers.map((a) => (a.status === 0xff ? undefined : a.status)),
      );
      assert.ok(decoder.atBoundary);
    }),
    { numRuns: 400 },
  );
});

test('tinyproto: an answer byte that is not FF, 00, FE or FD is a ProtocolError', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 0xfc }), (status) => {
      const decoder = tinyproto.createDecoder({ maxMessageSize: LIMIT }, { reply: () => {}, acked: () => {} });
      decoder.expectAck!(10);
      assert.throws(
        () => decoder.push(Buffer.from([status]), () => {}),
        (e: unknown) => e instanceof ProtocolError,
      );
    }),
    { numRuns: 100 },
  );
});

test.run();
