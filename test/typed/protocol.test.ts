import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Protocol,
  UnknownMessageTypeError,
  msgpack,
  msgpackCodec,
  raw,
  uint,
  uint32,
  utf8String,
} from '../../channel.js';

test('define() then lookups in every direction (auto-types)', () => {
  const proto = new Protocol().define('num', 1, uint32).define('str', 2, raw).define('obj', 3);
  assert.is(proto.size, 3);
  assert.is(proto.id('num'), 1);
  assert.is(proto.id(2), 2);
  assert.is(proto.name(1), 'num');
  assert.is(proto.name('str'), 'str');
  const def = proto.definition('obj');
  assert.equal([def.name, def.id], ['obj', 3]);
  assert.is(def.codec, msgpackCodec, 'msgpack is the default codec');
  assert.is(proto.definition(3), def);
  assert.is(proto.id(def), 3);
  assert.is(proto.name(def), 'obj');
  assert.ok(proto.has('num') && proto.has(2) && proto.has(def));
  assert.not.ok(proto.has('nope') || proto.has(9));
  assert.is(proto.get(9), undefined);
  assert.equal(proto.idMap(), { num: 1, str: 2, obj: 3 });
  assert.equal(
    [...proto].map((d) => d.name),
    ['num', 'str', 'obj'],
  );
});

test('lookups of undefined types throw UnknownMessageTypeError', () => {
  const proto = new Protocol().define('a', 1);
  assert.throws(
    () => proto.id(7),
    (e: unknown) => e instanceof UnknownMessageTypeError && e.code === 'ERR_UNKNOWN_TYPE' && e.id === 7,
  );
  assert.throws(
    () => proto.name('zz' as 'a'),
    (e: unknown) => e instanceof UnknownMessageTypeError && /'zz'/.test(e.message),
  );
  // a definition of another protocol with the same name but another id is not this one's
  const other = new Protocol().define('a', 2).definition('a');
  assert.not.ok(proto.has(other));
});

test('ids are validated for type, range and uniqueness', () => {
  const proto = new Protocol({ minId: 16, maxId: 65535 }).define('app:a', 16);
  assert.throws(
    () => proto.define('app:b', 15),
    (e: unknown) => e instanceof RangeError && /from 16 to 65535, got 15/.test(e.message),
  );
  assert.throws(
    () => proto.define('app:b', 65536),
    (e: unknown) => e instanceof RangeError && /got 65536/.test(e.message),
  );
  assert.throws(
    () => proto.define('app:b', 1.5),
    (e: unknown) => e instanceof TypeError && /integer, got 1.5/.test(e.message),
  );
  assert.throws(
    () => proto.define('app:b', '17' as unknown as number),
    (e: unknown) => e instanceof TypeError,
  );
  assert.throws(
    () => proto.define('app:b', 16),
    (e: unknown) => e instanceof RangeError && /already used by 'app:a'/.test(e.message),
  );
  assert.throws(
    () => proto.define('app:a', 17),
    (e: unknown) => e instanceof RangeError && /'app:a' is already defined/.test(e.message),
  );
  assert.throws(
    () => proto.define('', 17),
    (e: unknown) => e instanceof TypeError && /non-empty string/.test(e.message),
  );
  assert.throws(
    () => proto.define(42 as unknown as string, 17),
    (e: unknown) => e instanceof TypeError,
  );
  assert.throws(
    () => proto.define('app:c', 17, { pack: () => new Uint8Array() } as never),
    (e: unknown) => e instanceof TypeError && /pack\(\) and unpack\(\)/.test(e.message),
  );
  assert.is(proto.size, 1, 'failed define() calls add nothing');
  assert.throws(
    () => new Protocol({ minId: 10, maxId: 5 }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => new Protocol({ maxId: -1 }),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => new Protocol({ maxId: 2 ** 32 }),
    (e: unknown) => e instanceof RangeError,
  );
});

test('define() returns a new protocol: the receiver is unchanged, two protocols from one base are independent', () => {
  const base = new Protocol({ minId: 16, maxId: 65535 }).define('chat:say', 16, msgpack<{ text: string }>());
  const chat = base.define('chat:join', 17, msgpack<string>());
  const admin = base.define('admin:kick', 17, utf8String); // the same id as chat:join: fine, another protocol
  assert.is.not(chat, base);
  assert.equal(base.idMap(), { 'chat:say': 16 }, 'the base is unchanged');
  assert.equal(chat.idMap(), { 'chat:say': 16, 'chat:join': 17 });
  assert.equal(admin.idMap(), { 'chat:say': 16, 'admin:kick': 17 });
  assert.not.ok(chat.has('admin:kick') || base.has('chat:join'));
  assert.is(chat.definition('chat:say'), base.definition('chat:say'), 'definitions are shared (they are frozen)');
  assert.equal([chat.minId, chat.maxId], [16, 65535], 'the limits are kept');
  base.define('dropped', 18); // a dropped result defines nothing
  assert.is(base.size, 1);
  // TypeScript still learns each name through the chain
  const name: 'chat:say' | 'chat:join' = chat.name(17);
  assert.is(name, 'chat:join');
});

test('NumMsg and StrMsg in a few lines, like ltprotocol', () => {
  const lt = new Protocol({ maxId: 255 }).define('NumMsg', 1, uint32).define('StrMsg', 2, raw);
  assert.equal([...lt.definition('NumMsg').codec.pack(200 as never)], [0, 0, 0, 0xc8]);
  assert.is(lt.definition('NumMsg').codec.unpack(Buffer.from([0, 0, 0, 7])), 7);
  assert.throws(
    () => uint32.pack(-1),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => uint32.pack(2 ** 32),
    (e: unknown) => e instanceof RangeError,
  );
  assert.throws(
    () => uint32.unpack(Buffer.from([1, 2, 3])),
    (e: unknown) => e instanceof RangeError && /4-byte/.test(e.message),
  );
  assert.is(uint(2).unpack(Buffer.from([1, 2])), 0x102);
  assert.is(utf8String.unpack(Buffer.from(utf8String.pack('héllo'))), 'héllo');
});

test('msgpack codec accepts bin map keys (Python 2 packers) and optionally bin strings', () => {
  // {"version": 1} with the key as bin 8, as packetmq on Python 2 sends it
  const body = Buffer.from('81c40776657273696f6e01', 'hex');
  assert.equal(msgpackCodec.unpack(body), { version: 1 });
  const binValue = Buffer.from('81c406726561736f6ec409726561736f6e2e7878', 'hex'); // {b"reason": b"reason.xx"}
  const plain = msgpackCodec.unpack(binValue) as { reason: Uint8Array };
  assert.ok(plain.reason instanceof Uint8Array);
  assert.equal(msgpack({ binAsString: true }).unpack(binValue), { reason: 'reason.xx' });
  assert.equal(Buffer.from(msgpackCodec.pack({ version: 1 })).toString('hex'), '81a776657273696f6e01');
});

test.run();
