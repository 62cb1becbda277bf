/**
 * The Channel's contended send path: sends that cannot be written at once (the transport holds
 * more than the send high-water mark, the handshake is not done, an acknowledged framing waits for
 * the peer's answers, or earlier sends still wait) queue here, bounded by maxQueuedBytes, and one
 * task under a mutex writes them in call order, waiting for 'drain' as needed. The Channel keeps
 * the uncontended path (one write, no queue) and the lifecycle; it tells this queue when the
 * transport drains and when the channel ends.
 */
import type { Duplex } from 'node:stream';
import PQueue from 'p-queue';
import { SendQueueFullError } from '../errors.js';
import type { Framing } from '../framing/types.js';
import { noop } from '../util.js';
import { Deque } from './deque.js';
import { SendPromise, type QueuedSend, type SendTally } from './sends.js';
import type { FrameWriter } from './writer.js';

/** What the backlog needs of its Channel. */
export interface SendHost {
  readonly stream: Duplex;
  readonly writer: FrameWriter;
  readonly framing: Framing;
  /** Above this many bytes in the transport and the writer, the queue waits for 'drain'. */
  readonly sendHighWaterMark: number;
  /** Sends that would queue more than this many bytes are refused (maxQueuedBytes). */
  readonly maxQueuedBytes: number;
  /** Counts the sends that fail. */
  readonly tally: SendTally;
  /** The handshake to wait for before writing, or undefined once the channel is open. */
  handshake(): Promise<void> | undefined;
  /** False once frames can no longer be written (the channel failed or closed, the transport ended). */
  writable(): boolean;
  /** The error a send rejects with once the channel has ended. */
  closedError(): Error;
  /** Outbound bytes not yet written (the transport, the writer and this queue): Channel.queuedBytes. */
  queuedBytes(): number;
  /**
   * Acknowledged framings: the header of a `length`-byte body is about to go out; `answered` runs
   * with the peer's answer (undefined: go on), or with the error that ended the channel.
   */
  expectAck(length: number, answered: (error: Error | undefined) => void): void;
}

export class SendBacklog {
  readonly #host: SendHost;
  /** The send mutex: one task at a time writes the queue. */
  readonly #mutex = new PQueue({ concurrency: 1 });
  readonly #entries = new Deque<QueuedSend>();
  /** Body bytes queued, for maxQueuedBytes. */
  #bytes = 0;
  /** A task that writes the queue is scheduled or running. */
  #scheduled = false;
  /** Wakes the task waiting for the transport to drain. */
  #drainWaiter: (() => void) | null = null;

  constructor(host: SendHost) {
    this.#host = host;
  }

  /** Nothing queued and no task writing: a send may be written at once, in order. */
  get idle(): boolean {
    return this.#entries.length === 0 && !this.#scheduled;
  }

  /** Body bytes waiting in the queue. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Queue a send; it settles once written (or refused, or failed). */
  enqueue(body: Buffer, type: number, signal: AbortSignal | undefined): Promise<void> {
    const host = this.#host;
    const queued = host.queuedBytes();
    if (queued > 0 && queued + body.length > host.maxQueuedBytes) {
      // Like every failed send: never an unhandled rejection (a peer that never reads must not be
      // able to crash the process), counted until someone handles it.
      return SendPromise.failed(host.tally, new SendQueueFullError(body.length, queued, host.maxQueuedBytes));
    }
    this.#bytes += body.length;
    const p = SendPromise.pending(host.tally);
    const entry: QueuedSend = { body, type, promise: p, signal, onAbort: undefined, done: false };
    if (signal) {
      entry.onAbort = () => {
        if (entry.done) return;
        entry.done = true;
        p.withdraw(signal.reason);
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    this.#entries.push(entry);
    if (!this.#scheduled) {
      this.#scheduled = true;
      void this.#mutex.add(this.#flush).catch(noop);
    }
    return p;
  }

  /** Resolves once no task is writing the queue (close() flushes after it). */
  whenIdle(): Promise<void> {
    return this.#mutex.onIdle();
  }

  /** The transport drained: the waiting task goes on. */
  drained(): void {
    const wake = this.#drainWaiter;
    if (wake) {
      this.#drainWaiter = null;
      wake();
    }
  }

  /** The channel ended: every queued send rejects with `error`. */
  reject(error: unknown): void {
    for (let entry = this.#entries.shift(); entry !== undefined; entry = this.#entries.shift()) {
      this.#bytes -= entry.body.length;
      if (entry.done) continue;
      entry.done = true;
      if (entry.onAbort) entry.signal!.removeEventListener('abort', entry.onAbort);
      entry.promise.fail(error);
    }
  }

  /** The one task under the mutex: writes the whole queue, waiting for drain as needed. */
  readonly #flush = async (): Promise<void> => {
    const host = this.#host;
    try {
      const handshake = host.handshake();
      if (handshake !== undefined) await handshake;
      const stream = host.stream;
      while (this.#entries.length > 0) {
        if (!host.writable()) {
          this.reject(host.closedError());
          return;
        }
        if (stream.writableLength + host.writer.buffered >= host.sendHighWaterMark) {
          host.writer.flush();
          if (stream.writableNeedDrain && stream.writableLength >= host.sendHighWaterMark) {
            await new Promise<void>((resolve) => (this.#drainWaiter = resolve));
            continue;
          }
        }
        const entry = this.#entries.shift()!;
        this.#bytes -= entry.body.length;
        if (entry.done) continue;
        entry.done = true;
        if (entry.onAbort) entry.signal!.removeEventListener('abort', entry.onAbort);
        if (host.framing.acknowledged) await this.#sendAcknowledged(entry);
        else if (host.writer.write(entry.body, entry.type, entry.promise) === undefined) entry.promise.settle();
      }
    } catch (error) {
      this.reject(error);
    } finally {
      this.#scheduled = false;
    }
  };

  /**
   * Acknowledged framings (tinyproto), under the mutex: write the header, wait for the peer's
   * answer, then write the body or reject.
   */
  async #sendAcknowledged(entry: QueuedSend): Promise<void> {
    const host = this.#host;
    const header = Buffer.allocUnsafe(host.framing.maxHeaderLength);
    const end = host.framing.writeHeader(header, 0, entry.body.length, entry.type);
    // A failed answer (or the end) rejects this send at once, before the sends queued behind it.
    const answered = new Promise<Error | undefined>((resolve) =>
      host.expectAck(entry.body.length, (error) => {
        if (error !== undefined) entry.promise.fail(error);
        resolve(error);
      }),
    );
    host.writer.flush();
    host.stream.write(header.subarray(0, end));
    if ((await answered) !== undefined) return;
    if (host.writer.writeAcknowledgedBody(entry.body, entry.promise) === undefined) entry.promise.settle();
  }
}
