/**
 * The Client's sends across connections: a send goes to the current connection, or waits in a
 * bounded queue (`offline`, `queueLimit`) while there is none, and goes out in order after the
 * reconnect. A send the connection lost before writing it is queued again; a send taken by a
 * connection not yet established is held, and queued again if the connection ends first. Every
 * send that will never go out rejects with MessageNotSentError. This is the whole of that policy:
 * the Client only says when connections come and go.
 */
import type { Channel } from '../core/channel.js';
import { Deque } from '../core/deque.js';
import { ChannelClosedError, MessageNotSentError, MessageRefusedError } from '../errors.js';
import { handledRejection, noop } from '../util.js';
import { checkNumber } from '../validate.js';

/** Default `queueLimit`: most messages queued while disconnected. */
export const DEFAULT_QUEUE_LIMIT = 1000;

/** The Client's options that the queue reads. */
export interface OfflineQueueOptions {
  offline?: 'queue' | 'reject';
  queueLimit?: number;
  reconnect?: boolean;
  /** With a Protocol, a message is `(name, data)` and MessageNotSentError's `data` is `{ name, data }`. */
  typed: boolean;
}

/** What the queue reads of its Client's connection. */
export interface OfflineQueueHost {
  /** Hand a message to the current connection; never throws. */
  transmit(args: readonly unknown[]): Promise<void>;
  /** The current connection's channel (undefined between connections). */
  channel(): Channel | undefined;
  /** True while the Client is in state 'connected'. */
  connected(): boolean;
  /** True once the Client is closed or closing: a send is refused at once. */
  closed(): boolean;
  /** True once close() has stopped the Client: a lost send is not queued again. */
  stopping(): boolean;
}

interface Queued {
  args: readonly unknown[];
  seq: number;
  resolve(): void;
  reject(error: unknown): void;
}

/** One Client's sends: the offline queue, the sends held by a connection on probation, their numbering. */
export class OfflineQueue {
  readonly #host: OfflineQueueHost;
  readonly #rejectOffline: boolean;
  readonly #reconnect: boolean;
  readonly #typed: boolean;
  readonly #limit: number;
  readonly #queue = new Deque<Queued>();
  #seq = 0;
  /** Sends taken by the current connection while it is not established yet (see REFUSAL_WINDOW). */
  #held: Queued[] | undefined;

  /** Checks `queueLimit` and `offline` (a bad one throws TypeError or RangeError). */
  constructor(options: OfflineQueueOptions, host: OfflineQueueHost) {
    this.#limit = checkNumber('queueLimit', options.queueLimit, 0, true) ?? DEFAULT_QUEUE_LIMIT;
    if (options.offline !== undefined && options.offline !== 'queue' && options.offline !== 'reject') {
      throw new TypeError(`Expected \`offline\` to be 'queue' or 'reject', got ${String(options.offline)}`);
    }
    this.#rejectOffline = options.offline === 'reject';
    this.#reconnect = options.reconnect !== false;
    this.#typed = options.typed;
    this.#host = host;
  }

  /** Messages waiting for a connection. */
  get length(): number {
    return this.#queue.length;
  }

  /** A new connection on probation: the sends it takes are held until release() (or requeueHeld()). */
  hold(): void {
    this.#held = [];
  }

  /** The connection is established: the sends it took so far resolve, and later ones at once. */
  release(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) for (const q of held) q.resolve();
  }

  /**
   * The connection ended before it was established: nothing shows the server took what was sent
   * on it, so it is sent again after the reconnect (or rejected, per `offline`), before anything
   * queued since.
   */
  requeueHeld(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) this.#requeueFront(held);
  }

  /** A connection is up: the queue goes out first, in order; sends made from now on follow it. */
  flush(): void {
    for (let q = this.#queue.shift(); q !== undefined; q = this.#queue.shift()) this.#write(q);
  }

  /** The Client stopped for good: every queued send rejects with MessageNotSentError (`why`, `cause`). */
  rejectAll(why: string, cause: Error): void {
    for (let q = this.#queue.shift(); q !== undefined; q = this.#queue.shift()) {
      q.reject(new MessageNotSentError(`message #${q.seq} not sent: ${why}`, this.#describe(q), q.seq, { cause }));
    }
  }

  /** A send that failed because its connection was lost before writing it goes out again after the reconnect. */
  #requeueable(error: unknown): boolean {
    return (
      error instanceof ChannelClosedError &&
      !(error instanceof MessageRefusedError) &&
      !this.#host.stopping() &&
      this.#reconnect
    );
  }

  /** The MessageNotSentError a refused send rejects with (`cause`: why). */
  #notSent(q: { args: readonly unknown[]; seq: number }, error: unknown): MessageNotSentError {
    if (error instanceof MessageNotSentError) return error;
    const why = error instanceof Error ? error.message : String(error);
    return new MessageNotSentError(`message #${q.seq} not sent: ${why}`, this.#describe(q), q.seq, { cause: error });
  }

  /**
   * Hand a message to the current connection; if the connection is lost before it is written, queue
   * it again. While the connection is not established, a send it took is held until it is.
   */
  #write(q: Queued): void {
    const channel = this.#host.channel();
    this.#host.transmit(q.args).then(
      () => {
        const held = this.#held;
        if (held !== undefined && this.#host.channel() === channel) held.push(q);
        else q.resolve();
      },
      (error: unknown) => {
        if (this.#requeueable(error)) this.#enqueue(q);
        else q.reject(this.#notSent(q, error));
      },
    );
  }

  /** Put `list` back in front of the queue (they were sent before anything queued now), each per the offline policy. */
  #requeueFront(list: Queued[]): void {
    if (list.length === 0) return;
    const rest = this.#queue.drain();
    for (const q of list) this.#enqueue(q);
    for (const q of rest) this.#enqueue(q);
  }

  #enqueue(q: Queued): void {
    if (this.#host.connected() && this.#host.channel()?.isOpen) {
      this.#write(q);
      return;
    }
    if (this.#rejectOffline) {
      q.reject(
        new MessageNotSentError(
          `message #${q.seq} not sent: the client is disconnected (offline: 'reject')`,
          this.#describe(q),
          q.seq,
        ),
      );
      return;
    }
    if (this.#queue.length >= this.#limit) {
      q.reject(
        new MessageNotSentError(
          `message #${q.seq} not sent: the client is disconnected and its queue is full (queueLimit ${this.#limit})`,
          this.#describe(q),
          q.seq,
        ),
      );
      return;
    }
    this.#queue.push(q);
  }

  #describe(q: { args: readonly unknown[] }): unknown {
    return this.#typed ? { name: q.args[0], data: q.args[1] } : q.args[0];
  }

  /** Client.send(): see there. */
  send(args: readonly unknown[]): Promise<void> {
    const seq = ++this.#seq;
    const host = this.#host;
    if (host.closed()) {
      return handledRejection(
        new MessageNotSentError(`message #${seq} not sent: the client is closed`, this.#describe({ args }), seq),
      );
    }
    let p: Promise<void>;
    if (host.connected() && this.#queue.length === 0 && this.#held === undefined && host.channel()?.isOpen) {
      // The fast path: straight to the channel, which keeps call order.
      p = host.transmit(args).then(undefined, (error: unknown) => {
        if (this.#requeueable(error))
          return new Promise<void>((resolve, reject) => this.#enqueue({ args, seq, resolve, reject }));
        throw this.#notSent({ args, seq }, error);
      });
    } else {
      p = new Promise<void>((resolve, reject) => this.#enqueue({ args, seq, resolve, reject }));
    }
    p.catch(noop);
    return p;
  }
}
