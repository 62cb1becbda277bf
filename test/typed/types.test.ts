// Compile-time tests: `npm test` type-checks this file, and each `@ts-expect-error` line must be
// a type error (tsc fails if one is not). At run time it only checks that the values are right.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  Protocol,
  TypedChannel,
  lengthPrefixed,
  msgpack,
  raw,
  uint32,
  type MessagesOf,
  type TypedMessage,
} from '../../channel.js';

const proto = new Protocol({ maxId: 255 })
  .define('num', 1, uint32)
  .define('str', 2, raw)
  .define('point', 3, msgpack<{ x: number; y: number }>())
  .define('any', 4);

type Msg = TypedMessage<MessagesOf<typeof proto>>;

/** Asserts at run time that `m` is the message `name`, and narrows its type to it for the compiler. */
function assertName<N extends Msg['name']>(m: Msg, name: N): asserts m is Extract<Msg, { name: N }> {
  assert.is(m.name, name);
}

test('send/recv/on are typed from the definitions', async () => {
  const [a, b] = Channel.pair({ framing: lengthPrefixed({ lengthSize: 2, typeSize: 1 }) });
  const ta = new TypedChannel(proto, a);
  const tb = new TypedChannel(proto, b);

  await ta.send('num', 1);
  await ta.send('str', Buffer.from('x'));
  await ta.send('point', { x: 1, y: 2 });
  await ta.send('any', { whatever: [1, 'two'] });
  // @ts-expect-error 'num' carries numbers
  void ta.send('num', 'x').catch(() => {});
  // @ts-expect-error 'str' carries bytes
  void ta.send('str', 5).catch(() => {});
  // @ts-expect-error a point needs y
  void ta.send('point', { x: 1 }).catch(() => {});
  // @ts-expect-error no such message type
  void ta.send('nope', 1).catch(() => {});
  // @ts-expect-error no such message type for a handler
  assert.throws(() => tb.on('nope', () => {}));
  if (Date.now() < 0) {
    // never runs: on() would start a dispatcher that competes with the recv() calls below
    // @ts-expect-error the handler of 'num' gets a number
    tb.on('num', (n: string) => n);
  }

  const m: Msg = await tb.recv();
  assertName(m, 'num');
  const n: number = m.data;
  assert.is(n, 1);
  // @ts-expect-error data of 'num' is not a string
  const s: string = m.data;
  void s;
  const p: Msg = await tb.recv();
  assertName(p, 'str');
  const bytes: Uint8Array = p.data;
  assert.is(Buffer.from(bytes).toString(), 'x');
  const q: Msg = await tb.recv();
  assertName(q, 'point');
  assert.equal(q.data, { x: 1, y: 2 });
  assert.is(q.data.x + q.data.y, 3);
  const r: Msg = await tb.recv();
  assertName(r, 'any');
  assert.equal(r.data, { whatever: [1, 'two'] });
  assert.is(proto.name(1), 'num');
  // @ts-expect-error lookups by name only accept defined names
  assert.throws(() => proto.id('nope'));
  await ta.close();
  await tb.closed;
});

test('an empty protocol sends nothing', () => {
  const empty = new Protocol();
  const [a, b] = Channel.pair({ framing: lengthPrefixed({ lengthSize: 2, typeSize: 1 }) });
  const t = new TypedChannel(empty, a);
  // @ts-expect-error no types defined
  void t.send('x', 1).catch(() => {});
  a.destroy();
  b.destroy();
});

test.run();
