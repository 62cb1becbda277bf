/**
 * A packetmq session over a Channel: packetmq's handshake (init, pubids, finish), id adaptation
 * on the adaptive side, softquit with a dotted reason, and packetmq's limits. Wire-compatible with
 * a real packetmq peer (Python 2, Twisted Int32StringReceiver, u-msgpack). See docs/typed.md
 * (the packetmq wire format, byte by byte).
 *
 * Frames: `[u32 BE length of id+payload][u16 BE packet id][msgpack payload]`, which is
 * `packetmqFraming`. Ids 0..3 are packetmq's own; user ids are 16..65535.
 */
import {
  DEFAULT_CLOSE_TIMEOUT,
  type ChannelOptions,
  type CloseOptions,
  type Frame,
  type RecvOptions,
} from '../core/options.js';
import { ChannelClosedError, HandshakeError, MessageTooLargeError, ProtocolError, TimeoutError } from '../errors.js';
import { lengthPrefixed } from '../framing/lengthPrefixed.js';
import type { Framing } from '../framing/types.js';
import { noop, raceTimeout } from '../util.js';
import { checkTimeout } from '../validate.js';
import { msgpackCodec } from './codec.js';
import { Protocol, type MessageDefinition, type MessageMap } from './protocol.js';
import { TypedChannel, handled, type FrameTransport } from './typedChannel.js';

/** packetmq's PROTOCOL_VERSION. */
export const PACKETMQ_VERSION = 1;
/** Twisted Int32StringReceiver.MAX_LENGTH: the largest id+payload a packetmq peer accepts (it drops the connection above). */
export const PACKETMQ_MAX_LENGTH = 99_999;
/** Smallest and largest user packet id (packetmq's MIN_PACKET_ID; its MAX_PACKET_ID 2**16 does not fit its own u16 field). */
export const PACKETMQ_MIN_ID = 16;
export const PACKETMQ_MAX_ID = 65_535;
/** packetmq's reserved packets: name -> id. */
export const PACKETMQ_RESERVED = {
  'packetmq:handshake_init': 0,
  'packetmq:softquit': 1,
  'packetmq:handshake_pubids': 2,
  'packetmq:handshake_finish': 3,
} as const;
/** The reserved names, as data: `name in PACKETMQ_RESERVED` would also match Object.prototype's (`constructor`, `toString`). */
const RESERVED_NAMES: ReadonlySet<string> = new Set(Object.keys(PACKETMQ_RESERVED));
const INIT = 0;
const SOFTQUIT = 1;
const PUBIDS = 2;
const FINISH = 3;
/** Default time the handshake may take. */
export const DEFAULT_PACKETMQ_HANDSHAKE_TIMEOUT = 10_000;

/** The packetmq wire format: `[u32 BE len of id+payload][u16 BE id][payload]`. */
export const packetmqFraming: Framing = lengthPrefixed({
  name: 'packetmq',
  lengthSize: 4,
  typeSize: 2,
  lengthAdjustment: 2,
});

/**
 * Channel options for packetmq: its framing, and a receive limit matching Twisted's MAX_LENGTH
 * (`maxLength` counts the 2-byte id, as Twisted does; the Channel's limit counts the payload).
 * @example
 * const ch = await Channel.connect('127.0.0.1', 12345, packetmqChannelOptions());
 */
export function packetmqChannelOptions(
  maxLength: number = PACKETMQ_MAX_LENGTH,
): Pick<ChannelOptions, 'framing' | 'maxMessageSize'> {
  if (!Number.isInteger(maxLength) || maxLength < 2)
    throw new RangeError(`Expected \`maxLength\` to be an integer >= 2, got ${String(maxLength)}`);
  return { framing: packetmqFraming, maxMessageSize: maxLength - 2 };
}

/** A Protocol for packetmq user packets: ids 16..65535, msgpack payloads by default. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- the empty message map: define() adds to it
export function packetmqProtocol(): Protocol<{}> {
  return new Protocol({ minId: PACKETMQ_MIN_ID, maxId: PACKETMQ_MAX_ID });
}

/** Options of a packetmq session. */
export interface PacketmqSessionOptions {
  /**
   * packetmq's `adaptPacketIds`: the adaptive side takes the peer's name->id map. Exactly one
   * side must be adaptive (packetmq: usually the client); both the same ends the session with
   * softquit `reason.sameadaptivepolicy`.
   */
  adaptive: boolean;
  /**
   * Largest id+payload sent or accepted, in bytes, like Twisted's MAX_LENGTH (the 2-byte id counts).
   * A larger send() rejects with MessageTooLargeError before writing; a larger received packet
   * ends the session with MessageTooLargeError, as packetmq drops the connection. Give the
   * Channel the same limit with packetmqChannelOptions() so it is enforced before allocation.
   * @default 99999
   */
  maxMessageSize?: number;
  /**
   * Milliseconds the handshake may take; then the channel is destroyed and `ready` rejects with
   * TimeoutError. `0` or `Infinity`: no limit.
   * @default 10000
   */
  handshakeTimeout?: number;
  /** Called for each application packet that arrived before the handshake finished; packetmq drops those, so do we. */
  onDropped?: (frame: Frame) => void;
}

/** What a session has counted, on top of the typed channel's stats. */
export interface PacketmqStats {
  /** Application packets dropped because they came before the handshake finished. */
  droppedBeforeHandshake: number;
  /** Handshake packets ignored because they came in the wrong state (as packetmq ignores them). */
  ignoredControl: number;
}

/** Session states, packetmq's names. */
type State = 'connMade' | 'idcheck' | 'active' | 'softquitted';

function toText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** The FrameTransport between the typed channel and the Channel: runs the handshake, hides control packets, maps ids. */
class PacketmqTransport implements FrameTransport {
  readonly #channel: FrameTransport & { readonly framing: Framing };
  readonly #protocol: Protocol<MessageMap>;
  readonly #adaptive: boolean;
  readonly #max: number;
  readonly #onDropped: ((frame: Frame) => void) | undefined;
  readonly stats: PacketmqStats = { droppedBeforeHandshake: 0, ignoredControl: 0 };
  readonly ready: Promise<void>;
  state: State = 'connMade';
  /** The softquit reason, sent or received, and by whom. */
  quitReason: string | undefined;
  quitBy: 'local' | 'peer' | undefined;
  /** True once the peer's finish arrived. */
  peerFinished = false;
  /** name -> id on the wire (the Protocol's ids, or the peer's after adaptation). */
  readonly #wireByName = new Map<string, number>();
  /** wire id -> definition. */
  readonly #defByWire = new Map<number, MessageDefinition>();
  /** Serialises recvFrame() so control packets handled in between do not reorder application packets. */
  #recvTail: Promise<unknown> = Promise.resolve();

  constructor(
    channel: FrameTransport & { readonly framing: Framing },
    protocol: Protocol<MessageMap>,
    options: PacketmqSessionOptions,
  ) {
    if (typeof options?.adaptive !== 'boolean') {
      throw new TypeError(`Expected \`adaptive\` to be a boolean, got ${String(options?.adaptive)}`);
    }
    const max = options.maxMessageSize ?? PACKETMQ_MAX_LENGTH;
    if (!Number.isInteger(max) || max < 2)
      throw new RangeError(`Expected \`maxMessageSize\` to be an integer >= 2, got ${String(max)}`);
    const timeout = checkTimeout('handshakeTimeout', options.handshakeTimeout) ?? DEFAULT_PACKETMQ_HANDSHAKE_TIMEOUT;
    if (!channel.framing.hasType || channel.framing.maxType < PACKETMQ_MAX_ID) {
      throw new TypeError(
        `Expected the channel to use packetmqFraming (a 2-byte type field), got ${channel.framing.name}`,
      );
    }
    for (const def of protocol) {
      if (def.id < PACKETMQ_MIN_ID || def.id > PACKETMQ_MAX_ID || RESERVED_NAMES.has(def.name)) {
        throw new RangeError(
          `Expected packetmq packet '${def.name}' to have an id from ${PACKETMQ_MIN_ID} to ${PACKETMQ_MAX_ID} and a non-reserved name, got ${def.id}`,
        );
      }
      this.#wireByName.set(def.name, def.id);
      this.#defByWire.set(def.id, def);
    }
    this.#channel = channel;
    this.#protocol = protocol;
    this.#adaptive = options.adaptive;
    this.#max = max;
    this.#onDropped = options.onDropped;
    this.ready = this.#handshake(timeout);
    this.ready.catch(() => {});
  }

  get framing(): Framing {
    return this.#channel.framing;
  }

  get closed(): Promise<Error | undefined> {
    return this.#channel.closed;
  }

  /** The name -> id map in use on the wire. */
  get wireIds(): ReadonlyMap<string, number> {
    return this.#wireByName;
  }

  fromWire(id: number): MessageDefinition | undefined {
    return this.#defByWire.get(id);
  }

  #closedError(cause?: unknown): ChannelClosedError {
    const reason = this.quitReason;
    const message = this.quitBy === 'peer' ? `peer quit: ${reason}` : `session quit: ${reason}`;
    return new ChannelClosedError(message, { reason, ...(cause !== undefined ? { cause } : {}) });
  }

  async send(data: Uint8Array, options: { type: number; signal?: AbortSignal | undefined }): Promise<void> {
    if (data.length + 2 > this.#max) throw new MessageTooLargeError(data.length + 2, this.#max, 'send');
    if (this.state !== 'active') await this.ready;
    if (this.state === 'softquitted') throw this.#closedError();
    const def = this.#protocol.get(options.type);
    const wire = def === undefined ? undefined : this.#wireByName.get(def.name);
    if (wire === undefined) throw new RangeError(`packet id ${options.type} has no id on this session`);
    return this.#channel.send(data, { type: wire, signal: options.signal });
  }

  recvFrame(options?: RecvOptions): Promise<Frame> {
    const next = this.#recvTail.then(() => this.#recvOne(options));
    this.#recvTail = next.catch(() => {});
    return next;
  }

  async #recvOne(options: RecvOptions | undefined): Promise<Frame> {
    if (this.state !== 'active') await this.ready;
    for (;;) {
      if (this.state === 'softquitted') throw this.#closedError();
      let frame: Frame;
      try {
        frame = await this.#channel.recvFrame(options);
      } catch (error) {
        if (this.quitReason !== undefined && error instanceof ChannelClosedError) throw this.#closedError(error);
        throw error;
      }
      this.#checkSize(frame);
      switch (frame.type) {
        case SOFTQUIT:
          throw await this.#peerQuit(frame);
        case FINISH:
          this.peerFinished = true;
          continue;
        case INIT:
        case PUBIDS:
          this.stats.ignoredControl++;
          continue;
        default:
          return frame;
      }
    }
  }

  #checkSize(frame: Frame): void {
    if (frame.data.length + 2 > this.#max) {
      const error = new MessageTooLargeError(frame.data.length + 2, this.#max, 'recv');
      this.#channel.destroy(error);
      throw error;
    }
  }

  #decodeControl(frame: Frame): unknown {
    try {
      return msgpackCodec.unpack(frame.data);
    } catch (error) {
      const e = new ProtocolError(`bad packetmq control packet ${frame.type}: ${(error as Error).message}`, {
        cause: error,
      });
      this.#channel.destroy(e);
      throw e;
    }
  }

  /** The peer sent softquit: close, and report its reason on the ChannelClosedError. */
  async #peerQuit(frame: Frame): Promise<ChannelClosedError> {
    const payload = this.#decodeControl(frame);
    this.quitReason = (isRecord(payload) ? toText(payload.reason) : undefined) ?? 'reason.unknown';
    this.quitBy = 'peer';
    this.state = 'softquitted';
    // packetmq's receiver closes the connection; recv() reports the reason now, not after the close.
    void this.#channel.close().catch(() => {});
    return this.#closedError();
  }

  #sendControl(type: number, payload: unknown): Promise<void> {
    return this.#channel.send(msgpackCodec.pack(payload), { type });
  }

  /**
   * Send softquit with `reason` and close, within `timeout` ms (0: no limit): a peer that does not
   * read would hold the softquit message, and the close behind it, for ever. Then the channel is
   * destroyed and this rejects with TimeoutError, as Channel.close({ timeout }) does. Idempotent.
   */
  softquit(reason: string, timeout: number): Promise<void> {
    if (this.state === 'softquitted') return Promise.resolve();
    this.state = 'softquitted';
    this.quitReason = reason;
    this.quitBy = 'local';
    const quit = (async () => {
      await this.#sendControl(SOFTQUIT, { reason }).catch(noop);
      await this.#channel.close({ timeout });
    })();
    return raceTimeout(quit, timeout, () => {
      const error = new TimeoutError(`softquit timed out after ${timeout} ms`);
      this.#channel.destroy(error);
      throw error;
    });
  }

  async #fail(reason: string, message: string): Promise<never> {
    await this.softquit(reason, DEFAULT_CLOSE_TIMEOUT).catch(noop);
    throw new HandshakeError(message, { reason });
  }

  async #handshake(timeout: number): Promise<void> {
    await raceTimeout(this.#runHandshake(), timeout, () => {
      const error = new TimeoutError(`packetmq handshake timed out after ${timeout} ms`);
      this.#channel.destroy(error);
      throw error;
    });
  }

  async #runHandshake(): Promise<void> {
    await this.#sendControl(INIT, { version: PACKETMQ_VERSION });
    for (;;) {
      let frame: Frame;
      try {
        frame = await this.#channel.recvFrame();
      } catch (error) {
        if (this.quitReason !== undefined && error instanceof ChannelClosedError) throw this.#closedError(error);
        throw error;
      }
      this.#checkSize(frame);
      switch (frame.type) {
        case INIT: {
          const payload = this.#decodeControl(frame);
          if (this.state !== 'connMade') {
            this.stats.ignoredControl++;
            break;
          }
          const version = isRecord(payload) ? payload.version : undefined;
          if (version !== PACKETMQ_VERSION) {
            await this.#fail(
              'reason.versionmismatch',
              `packetmq version mismatch: ours ${PACKETMQ_VERSION}, peer's ${String(version)}`,
            );
          }
          this.state = 'idcheck';
          await this.#sendControl(PUBIDS, {
            adapt: this.#adaptive,
            idmap: { ...PACKETMQ_RESERVED, ...Object.fromEntries(this.#wireByName) },
          });
          break;
        }
        case PUBIDS: {
          const payload = this.#decodeControl(frame);
          if (this.state !== 'idcheck') {
            this.stats.ignoredControl++;
            break;
          }
          const adapt = isRecord(payload) ? payload.adapt : undefined;
          if (typeof adapt !== 'boolean') {
            await this.#fail('reason.unknown', `packetmq pubids without a boolean "adapt": ${String(adapt)}`);
          }
          if (adapt === this.#adaptive) {
            await this.#fail(
              'reason.sameadaptivepolicy',
              `both sides have adaptive=${String(adapt)}; exactly one must be adaptive`,
            );
          }
          if (this.#adaptive) await this.#adopt((payload as Record<string, unknown>).idmap);
          await this.#sendControl(FINISH, null);
          this.state = 'active';
          return;
        }
        case FINISH:
          this.#decodeControl(frame);
          this.peerFinished = true;
          break;
        case SOFTQUIT:
          throw await this.#peerQuit(frame);
        default:
          // packetmq drops application packets of a connection that is not active yet; we count them.
          this.stats.droppedBeforeHandshake++;
          this.#onDropped?.(frame);
      }
    }
  }

  /** The adaptive side takes the peer's ids; the name sets must be equal (else softquit `reason.nonequalpackets`). */
  async #adopt(idmap: unknown): Promise<void> {
    if (!isRecord(idmap)) return this.#fail('reason.nonequalpackets', 'packetmq pubids without an idmap');
    const theirs = new Map<string, number>();
    const used = new Set<number>();
    for (const [name, id] of Object.entries(idmap)) {
      if (RESERVED_NAMES.has(name)) continue; // the reserved ids are fixed on the wire
      if (
        typeof id !== 'number' ||
        !Number.isInteger(id) ||
        id < 0 ||
        id > PACKETMQ_MAX_ID ||
        used.has(id) ||
        id <= FINISH
      ) {
        return this.#fail('reason.nonequalpackets', `packetmq idmap has a bad id for '${name}': ${String(id)}`);
      }
      used.add(id);
      theirs.set(name, id);
    }
    const ours = [...this.#wireByName.keys()];
    const missing = ours.filter((n) => !theirs.has(n));
    const extra = [...theirs.keys()].filter((n) => !this.#wireByName.has(n));
    if (missing.length > 0 || extra.length > 0) {
      return this.#fail(
        'reason.nonequalpackets',
        `packetmq packet names differ: missing on the peer [${missing.join(', ')}], unknown here [${extra.join(', ')}]`,
      );
    }
    this.#defByWire.clear();
    for (const [name, id] of theirs) {
      this.#wireByName.set(name, id);
      this.#defByWire.set(id, this.#protocol.get(name)!);
    }
  }

  close(options?: CloseOptions): Promise<void> {
    return this.#channel.close(options);
  }

  destroy(error?: Error): void {
    this.#channel.destroy(error);
  }
}

/**
 * A packetmq peer over a Channel that uses packetmqFraming. The handshake starts at once;
 * send() and recv() wait for it. A softquit from the peer ends the session: recv() rejects with a
 * ChannelClosedError whose `reason` is the peer's (e.g. `reason.sameadaptivepolicy`), and
 * `for await` ends.
 * @example
 * const proto = packetmqProtocol().define('chat:say', 17, msgpack<{ text: string }>());
 * const ch = await Channel.connect('127.0.0.1', 12345, packetmqChannelOptions());
 * const session = new PacketmqSession(proto, ch, { adaptive: true });
 * await session.ready;
 * await session.send('chat:say', { text: 'hi' });
 */
export class PacketmqSession<M extends MessageMap> extends TypedChannel<M> {
  readonly #t: PacketmqTransport;

  constructor(
    protocol: Protocol<M>,
    channel: FrameTransport & { readonly framing: Framing },
    options: PacketmqSessionOptions,
  ) {
    const t = new PacketmqTransport(channel, protocol as Protocol<MessageMap>, options);
    super(protocol, t, { ids: t });
    this.#t = t;
  }

  /** Resolves once the handshake is done; rejects with HandshakeError (we quit), ChannelClosedError with `reason` (the peer quit), TimeoutError or the channel's error. */
  get ready(): Promise<void> {
    return this.#t.ready;
  }

  /** packetmq's connection state. */
  get state(): 'connMade' | 'idcheck' | 'active' | 'softquitted' {
    return this.#t.state;
  }

  /** The softquit reason, once either side quit. */
  get quitReason(): string | undefined {
    return this.#t.quitReason;
  }

  /** Who quit: 'local' (softquit() or a failed handshake) or 'peer'. */
  get quitBy(): 'local' | 'peer' | undefined {
    return this.#t.quitBy;
  }

  /** True once the peer sent its handshake finish. */
  get peerFinished(): boolean {
    return this.#t.peerFinished;
  }

  /** The name -> id map used on the wire (the peer's ids on the adaptive side, after the handshake). */
  get wireIds(): ReadonlyMap<string, number> {
    return this.#t.wireIds;
  }

  /** Dropped and ignored packets. */
  get sessionStats(): Readonly<PacketmqStats> {
    return this.#t.stats;
  }

  /**
   * Send softquit with a dotted reason, then close gracefully. The peer gets the reason on its
   * ChannelClosedError. After `timeout` ms (0 or Infinity: no limit) the channel is destroyed and
   * this rejects with TimeoutError: a peer that never reads cannot hold it open. Marked handled
   * like send(): un-awaited, a failure cannot crash the process.
   */
  softquit(reason = 'reason.unknown', options: { timeout?: number } = {}): Promise<void> {
    if (typeof reason !== 'string' || reason.length === 0) {
      return handled(
        Promise.reject(new TypeError(`Expected \`reason\` to be a non-empty string, got ${String(reason)}`)),
      );
    }
    let timeout: number;
    try {
      timeout = checkTimeout('timeout', options.timeout) ?? DEFAULT_CLOSE_TIMEOUT;
    } catch (error) {
      return handled(Promise.reject(error));
    }
    return handled(this.#t.softquit(reason, timeout));
  }
}
