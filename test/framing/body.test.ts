/**
 * The body half every decoder shares (src/framing/body.ts), through each framing's decoder: a body
 * within the chunk is a view of it, one that spans chunks a copy; `limits.reserve` (a listener's
 * memory budget) is asked for bodies of 64 KiB and up, and when it refuses, the decoder stops right
 * after the header, consumes nothing more until it allows, and goes on from there; `atBoundary`
 * and `offset` say where the stream stands.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Framing, int32, lengthPrefixed, msg, pythonConnection, tinyproto } from '../../channel.js';
import { encode } from './codec.js';

const framings: [string, Framing][] = [
  ['msg', msg],
  ['int32', int32],
  ['lengthPrefixed with a type', lengthPrefixed({ lengthSize: 4, typeSize: 1, littleEndian: true })],
  ['pythonConnection', pythonConnection()],
  ['tinyproto', tinyproto],
];

const BUDGET_MIN = 64 * 1024;

/** A decoder whose reserve() is answered by `allow` and recorded in `calls`. */
function budgeted(framing: Framing) {
  const calls: [number, boolean][] = [];
  const state = { allow: false };
  const frames: Buffer[] = [];
  const d = framing.createDecoder({
    maxMessageSize: 1 << 20,
    reserve: (length, within) => {
      calls.push([length, within]);
      return state.allow || within; // a body already in the chunk is counted, never refused
    },
  });
  const push = (chunk: Buffer): void => d.push(chunk, (body) => frames.push(body));
  return { d, calls, state, frames, push };
}

const big = (fill: number): Buffer => {
  const b = Buffer.alloc(BUDGET_MIN, fill);
  b.write('start');
  b.write('end', BUDGET_MIN - 3);
  return b;
};

for (const [name, framing] of framings) {
  test(`${name}: a body within the chunk is a view of it (to its last byte); one spanning chunks is a copy`, () => {
    const wire = Buffer.concat([encode(framing, 'abc'), encode(framing, 'xyz')]);
    const d = framing.createDecoder({ maxMessageSize: 100 });
    const out: Buffer[] = [];
    d.push(wire, (b) => out.push(b));
    assert.equal(out.map(String), ['abc', 'xyz']);
    wire[wire.length - 1] = 0x21; // the last byte of the chunk
    wire[encode(framing, 'abc').length - 1] = 0x21; // the last byte of 'abc'
    assert.equal(out.map(String), ['ab!', 'xy!'], 'views see the chunk');
    // Split inside the body: copied, so later changes to the chunks do not show.
    const split = encode(framing, 'hello');
    const d2 = framing.createDecoder({ maxMessageSize: 100 });
    const got: Buffer[] = [];
    const cut = split.length - 2;
    const [c1, c2] = [Buffer.from(split.subarray(0, cut)), Buffer.from(split.subarray(cut))];
    d2.push(c1, (b) => got.push(b));
    assert.is(d2.atBoundary, false);
    d2.push(c2, (b) => got.push(b));
    assert.is(d2.atBoundary, true);
    c1.fill(0x21);
    c2.fill(0x21);
    assert.equal(got.map(String), ['hello']);
  });

  test(`${name}: an empty body keeps nothing of the chunk alive; atBoundary and offset follow the stream`, () => {
    const wire = Buffer.concat([encode(framing, ''), encode(framing, 'hi')]);
    const d = framing.createDecoder({ maxMessageSize: 100 });
    const out: Buffer[] = [];
    assert.is(d.offset, 0);
    assert.is(d.atBoundary, true);
    // One byte at a time: never at a boundary inside a frame, offset counts every byte.
    const first = encode(framing, '').length;
    for (let i = 0; i < wire.length; i++) {
      d.push(wire.subarray(i, i + 1), (b) => out.push(b));
      assert.is(d.offset, i + 1);
      assert.is(d.atBoundary, i + 1 === first || i + 1 === wire.length, `after ${i + 1} bytes`);
    }
    assert.equal(out.map(String), ['', 'hi']);
    const whole: Buffer[] = [];
    const d2 = framing.createDecoder({ maxMessageSize: 100 });
    d2.push(wire, (b) => whole.push(b));
    assert.is(whole[0]!.length, 0);
    assert.is.not(whole[0]!.buffer, wire.buffer, 'the empty body is not a view of the chunk');
    assert.is(d2.offset, wire.length);
  });

  test(`${name}: reserve is asked for bodies of 64 KiB and up only, with whether the body lies in the chunk`, () => {
    const small = budgeted(framing);
    small.state.allow = true;
    small.push(
      Buffer.concat([encode(framing, Buffer.alloc(BUDGET_MIN - 1, 1)), encode(framing, 'x'), encode(framing, '')]),
    );
    assert.equal(small.calls, []);
    assert.is(small.frames.length, 3);
    const exact = budgeted(framing);
    exact.state.allow = true;
    const wire = encode(framing, big(2));
    exact.push(wire);
    assert.equal(exact.calls, [[BUDGET_MIN, true]]);
    const spanning = budgeted(framing);
    spanning.state.allow = true;
    spanning.push(wire.subarray(0, wire.length - 1));
    spanning.push(wire.subarray(wire.length - 1));
    assert.equal(spanning.calls, [[BUDGET_MIN, false]]);
    assert.equal(spanning.frames, [big(2)]);
  });

  test(`${name}: refused by reserve, a body spanning chunks waits after its header, consuming nothing, until allowed`, () => {
    const body = big(3);
    const before = encode(framing, 'before');
    const frame = encode(framing, body);
    const head = before.length + frame.length - body.length;
    const wire = Buffer.concat([before, frame, encode(framing, 'after')]);
    const b = budgeted(framing);
    const c1 = wire.subarray(0, head + 1000);
    b.push(c1);
    assert.equal(b.frames.map(String), ['before']);
    assert.is(b.d.offset, head, 'stopped right after the header');
    assert.is(b.d.atBoundary, false);
    // Pushed again while still refused: nothing more is taken.
    b.push(c1.subarray(head));
    assert.is(b.d.offset, head);
    assert.is(b.frames.length, 1);
    // Allowed: the body is allocated and filled from this chunk and the next ones.
    b.state.allow = true;
    b.push(c1.subarray(head));
    assert.is(b.d.offset, head + 1000);
    assert.is(b.frames.length, 1);
    assert.is(b.d.atBoundary, false);
    b.push(wire.subarray(head + 1000, head + 40_000));
    b.push(wire.subarray(head + 40_000));
    assert.equal(
      b.frames.map((f) => f.length),
      [6, BUDGET_MIN, 5],
    );
    assert.equal(b.frames[1], body);
    assert.is(String(b.frames[2]), 'after');
    assert.is(b.d.offset, wire.length);
    assert.is(b.d.atBoundary, true);
    assert.ok(
      b.calls.length >= 2 && b.calls.every(([length, within]) => length === BUDGET_MIN && !within),
      JSON.stringify(b.calls),
    );
  });

  test(`${name}: a refused body is asked for once per push: its header is remembered, not parsed or asked again`, () => {
    const body = big(5);
    const frame = encode(framing, body);
    const head = frame.length - body.length;
    const b = budgeted(framing);
    b.push(frame.subarray(0, head + 1000));
    assert.equal(b.calls, [[BUDGET_MIN, false]], 'one refusal, one question');
    // The Channel pushes the rest again each time memory is released: one question each time.
    b.push(frame.subarray(head, head + 1000));
    b.push(frame.subarray(head, head + 2000));
    assert.equal(b.calls, [
      [BUDGET_MIN, false],
      [BUDGET_MIN, false],
      [BUDGET_MIN, false],
    ]);
    assert.is(b.d.offset, head);
    b.state.allow = true;
    b.push(frame.subarray(head, head + 2000));
    b.push(frame.subarray(head + 2000));
    assert.is(b.calls.length, 4, 'allowed once, then filled without asking');
    assert.equal(b.frames, [body]);
    assert.is(b.d.atBoundary, true);
  });

  test(`${name}: refused by reserve, then pushed again with the whole body in the chunk: taken at once, as a view (reserve is forced)`, () => {
    const body = big(4);
    const frame = encode(framing, body);
    const head = frame.length - body.length;
    const wire = Buffer.concat([frame, encode(framing, 'after')]);
    const b = budgeted(framing);
    b.push(wire.subarray(0, head + 1000));
    assert.is(b.d.offset, head);
    assert.equal(b.frames, []);
    // What the Channel does: the held rest and the chunks after it, pushed again as one.
    const rest = Buffer.from(wire.subarray(head));
    b.push(rest);
    assert.equal(
      b.frames.map((f) => f.length),
      [BUDGET_MIN, 5],
    );
    assert.equal(b.frames[0], body);
    assert.is(b.d.offset, wire.length);
    assert.is(b.d.atBoundary, true);
    assert.equal(b.calls.at(-1), [BUDGET_MIN, true]);
    rest[0] = 0x21;
    assert.is(b.frames[0]![0], 0x21, 'a view of the chunk');
  });

  test(`${name}: bodySpace/bodyFilled: the rest of a body in progress is read into directly, mixed with pushes; null when none is due`, () => {
    const type = framing.hasType ? 7 : 0;
    const body = Buffer.from(Array.from({ length: 1000 }, (_, k) => k % 251));
    const frame = encode(framing, body, type);
    const head = frame.length - body.length;
    const next = encode(framing, 'next', type);
    const d = framing.createDecoder({ maxMessageSize: 1 << 20 });
    const out: [string, number][] = [];
    const sink = (b: Buffer, t: number): void => void out.push([b.toString('hex'), t]);
    // At a boundary, in a header, and after a body that lay in the chunk: nothing to read into.
    assert.is(d.bodySpace!(0), null, 'at a boundary');
    d.push(frame.subarray(0, head - 1), sink);
    assert.is(d.bodySpace!(0), null, 'inside a header');
    d.push(frame.subarray(head - 1, head + 10), sink);
    // 990 bytes due: given for any min up to that, exactly the unfilled rest.
    assert.is(d.bodySpace!(991), null, 'fewer bytes due than min');
    const space = d.bodySpace!(990)!;
    assert.ok(Buffer.isBuffer(space));
    assert.is(space.length, 990);
    body.copy(space, 0, 10, 410);
    d.bodyFilled!(400, sink);
    assert.is(d.offset, head + 410, 'bytes read into the body count in the offset');
    assert.is(d.atBoundary, false);
    assert.equal(out, []);
    // A push goes on where the direct read stopped.
    d.push(frame.subarray(head + 410, head + 500), sink);
    const rest = d.bodySpace!(1)!;
    assert.is(rest.length, 500);
    body.copy(rest, 0, 500);
    d.bodyFilled!(500, sink);
    assert.equal(out, [[body.toString('hex'), type]], 'emitted once complete, with its type');
    assert.is(d.offset, frame.length);
    assert.is(d.atBoundary, true);
    assert.is(d.bodySpace!(0), null, 'nothing due once complete');
    d.push(next, sink);
    assert.equal(out.at(-1), [Buffer.from('next').toString('hex'), type]);
    assert.is(d.bodySpace!(0), null, 'after a body within the chunk');
    assert.is(d.offset, frame.length + next.length);
    // Refused by reserve: nothing allocated, so nothing to read into until it is allowed.
    const b = budgeted(framing);
    const bigFrame = encode(framing, big(7));
    b.push(bigFrame.subarray(0, bigFrame.length - 100));
    assert.is(b.d.bodySpace!(0), null, 'waiting for memory');
    b.state.allow = true;
    b.push(bigFrame.subarray(b.d.offset, bigFrame.length - 100));
    const tail = b.d.bodySpace!(100)!;
    assert.is(tail.length, 100);
    bigFrame.copy(tail, 0, bigFrame.length - 100);
    b.d.bodyFilled!(100, (f) => b.frames.push(f));
    assert.equal(b.frames, [big(7)]);
    assert.is(b.d.atBoundary, true);
  });

  test(`${name}: refused by reserve, then pushed again with a chunk that ends exactly with the body: taken at once (reserve is forced)`, () => {
    const body = big(5);
    const frame = encode(framing, body);
    const head = frame.length - body.length;
    const b = budgeted(framing);
    b.push(frame.subarray(0, head + 1000));
    assert.is(b.d.offset, head);
    // The held rest is the body to its last byte and nothing more: it lies in the chunk.
    const rest = Buffer.from(frame.subarray(head));
    b.push(rest);
    assert.equal(b.frames, [body]);
    assert.is(b.d.offset, frame.length);
    assert.is(b.d.atBoundary, true);
    assert.equal(b.calls.at(-1), [BUDGET_MIN, true]);
    assert.ok(
      b.calls.slice(0, -1).every(([length, within]) => length === BUDGET_MIN && !within),
      JSON.stringify(b.calls),
    );
    rest[0] = 0x21;
    assert.is(b.frames[0]![0], 0x21, 'a view of the chunk');
  });

  test(`${name}: refused by reserve in a chunk that holds all of the body but its last byte: nothing of it taken, reserve not forced`, () => {
    const body = big(6);
    const frame = encode(framing, body);
    const head = frame.length - body.length;
    const wire = Buffer.concat([frame, encode(framing, 'after')]);
    const b = budgeted(framing);
    // Its own memory, so that nothing past its end could be read by mistake.
    const c1 = Buffer.from(wire.subarray(0, frame.length - 1));
    b.push(c1);
    assert.equal(b.frames, []);
    assert.is(b.d.offset, head, 'stopped right after the header');
    assert.is(b.d.atBoundary, false);
    const notForced = b.calls.every(([length, within]) => length === BUDGET_MIN && !within);
    assert.ok(b.calls.length > 0 && notForced, `not forced, the body is not in the chunk: ${JSON.stringify(b.calls)}`);
    // Allowed: the held rest and what came after it, pushed again as one.
    b.state.allow = true;
    b.push(Buffer.concat([c1.subarray(head), wire.subarray(frame.length - 1)]));
    assert.equal(
      b.frames.map((f) => f.length),
      [BUDGET_MIN, 5],
    );
    assert.equal(b.frames[0], body);
    assert.is(b.d.offset, wire.length);
    assert.is(b.d.atBoundary, true);
    assert.equal(b.calls.at(-1), [BUDGET_MIN, true]);
  });
}

test('bodies are Buffers in every way: own properties named like prototype ones can be set', () => {
  const d = msg.createDecoder({ maxMessageSize: 100 });
  let body: Buffer | undefined;
  d.push(encode(msg, 'abc'), (b) => (body = b));
  const plain = Buffer.from('abc') as Buffer & Record<string, unknown>;
  const view = body as Buffer & Record<string, unknown>;
  for (const b of [plain, view]) {
    b.constructor = Object;
    b.then = 1;
    assert.is(b.constructor, Object);
    assert.is(b.then, 1);
  }
  assert.ok(Buffer.isBuffer(body));
});

test.run();
