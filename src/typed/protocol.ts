/**
 * The Protocol registry: message types by name and by type id, each with its payload codec.
 * It merges packetmq's PacketRegistry (names, numeric ids, "auto-types" lookups in every
 * direction) and ltprotocol's list of LTMessage classes (per-type pack/unpack). It is pure data:
 * a typed channel or a packetmq session reads it, nothing here touches a connection.
 */
import { UnknownMessageTypeError } from '../errors.js';
import { checkInt } from '../validate.js';
import { msgpackCodec, type Codec } from './codec.js';

/** What a Protocol knows at compile time: message name -> data type. */
export type MessageMap = Record<string, unknown>;

/** One message type. */
export interface MessageDefinition<N extends string = string, T = unknown> {
  readonly name: N;
  /** The type id on the wire. */
  readonly id: number;
  readonly codec: Codec<T>;
}

/** A name, a type id or a definition: every lookup accepts any of them (packetmq's auto-types). */
export type MessageRef<M extends MessageMap = MessageMap> = (keyof M & string) | number | MessageDefinition;

/** A received message: the union over the protocol's types, so a switch on `name` narrows `data`. */
export type TypedMessage<M extends MessageMap> = {
  [N in keyof M & string]: { name: N; id: number; data: M[N] };
}[keyof M & string];

/** The message map of a Protocol type: `MessagesOf<typeof proto>`. */
export type MessagesOf<P> = P extends Protocol<infer M> ? M : never;

/** Options of a Protocol. */
export interface ProtocolOptions {
  /**
   * Smallest type id define() accepts.
   * @default 0
   */
  minId?: number;
  /**
   * Largest type id define() accepts. A typed channel also checks the ids against its framing's type field.
   * @default 4294967295 (a u32 type field)
   */
  maxId?: number;
}

const MAX_U32 = 0xffff_ffff;

/** Is `codec` usable: an object with pack() and unpack()? */
function isCodec(codec: unknown): codec is Codec<unknown> {
  return (
    typeof codec === 'object' &&
    codec !== null &&
    typeof (codec as Codec<unknown>).pack === 'function' &&
    typeof (codec as Codec<unknown>).unpack === 'function'
  );
}

/**
 * A registry of message types, immutable: define() returns a new Protocol with one more type and
 * leaves the receiver as it was. Chain define() calls (or use each result) so TypeScript learns each type:
 * @example
 * const proto = new Protocol({ maxId: 255 })
 *   .define('num', 1, uint32)      // ltprotocol's NumMsg: struct '>I'
 *   .define('str', 2, raw);        // ltprotocol's StrMsg: the bytes as they are
 * proto.id('num');  // 1
 * proto.name(2);    // 'str'
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- the empty message map: define() adds to it
export class Protocol<M extends MessageMap = {}> implements Iterable<MessageDefinition> {
  /** Smallest type id define() accepts. */
  readonly minId: number;
  /** Largest type id define() accepts. */
  readonly maxId: number;
  readonly #byName = new Map<string, MessageDefinition>();
  readonly #byId = new Map<number, MessageDefinition>();

  constructor(options: ProtocolOptions = {}) {
    this.minId = checkInt('minId', options.minId ?? 0, 0, MAX_U32);
    this.maxId = checkInt('maxId', options.maxId ?? MAX_U32, 0, MAX_U32);
    if (this.minId > this.maxId) {
      throw new RangeError(`Expected \`minId\` (${this.minId}) to be at most \`maxId\` (${this.maxId})`);
    }
  }

  /**
   * A new protocol with this one's message types plus `name`, typed with it; this protocol is left
   * unchanged, so protocols built from one base stay independent. Throws TypeError for a name that
   * is not a non-empty string or a codec without pack()/unpack(), RangeError for an id outside
   * minId..maxId or a name or id already defined.
   * @param codec How the data becomes the body. @default msgpack
   */
  define<N extends string, T = unknown>(name: N, id: number, codec?: Codec<T>): Protocol<M & { [K in N]: T }> {
    return this.#with(name, id, codec, false);
  }

  /** define() without the minId check: for a session's reserved types (packetmq's ids 0..3). Also returns a new protocol. */
  defineReserved<N extends string, T = unknown>(name: N, id: number, codec?: Codec<T>): Protocol<M & { [K in N]: T }> {
    return this.#with(name, id, codec, true);
  }

  /** A copy of this protocol (same limits, same definitions, which are frozen) with one more type. */
  #with<R extends MessageMap>(name: unknown, id: unknown, codec: unknown, reserved: boolean): Protocol<R> {
    const next = new Protocol<R>({ minId: this.minId, maxId: this.maxId });
    for (const def of this.#byName.values()) {
      next.#byName.set(def.name, def);
      next.#byId.set(def.id, def);
    }
    next.#add(name, id, codec, reserved);
    return next;
  }

  #add(name: unknown, id: unknown, codec: unknown, reserved: boolean): void {
    if (typeof name !== 'string' || name.length === 0) {
      throw new TypeError(
        `Expected the message name to be a non-empty string, got ${typeof name === 'string' ? "''" : String(name)}`,
      );
    }
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      throw new TypeError(`Expected the type id of '${name}' to be an integer, got ${String(id)}`);
    }
    const min = reserved ? 0 : this.minId;
    if (id < min || id > this.maxId) {
      throw new RangeError(
        `Expected the type id of '${name}' to be an integer from ${min} to ${this.maxId}, got ${id}`,
      );
    }
    if (codec !== undefined && !isCodec(codec)) {
      throw new TypeError(`Expected the codec of '${name}' to have pack() and unpack(), got ${String(codec)}`);
    }
    const byName = this.#byName.get(name);
    if (byName !== undefined) throw new RangeError(`Message name '${name}' is already defined (type id ${byName.id})`);
    const byId = this.#byId.get(id);
    if (byId !== undefined) throw new RangeError(`Type id ${id} of '${name}' is already used by '${byId.name}'`);
    const def: MessageDefinition = Object.freeze({
      name,
      id,
      codec: (codec as Codec<unknown> | undefined) ?? msgpackCodec,
    });
    this.#byName.set(name, def);
    this.#byId.set(id, def);
  }

  /** The definition of a name, id or definition; undefined when this protocol has none. */
  get(ref: MessageRef<M>): MessageDefinition | undefined;
  get(ref: string | number | MessageDefinition): MessageDefinition | undefined;
  get(ref: string | number | MessageDefinition): MessageDefinition | undefined {
    if (typeof ref === 'string') return this.#byName.get(ref);
    if (typeof ref === 'number') return this.#byId.get(ref);
    if (typeof ref === 'object' && ref !== null) {
      const def = this.#byName.get(ref.name);
      return def === ref || (def !== undefined && def.id === ref.id) ? def : undefined;
    }
    return undefined;
  }

  /** True when the name, id or definition is defined here. */
  has(ref: string | number | MessageDefinition): boolean {
    return this.get(ref) !== undefined;
  }

  /** The definition (packetmq's packetObj); throws UnknownMessageTypeError when undefined. */
  definition(ref: MessageRef<M>): MessageDefinition {
    const def = this.get(ref);
    if (def === undefined) throw unknown(ref);
    return def;
  }

  /** The type id (packetmq's packetInt); throws UnknownMessageTypeError when undefined. */
  id(ref: MessageRef<M>): number {
    return this.definition(ref).id;
  }

  /** The name (packetmq's packetStr); throws UnknownMessageTypeError when undefined. */
  name(ref: MessageRef<M>): keyof M & string {
    return this.definition(ref).name as keyof M & string;
  }

  /** Number of message types. */
  get size(): number {
    return this.#byName.size;
  }

  /** Every definition, in definition order. */
  [Symbol.iterator](): IterableIterator<MessageDefinition> {
    return this.#byName.values();
  }

  /** name -> id of every type, in definition order (what packetmq's pubids carries). */
  idMap(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const def of this.#byName.values()) out[def.name] = def.id;
    return out;
  }
}

function unknown(ref: unknown): UnknownMessageTypeError {
  if (typeof ref === 'number') return new UnknownMessageTypeError(ref);
  const name = typeof ref === 'object' && ref !== null ? (ref as MessageDefinition).name : String(ref);
  return new UnknownMessageTypeError(-1, { message: `unknown message type '${name}'` });
}
