/**
 * Server.broadcast(): one message to every connection, with backpressure, and a policy for a
 * connection that does not keep up (`slowConsumer`). What broadcast remembers about a connection
 * (sends not yet taken, whether its queue refused one) is held here, keyed by the connection, and
 * is nobody else's to read or write.
 */
import { DEFAULT_MAX_QUEUED_BYTES } from '../core/options.js';
import type { Channel } from '../core/channel.js';
import {
  ChannelClosedError,
  MessageRefusedError,
  SendQueueFullError,
  SlowConsumerError,
  TimeoutError,
} from '../errors.js';
import type { MessageMap, Protocol } from '../typed/protocol.js';
import { packMessage, type TypedChannel } from '../typed/typedChannel.js';
import { noop, raceTimeout } from '../util.js';
import { checkOneOf, checkTimeout } from '../validate.js';
import type { Outgoing } from './shared.js';

/** What broadcast() does with a connection that does not keep up: see ServerOptions.slowConsumer. */
export type SlowConsumerPolicy = 'close' | 'drop' | 'wait';

/** Default `broadcastTimeout` with `slowConsumer` 'close' or 'drop'. */
export const DEFAULT_BROADCAST_TIMEOUT = 100;
/** Default `broadcastTimeout` with `slowConsumer: 'wait'`. */
export const DEFAULT_BROADCAST_WAIT_TIMEOUT = 10_000;

/** What broadcast needs of a Server's Connection. */
export interface BroadcastTarget<M extends MessageMap> {
  readonly channel: Channel;
  readonly typed: TypedChannel<M> | undefined;
  readonly isOpen: boolean;
  send(...args: Outgoing<M>): Promise<void>;
  destroy(error?: Error): void;
  /** A message broadcast skipped for it (`slowConsumer: 'drop'`). */
  countDropped(): void;
}

/** The options of a Server that broadcast reads. */
export interface BroadcastOptions<M extends MessageMap> {
  slowConsumer?: SlowConsumerPolicy;
  broadcastTimeout?: number;
  /** A connection's queue bound (its channels' `maxQueuedBytes`). */
  maxQueuedBytes?: number;
  protocol?: Protocol<M>;
}

/** What broadcast remembers about one connection between broadcasts. */
interface ConnectionState {
  /** Sends to it not yet taken by its transport. */
  pending: number;
  /** Its queue refused a broadcast (maxQueuedBytes); cleared once it has drained to half. */
  full: boolean;
}

// States of one connection's part in a broadcast.
const PENDING = 0;
const TAKEN = 1;
const FAILED = 2;

interface BroadcastEntry<M extends MessageMap> {
  conn: BroadcastTarget<M>;
  state: number;
  error: unknown;
  /** Settles (never rejects) once the send is taken or has failed. */
  settled: Promise<void>;
  /** Whether this broadcast waits for it. */
  wait: boolean;
}

/** A send failure that is that connection's business (it closed, is full, or its peer refused), not the message's. */
function isConnectionFailure(error: unknown): boolean {
  return (
    error instanceof ChannelClosedError ||
    error instanceof SendQueueFullError ||
    error instanceof SlowConsumerError ||
    error instanceof MessageRefusedError ||
    error instanceof TimeoutError
  );
}

/** One Server's broadcasts: its policy, its timeout, and what it remembers of each connection. */
export class Broadcaster<M extends MessageMap> {
  readonly #policy: SlowConsumerPolicy;
  readonly #timeout: number;
  readonly #maxQueued: number;
  readonly #protocol: Protocol<M> | undefined;
  readonly #states = new WeakMap<BroadcastTarget<M>, ConnectionState>();

  /** Checks `slowConsumer` and `broadcastTimeout` (a bad one throws TypeError or RangeError). */
  constructor(options: BroadcastOptions<M>) {
    const policy = checkOneOf('slowConsumer', options.slowConsumer ?? 'close', ['close', 'drop', 'wait'] as const);
    this.#policy = policy;
    this.#timeout =
      checkTimeout('broadcastTimeout', options.broadcastTimeout) ??
      (policy === 'wait' ? DEFAULT_BROADCAST_WAIT_TIMEOUT : DEFAULT_BROADCAST_TIMEOUT);
    this.#maxQueued = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.#protocol = options.protocol;
  }

  #stateOf(conn: BroadcastTarget<M>): ConnectionState {
    let state = this.#states.get(conn);
    if (state === undefined) {
      state = { pending: 0, full: false };
      this.#states.set(conn, state);
    }
    return state;
  }

  /** Send `args` to each open connection of `connections`: see Server.broadcast(). */
  async broadcast(connections: Iterable<BroadcastTarget<M>>, args: Outgoing<M>): Promise<number> {
    const policy = this.#policy;
    const protocol = this.#protocol;
    // Typed: packed once for every connection (a bad name or value rejects here, before any send).
    const packed = protocol === undefined ? undefined : packMessage(protocol, args[0] as string, args[1]);
    const entries: BroadcastEntry<M>[] = [];
    for (const conn of connections) {
      if (!conn.isOpen) continue;
      const state = this.#stateOf(conn);
      if (state.full) {
        // Full once: skipped until it has drained to half the bound (no refusal, no error, per message).
        const queued = conn.channel.queuedBytes;
        if (queued > this.#maxQueued / 2) {
          this.#slow(conn, queued, policy === 'drop' ? 'drop' : 'close');
          continue;
        }
        state.full = false;
      }
      // With 'close' and 'drop', a connection still holding an earlier broadcast is not waited for again.
      const wait = policy === 'wait' || state.pending === 0;
      const entry: BroadcastEntry<M> = { conn, state: PENDING, error: undefined, settled: undefined!, wait };
      state.pending++;
      const sent =
        packed !== undefined && conn.typed !== undefined ? conn.typed.sendPacked(packed) : conn.send(...args);
      entry.settled = sent.then(
        () => {
          state.pending--;
          entry.state = TAKEN;
        },
        (error: unknown) => {
          state.pending--;
          entry.state = FAILED;
          entry.error = error;
          if (error instanceof SendQueueFullError) {
            state.full = true;
            this.#slow(conn, conn.channel.queuedBytes, policy === 'drop' ? 'drop' : 'close');
          }
        },
      );
      entries.push(entry);
    }
    // One turn of the microtask queue settles every send that was taken or refused at once.
    await Promise.resolve();
    const waiting = entries.filter((e) => e.wait && e.state === PENDING);
    if (waiting.length > 0) {
      await raceTimeout(Promise.all(waiting.map((e) => e.settled)), this.#timeout, noop);
      if (policy === 'wait') {
        for (const e of waiting) {
          if (e.state !== PENDING) continue;
          e.state = FAILED;
          e.error = new SlowConsumerError(
            `connection closed: it did not take a broadcast message within ${this.#timeout} ms (slowConsumer 'wait')`,
            e.conn.channel.queuedBytes,
          );
          e.conn.destroy(e.error as Error);
        }
      }
    }
    let n = 0;
    for (const e of entries) {
      if (e.state !== FAILED) n++;
      else if (!isConnectionFailure(e.error)) throw e.error;
    }
    return n;
  }

  /** A connection whose queue is full: skip it for this message, or close it. */
  #slow(conn: BroadcastTarget<M>, queued: number, action: 'drop' | 'close'): void {
    if (action === 'drop') {
      conn.countDropped();
      return;
    }
    if (!conn.isOpen) return;
    conn.destroy(
      new SlowConsumerError(
        `connection closed: it did not keep up with broadcast() (${queued} bytes wait to be written, maxQueuedBytes ${this.#maxQueued})`,
        queued,
      ),
    );
  }
}
