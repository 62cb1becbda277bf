/**
 * The Channel class: one connection carrying framed messages, with ordered async send()/recv(),
 * backpressure both ways, limits and a lifecycle. The only module that touches the transport.
 * Listener (listener.ts) and connect (connect.ts) get the class through a factory, so this is
 * the one core module that imports them, never the other way round.
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type * as tls from 'node:tls';
import PQueue from 'p-queue';
import {
  ChannelClosedError,
  MessageTooLargeError,
  ProtocolError,
  SendQueueFullError,
  SessionLostError,
  TimeoutError,
  UnexpectedEofError,
} from '../errors.js';
import { BODY_BUDGET_MIN } from '../framing/body.js';
import type { AckIO, Framing, HandshakeIO } from '../framing/types.js';
import { checkTimeout } from '../validate.js';
import { handledRejection, noop, settlesWithin } from '../util.js';
import { connectChannel, peerCertificateOf } from './connect.js';
import { Deque } from './deque.js';
import { RawReader, handshakeOf, runHandshake } from './handshake.js';
import { Listener } from './listener.js';
import { connectSession } from '../session/connect.js';
import { SessionListener } from '../session/listen.js';
import { SessionStream } from '../session/stream.js';
import { publishClose, publishConnect, publishError } from './diagnostics.js';
import { messages } from './iterator.js';
import type { PendingSend, Waiter } from './pending.js';
import { Watchdog } from './watchdog.js';
import type { DirectReader, ReadTarget } from './reader.js';
import { BudgetShare } from './budget.js';
import { BodyPool } from './recycle.js';
import { FrameWriter } from './writer.js';
import { memoryPair } from './memory.js';
import {
  DEFAULT_CLOSE_TIMEOUT,
  checkChannelOptions,
  checkSendType,
  recvDeadline,
  type ChannelInternals,
  type ChannelOptions,
  type ChannelStats,
  type CloseOptions,
  type ConnectOptions,
  type Frame,
  type ListenOptions,
  type RecvOptions,
  type SendOptions,
  type SessionListenOptions,
} from './options.js';

/** Bookkeeping bytes counted per queued inbound message on top of its body, so empty messages count too. */
const MESSAGE_OVERHEAD = 64;

const RESOLVED: Promise<void> = Promise.resolve();

// Lifecycle states, in order.
const HANDSHAKE = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/**
 * One connection carrying framed messages. send() and recv() may be called concurrently: sends
 * go out in call order without interleaving, recvs resolve in call order with messages in wire
 * order. Make one with Channel.connect(), Channel.listen() or Channel.pair().
 */
export class Channel implements AsyncIterable<Buffer> {
  /** The remote IP address (undefined over a Unix socket or in memory). */
  readonly ip: string | undefined;
  /** The remote port (undefined over a Unix socket or in memory). */
  readonly port: number | undefined;
  /** The wire format of this channel. */
  readonly framing: Framing;
  /** Largest message accepted or sent, in bytes. */
  readonly maxMessageSize: number;
  /** Resolves once the framing's handshake is done (at once for framings without one); rejects if it fails. */
  readonly ready: Promise<void>;
  /**
   * Resolves when the transport has closed: with undefined after a clean close by either side,
   * with the error that ended the channel otherwise. Never rejects.
   */
  readonly closed: Promise<Error | undefined>;

  readonly #stream: Duplex;
  readonly #decoder;
  readonly #sendLimit: number;
  readonly #recvHWM: number;
  readonly #sendHWM: number;
  #state: number;
  /** Why receiving ended; recv() reports it once the inbox is drained. */
  #error: Error | undefined;
  /** Set once a transport error or protocol error ended the channel. */
  #failed = false;
  #closing: Promise<void> | undefined;
  #resolveClosed!: (error: Error | undefined) => void;

  // Receive side.
  readonly #inbox = new Deque<Buffer>();
  /** Type fields of the inbox, for framings that have them. */
  readonly #inboxTypes: Deque<number> | null;
  #inboxBytes = 0;
  /** Reading paused because unread messages passed the high-water mark (resumes as recv() drains them). */
  #paused = false;
  /** Reading paused because the peer does not read our tinyproto answers (resumes on drain). */
  #answersPaused = false;
  /** The listener's memory budget for bodies of BODY_BUDGET_MIN and up (server side), and what this channel holds of it. */
  readonly #budget: BudgetShare | undefined;
  /** Bytes read but not decoded because the next body waits for memory (reading is paused meanwhile). */
  #stashed: Buffer | null = null;
  /** The one recv() waiting for the next frame, when the inbox is empty. */
  #waiter: Waiter | null = null;
  /** Queued recv() tasks waiting for the current waiter to settle. */
  #waiterIdle: (() => void)[] = [];
  /** The receive mutex: only recv() calls that must wait behind another go through it. */
  readonly #recvQueue = new PQueue({ concurrency: 1 });
  /** recv() calls not yet settled that took the slow path (the waiter, or queued): 0 = uncontended. */
  #recvBusy = 0;
  /** Frames decoded and their body bytes, for stats (the writer counts the sent ones). */
  #received = 0;
  #receivedBytes = 0;
  /** The socket's direct reader (reader.ts), when it reads through one. */
  readonly #reader: DirectReader | undefined;
  /** Released messages' memory, reused for large bodies (release()). */
  readonly #bodies = new BodyPool();
  /** Raw bytes read during the handshake. */
  #raw: RawReader | null = null;

  // Send side.
  /** The send mutex: only sends that must wait (backpressure, handshake) go through it. */
  readonly #sendQueue = new PQueue({ concurrency: 1 });
  readonly #backlog = new Deque<PendingSend>();
  /** Body bytes in #backlog, for maxQueuedBytes. */
  #backlogBytes = 0;
  readonly #maxQueued: number;
  #backlogScheduled = false;
  #drainWaiter: (() => void) | null = null;
  /** Writes frames: small ones batched into a slab once per tick, big bodies without a copy. */
  readonly #writer: FrameWriter;

  /** Samples the decoder for headerTimeout and idleTimeout. */
  readonly #watchdog: Watchdog;
  /** Settles the send waiting for the peer's answer to its header (acknowledged framings). */
  #ackWaiter: ((error: Error | undefined) => void) | null = null;

  /** The direct receive path (reader.ts): large bodies in progress are read straight into. */
  readonly #readTarget: ReadTarget = {
    data: (chunk) => this.#onData(chunk),
    space: (min) => (this.#raw === null && this.#stashed === null ? (this.#decoder.bodySpace?.(min) ?? null) : null),
    filled: (n) => this.#decoder.bodyFilled!(n, this.#onFrame),
  };

  readonly #ackIO: AckIO = {
    // Answers count against the send budget: above the send high-water mark we stop reading the
    // peer's headers until it reads its answers; past maxQueuedBytes the connection fails.
    reply: (bytes) => {
      const stream = this.#stream;
      if (stream.destroyed || stream.writableEnded) return;
      this.#writer.writeBytes(bytes);
      const queued = this.queuedBytes;
      if (queued > this.#maxQueued) {
        this.#fail(
          new SendQueueFullError(
            bytes.length,
            queued,
            this.#maxQueued,
            'a tinyproto answer (the peer does not read its answers)',
          ),
        );
      } else if (queued >= this.#sendHWM && !this.#answersPaused) {
        this.#answersPaused = true;
        this.#writer.flush();
        stream.pause();
      }
    },
    acked: (error) => {
      const waiter = this.#ackWaiter;
      this.#ackWaiter = null;
      waiter?.(error);
    },
  };

  /**
   * Wrap any connected byte stream (a net.Socket, a tls.TLSSocket, a Duplex). Channel.connect,
   * Channel.listen and Channel.pair do this for you.
   */
  constructor(stream: Duplex, options: ChannelOptions & ChannelInternals = {}) {
    const o = checkChannelOptions(options);
    this.framing = o.framing;
    this.maxMessageSize = o.maxMessageSize;
    this.#recvHWM = o.highWaterMark;
    this.#sendHWM = Math.max(o.sendHighWaterMark, stream.writableHighWaterMark);
    const handshakeTimeout = o.handshakeTimeout;
    this.#maxQueued = o.maxQueuedBytes;
    this.#sendLimit = Math.min(this.maxMessageSize, this.framing.maxEncodableSize);
    this.#budget = options.budget === undefined ? undefined : new BudgetShare(options.budget);
    this.#decoder = this.framing.createDecoder(
      { maxMessageSize: this.maxMessageSize, reserve: this.#budget?.reserve, alloc: this.#bodies.alloc },
      this.framing.acknowledged ? this.#ackIO : undefined,
    );
    this.#inboxTypes = this.framing.hasType ? new Deque<number>() : null;
    this.#watchdog = new Watchdog(
      {
        decoder: this.#decoder,
        maxHeaderLength: this.framing.maxHeaderLength,
        active: () => this.#state === OPEN,
        paused: () => this.#paused || this.#stashed !== null,
        fail: (error) => this.#fail(error),
      },
      o.headerTimeout,
      o.idleTimeout,
      o.bodyTimeout,
    );
    this.#stream = stream;
    this.#writer = new FrameWriter(stream, this.framing, options.reader !== undefined);
    const socket = stream as Partial<net.Socket>;
    this.ip = typeof socket.remoteAddress === 'string' ? socket.remoteAddress : undefined;
    this.port = typeof socket.remotePort === 'number' ? socket.remotePort : undefined;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));

    const reader = (this.#reader = options.reader);
    if (reader === undefined) stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    stream.on('close', this.#onClose);
    stream.on('drain', this.#onDrain);

    const run = handshakeOf(this.framing, o.auth);
    if (run !== undefined) {
      this.#state = HANDSHAKE;
      this.#raw = new RawReader(stream, this.#recvHWM);
      this.ready = this.#handshake(run, options.isServer ?? false, handshakeTimeout);
      this.ready.catch(noop);
    } else {
      this.#state = OPEN;
      this.ready = RESOLVED;
      this.#watchdog.start();
    }
    if (this.#state === OPEN) publishConnect(this, options.isServer ?? false);
    if (reader !== undefined) {
      reader.attach(this.#readTarget);
      if (!stream.isPaused()) stream.resume(); // start reading, unless what came early paused it
    }
    if (stream.destroyed) queueMicrotask(() => this.#onClose());
  }

  /** TLS only: the peer's certificate (on a mutual-TLS server, the client's), undefined when there is none. */
  get peerCertificate(): tls.PeerCertificate | undefined {
    return peerCertificateOf(this.#stream);
  }

  // ---------------------------------------------------------------- connect / listen / pair

  /** Connect to a listening peer. */
  static connect(host: string, port: number, options?: ConnectOptions): Promise<Channel>;
  /** Connect to `{ host, port }` or to a Unix socket `{ path }`. */
  static connect(options: ConnectOptions): Promise<Channel>;
  static connect(hostOrOptions: string | ConnectOptions, port?: number, options?: ConnectOptions): Promise<Channel> {
    const opts: ConnectOptions =
      typeof hostOrOptions === 'string' ? { ...options, host: hostOrOptions, port: port! } : { ...hostOrOptions };
    if (opts.resume !== undefined && opts.resume !== false) return connectSession(opts, createChannel);
    return connectChannel(opts, createChannel);
  }

  /**
   * Listen for clients; returns at once. The Listener is an async iterable of client channels,
   * so `for await (const ch of Channel.listen(...))` serves them.
   */
  static listen(host: string, port: number, options: SessionListenOptions): SessionListener;
  static listen(options: SessionListenOptions): SessionListener;
  static listen(host: string, port: number, options?: ListenOptions): Listener;
  static listen(options: ListenOptions): Listener;
  static listen(
    hostOrOptions: string | ListenOptions,
    port?: number,
    options?: ListenOptions,
  ): Listener | SessionListener {
    const opts: ListenOptions & { resume?: unknown } =
      typeof hostOrOptions === 'string' ? { ...options, host: hostOrOptions, port: port! } : { ...hostOrOptions };
    if (opts.resume !== undefined && opts.resume !== false)
      return new SessionListener(opts as SessionListenOptions, createChannel);
    return new Listener(opts, createChannel);
  }

  /** Two channels joined in memory, with the same semantics as over TCP (framing, limits, backpressure). */
  static pair(options: ChannelOptions = {}): [Channel, Channel] {
    const [a, b] = memoryPair();
    return [new Channel(a, { ...options, isServer: false }), new Channel(b, { ...options, isServer: true })];
  }

  // ---------------------------------------------------------------- sending

  /**
   * Send one message (strings are sent as UTF-8). Resolves once the frame is handed to the
   * transport; while the transport holds more than the send high-water mark it first waits for
   * it to drain. Concurrent sends go out in call order and never interleave.
   *
   * Bodies above 16 KiB are written without copying: do not modify such a buffer after passing it.
   * A send that fails because the channel ended rejects its promise, and the same failure is
   * reported through `closed` and recv(); an un-awaited send's rejection is not reported as unhandled.
   */
  send(data: Uint8Array | string, options?: SendOptions): Promise<void> {
    if (this.#state > OPEN) return handledRejection(this.#closedError());
    let body: Buffer;
    if (typeof data === 'string') body = Buffer.from(data, 'utf8');
    else if (Buffer.isBuffer(data)) body = data;
    else if (data instanceof Uint8Array) body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    else return Promise.reject(new TypeError(`Expected a Uint8Array or a string, got ${typeof data}`));
    if (body.length > this.#sendLimit) {
      return Promise.reject(new MessageTooLargeError(body.length, this.#sendLimit, 'send'));
    }
    let type = 0;
    if (options !== undefined) {
      if (options.type !== undefined) {
        const refused = checkSendType(this.framing, (type = options.type));
        if (refused !== undefined) return Promise.reject(refused);
      }
      if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    }
    if (this.#uncontended()) {
      // Uncontended: no queue, no allocation beyond the frame itself.
      this.#writer.write(body, type);
      return RESOLVED;
    }
    return this.#enqueueSend(body, type, options?.signal);
  }

  #uncontended(): boolean {
    const queued = this.#stream.writableLength + this.#writer.buffered;
    return (
      this.#state === OPEN &&
      this.framing.acknowledged !== true &&
      this.#backlog.length === 0 &&
      !this.#backlogScheduled &&
      queued < this.#sendHWM
    );
  }

  /** @internal `head[0, headLength)` then `payload` as one message (RequestChannel's envelope), joined in the write slab. */
  sendJoined(head: Buffer, headLength: number, payload: Buffer): Promise<void> {
    if (headLength + payload.length <= this.#sendLimit && this.#uncontended()) {
      this.#writer.writeJoined(head, headLength, payload);
      return RESOLVED;
    }
    return this.send(Buffer.concat([head.subarray(0, headLength), payload]));
  }

  #closedError(): Error {
    const error = this.#error;
    if (error instanceof ChannelClosedError) return error;
    return new ChannelClosedError('channel is closed', error ? { cause: error } : undefined);
  }

  #enqueueSend(body: Buffer, type: number, signal: AbortSignal | undefined): Promise<void> {
    const queued = this.queuedBytes;
    if (queued > 0 && queued + body.length > this.#maxQueued) {
      // Marked handled like the other refusals of an un-awaited send: a peer that never reads must
      // not be able to crash the process through an unhandled rejection.
      return handledRejection(new SendQueueFullError(body.length, queued, this.#maxQueued));
    }
    this.#backlogBytes += body.length;
    const p = new Promise<void>((resolve, reject) => {
      const entry: PendingSend = { body, type, resolve, reject, signal, onAbort: undefined, done: false };
      if (signal) {
        entry.onAbort = () => {
          if (entry.done) return;
          entry.done = true;
          reject(signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#backlog.push(entry);
    });
    p.catch(noop);
    if (!this.#backlogScheduled) {
      this.#backlogScheduled = true;
      void this.#sendQueue.add(this.#flushBacklog).catch(noop);
    }
    return p;
  }

  /** The contended send path: one mutex task writes the whole backlog, waiting for drain as needed. */
  readonly #flushBacklog = async (): Promise<void> => {
    try {
      if (this.#state === HANDSHAKE) await this.ready;
      const stream = this.#stream;
      while (this.#backlog.length > 0) {
        if (this.#state === CLOSED || this.#failed || stream.writableEnded || stream.destroyed) {
          this.#rejectBacklog(this.#closedError());
          return;
        }
        if (stream.writableLength + this.#writer.buffered >= this.#sendHWM) {
          this.#writer.flush();
          if (stream.writableNeedDrain && stream.writableLength >= this.#sendHWM) {
            await new Promise<void>((resolve) => (this.#drainWaiter = resolve));
            continue;
          }
        }
        const entry = this.#backlog.shift()!;
        this.#backlogBytes -= entry.body.length;
        if (entry.done) continue;
        entry.done = true;
        if (entry.onAbort) entry.signal!.removeEventListener('abort', entry.onAbort);
        if (this.framing.acknowledged) await this.#sendAcknowledged(entry);
        else {
          this.#writer.write(entry.body, entry.type);
          entry.resolve();
        }
      }
    } catch (error) {
      this.#rejectBacklog(error);
    } finally {
      this.#backlogScheduled = false;
    }
  };

  /**
   * Acknowledged framings (tinyproto), under the send mutex: write the header, wait for the
   * peer's answer (the decoder reports it through #ackIO), then write the body or reject.
   */
  async #sendAcknowledged(entry: PendingSend): Promise<void> {
    const header = Buffer.allocUnsafe(this.framing.maxHeaderLength);
    const end = this.framing.writeHeader(header, 0, entry.body.length, entry.type);
    // A failed answer (or the end) rejects this send at once, before the sends queued behind it.
    const answered = new Promise<Error | undefined>((resolve) => {
      this.#ackWaiter = (error) => {
        if (error !== undefined) entry.reject(error);
        resolve(error);
      };
    });
    this.#decoder.expectAck!(entry.body.length);
    this.#writer.flush();
    this.#stream.write(header.subarray(0, end));
    if ((await answered) !== undefined) return;
    const stream = this.#stream;
    if (entry.body.length > 0 && !stream.destroyed && !stream.writableEnded) stream.write(entry.body);
    this.#writer.sent++;
    this.#writer.sentBytes += entry.body.length;
    entry.resolve();
  }

  #rejectBacklog(error: unknown): void {
    if (this.#ackWaiter !== null) this.#ackIO.acked(error instanceof Error ? error : new Error(String(error)));
    for (let entry = this.#backlog.shift(); entry !== undefined; entry = this.#backlog.shift()) {
      this.#backlogBytes -= entry.body.length;
      if (entry.done) continue;
      entry.done = true;
      if (entry.onAbort) entry.signal!.removeEventListener('abort', entry.onAbort);
      entry.reject(error);
    }
  }

  readonly #onDrain = (): void => {
    if (this.#answersPaused) {
      this.#answersPaused = false;
      if (!this.#paused && this.#stashed === null) this.#stream.resume(); // closing too: the peer's end must arrive
    }
    const wake = this.#drainWaiter;
    if (wake) {
      this.#drainWaiter = null;
      wake();
    }
  };

  // ---------------------------------------------------------------- receiving

  /**
   * Receive the next message. Concurrent calls resolve in call order with messages in wire order.
   * A call that is aborted or times out takes no message: that message goes to the next caller.
   * Rejects with ChannelClosedError once the peer has closed and every message has been read, or
   * with the error that ended the channel.
   */
  recv(options?: RecvOptions): Promise<Buffer> {
    // Uncontended with a message buffered: no queue, one resolved promise.
    if (this.#recvBusy === 0 && this.#inbox.length > 0 && options === undefined)
      return Promise.resolve(this.#takeBody());
    return this.#recv(options, false) as Promise<Buffer>;
  }

  /**
   * Take the next message if one is already buffered and no recv() is waiting, without a promise;
   * undefined otherwise (then `await recv()`). The fastest way to drain a busy channel:
   * `const msg = ch.tryRecv() ?? (await ch.recv())`.
   */
  tryRecv(): Buffer | undefined {
    return this.#recvBusy === 0 && this.#inbox.length > 0 ? this.#takeBody() : undefined;
  }

  /** Like recv(), with the frame's type field: `{ type, data }`. */
  recvFrame(options?: RecvOptions): Promise<Frame> {
    return this.#recv(options, true) as Promise<Frame>;
  }

  #recv(options: RecvOptions | undefined, frame: boolean): Promise<Buffer | Frame> {
    if (this.#recvBusy === 0 && options === undefined) {
      // Uncontended, no signal or timeout to check first: an already-buffered message takes no queue.
      if (this.#inbox.length > 0) return Promise.resolve(this.#take(frame));
      if (this.#error !== undefined) return Promise.reject(this.#error);
      return this.#wait(undefined, frame);
    }
    return this.#recvSlow(options ?? {}, frame);
  }

  #recvSlow(options: RecvOptions, frame: boolean): Promise<Buffer | Frame> {
    const limit = recvDeadline(options);
    if ('error' in limit) return Promise.reject(limit.error);
    const cancel = limit.signal;
    let p: Promise<Buffer | Frame>;
    if (this.#recvBusy === 0) {
      p =
        this.#inbox.length > 0
          ? Promise.resolve(this.#take(frame))
          : this.#error
            ? Promise.reject(this.#error)
            : this.#wait(cancel, frame);
    } else {
      this.#recvBusy++;
      p = this.#recvQueue.add(() => this.#queuedRecv(cancel, frame), { signal: cancel }) as Promise<Buffer | Frame>;
      p.then(this.#recvDone, this.#recvDone);
    }
    if (limit.dispose !== noop) p.then(limit.dispose, limit.dispose);
    return p;
  }

  readonly #recvDone = (): void => {
    this.#recvBusy--;
  };

  /** A recv that had to queue behind others: runs under the receive mutex. */
  async #queuedRecv(cancel: AbortSignal | undefined, frame: boolean): Promise<Buffer | Frame> {
    while (this.#waiter !== null) await new Promise<void>((resolve) => this.#waiterIdle.push(resolve));
    // p-queue has already rejected an aborted task; make sure it takes nothing.
    cancel?.throwIfAborted();
    if (this.#inbox.length > 0) return this.#take(frame);
    if (this.#error !== undefined) throw this.#error;
    return this.#wait(cancel, frame);
  }

  #wait(cancel: AbortSignal | undefined, frame: boolean): Promise<Buffer | Frame> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, frame, cancel, onAbort: undefined };
      if (cancel) {
        waiter.onAbort = () => {
          if (this.#waiter !== waiter) return;
          this.#waiter = null;
          this.#recvBusy--;
          reject(cancel.reason);
          this.#wakeQueued();
        };
        cancel.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiter = waiter;
      this.#recvBusy++;
    });
  }

  #wakeQueued(): void {
    if (this.#waiterIdle.length === 0) return;
    const wake = this.#waiterIdle;
    this.#waiterIdle = [];
    for (const fn of wake) fn();
  }

  /** Settle the waiting recv with a frame or an error. */
  #settleWaiter(waiter: Waiter, body: Buffer | undefined, type: number, error?: unknown): void {
    this.#waiter = null;
    this.#recvBusy--;
    if (waiter.onAbort) waiter.cancel!.removeEventListener('abort', waiter.onAbort);
    if (body === undefined) waiter.reject(error);
    else waiter.resolve(waiter.frame ? { type, data: body } : body);
    this.#wakeQueued();
  }

  #take(frame: boolean): Buffer | Frame {
    if (!frame) return this.#takeBody();
    const type = this.#inboxTypes === null ? 0 : this.#inboxTypes.peek()!;
    return { type, data: this.#takeBody() };
  }

  /** Take the next buffered message (the inbox is not empty). */
  #takeBody(): Buffer {
    const body = this.#inbox.shift()!;
    if (this.#inboxTypes !== null) this.#inboxTypes.shift();
    this.#inboxBytes -= body.length + MESSAGE_OVERHEAD;
    if (body.length >= BODY_BUDGET_MIN && this.#budget !== undefined) this.#budget.release(body.length);
    if (this.#paused && this.#inboxBytes <= this.#recvHWM >>> 1) {
      this.#paused = false;
      if (this.#state < CLOSING && !this.#answersPaused && this.#stashed === null) this.#stream.resume();
    }
    return body;
  }

  readonly #onFrame = (body: Buffer, type: number): void => {
    const waiter = this.#waiter;
    if (this.#state >= CLOSING || waiter !== null) {
      // Closed locally (the user asked for no more: discarded), or taken at once: no longer held.
      if (body.length >= BODY_BUDGET_MIN && this.#budget !== undefined) this.#budget.release(body.length);
      if (this.#state >= CLOSING) return;
    }
    this.#received++;
    this.#receivedBytes += body.length;
    if (waiter !== null) {
      this.#settleWaiter(waiter, body, type);
      return;
    }
    this.#inbox.push(body);
    if (this.#inboxTypes !== null) this.#inboxTypes.push(type);
    this.#inboxBytes += body.length + MESSAGE_OVERHEAD;
    if (!this.#paused && this.#inboxBytes > this.#recvHWM) {
      this.#paused = true;
      this.#stream.pause();
    }
  };

  readonly #onData = (chunk: Buffer): void => {
    if (this.#raw !== null) {
      this.#raw.feed(chunk);
      return;
    }
    if (this.#stashed !== null) {
      this.#stashed = Buffer.concat([this.#stashed, chunk]); // arrived while pausing: keep it in order
      return;
    }
    const decoder = this.#decoder;
    try {
      if (this.#budget === undefined) decoder.push(chunk, this.#onFrame);
      else {
        const start = decoder.offset;
        decoder.push(chunk, this.#onFrame);
        const used = decoder.offset - start;
        if (used < chunk.length) {
          // The next body waits for memory: hold the rest, stop reading, go on once some is released.
          this.#stashed = chunk.subarray(used);
          this.#stream.pause();
          this.#budget.wait(this.#memoryReleased);
        }
      }
    } catch (error) {
      // Bad bytes from the peer; a malformed answer to our tinyproto header fails the send waiting for it with that error.
      if (this.#ackWaiter !== null && error instanceof ProtocolError) this.#ackIO.acked(error);
      this.#fail(error as Error);
    }
  };

  /** Memory was released somewhere: push what was held back, and read again if it all went in. */
  readonly #memoryReleased = (): void => {
    const rest = this.#stashed;
    if (rest === null || this.#state === CLOSED) return;
    this.#stashed = null;
    this.#onData(rest);
    if (this.#stashed === null && !this.#paused && !this.#answersPaused && this.#state < CLOSING) this.#stream.resume();
  };

  /**
   * Messages until the peer closes at a frame boundary. Breaking out does not close the channel:
   * unread messages stay for later recv(). Any other error that ends the channel is thrown.
   */
  iterRecv(): AsyncIterableIterator<Buffer> {
    return messages(this);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this.iterRecv();
  }

  /**
   * Give back a message from recv() you are done with: its memory may hold a later message's body,
   * as freed memory does in a refcounted runtime (hot in cache, no page faults). For bodies of 64 KiB
   * and up that this channel allocated; anything else (a view, a copy, twice) is refused (false).
   * Like free(): neither `message` nor any view of it may be used afterwards.
   */
  release(message: Buffer): boolean {
    return this.#bodies.release(message);
  }

  /**
   * @internal A layer above keeps a message after recv() took it (a request body its handler
   * holds): count its bytes against the memory budget again until the returned function is called,
   * so a full budget still pauses reading. Bodies under BODY_BUDGET_MIN, and channels without a
   * budget, count nothing. The returned function releases once, however often it is called.
   */
  holdMemory(bytes: number): () => void {
    const budget = this.#budget;
    if (budget === undefined || bytes < BODY_BUDGET_MIN || this.#state === CLOSED) return noop;
    budget.reserve(bytes, true);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      budget.release(bytes);
    };
  }

  /** Messages received but not yet taken by recv(). */
  get bufferedMessages(): number {
    return this.#inbox.length;
  }

  /** Messages and body bytes sent and received so far (see ChannelStats); a new object each read. */
  get stats(): ChannelStats {
    const w = this.#writer;
    const bytesReadDirect = this.#reader?.directBytes ?? 0;
    return {
      messagesSent: w.sent,
      messagesReceived: this.#received,
      bytesSent: w.sentBytes,
      bytesReceived: this.#receivedBytes,
      bytesReadDirect,
      ...(this.#stream instanceof SessionStream && { session: this.#stream.stats }),
    };
  }

  /** Outbound bytes not yet written to the transport (its buffer, batched frames, queued sends): what `maxQueuedBytes` bounds. */
  get queuedBytes(): number {
    return this.#stream.writableLength + this.#writer.buffered + this.#backlogBytes;
  }

  /** True until the channel starts closing (locally, by the peer, or on an error). */
  get isOpen(): boolean {
    return this.#state <= OPEN && this.#error === undefined;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Flush what was sent, end the connection and resolve once it is closed. Pending and later
   * recv() calls reject with ChannelClosedError. Idempotent.
   */
  close(options?: CloseOptions): Promise<void> {
    if (this.#closing) return this.#closing;
    const timeout = checkTimeout('timeout', options?.timeout) ?? DEFAULT_CLOSE_TIMEOUT;
    const wasOpen = this.#state <= OPEN;
    if (this.#state < CLOSING) this.#state = CLOSING;
    if (this.#budget !== undefined) this.#budget.closing = true; // what still arrives is discarded: it never waits
    if (!(this.#error instanceof ChannelClosedError) || wasOpen) {
      this.#error = new ChannelClosedError('channel was closed', this.#error ? { cause: this.#error } : undefined);
    }
    // Discard unread messages and fail waiting recvs: the user asked for no more.
    this.#inbox.drain();
    this.#inboxTypes?.drain();
    this.#inboxBytes = 0;
    if (this.#waiter) this.#settleWaiter(this.#waiter, undefined, 0, this.#error);
    if (this.#paused || this.#answersPaused || this.#stashed !== null) {
      this.#paused = this.#answersPaused = false;
      const rest = this.#stashed;
      this.#stashed = null;
      if (rest !== null) this.#onData(rest); // closing: bodies need no memory now, they are discarded
      this.#stream.resume(); // keep reading (and discarding) so the peer's end arrives
    }
    (this.#closing = this.#closeGracefully(timeout)).catch(noop);
    return this.#closing;
  }

  async #closeGracefully(timeout: number): Promise<void> {
    const flushed = (async () => {
      await this.#sendQueue.onIdle();
      this.#writer.flush();
      if (!this.#stream.writableEnded && !this.#stream.destroyed) this.#stream.end();
      const error = await this.closed;
      if (error instanceof SessionLostError) throw error; // resume: what was sent may not have arrived
    })();
    if (!(await settlesWithin(flushed, timeout))) {
      const error = new TimeoutError(`close timed out after ${timeout} ms`);
      this.destroy(error);
      throw error;
    }
  }

  /** Close at once without flushing. Pending operations reject with `error` (or ChannelClosedError). */
  destroy(error?: Error): void {
    if (this.#state === CLOSED && this.#stream.destroyed) return;
    if (error) this.#fail(error);
    else {
      if (this.#state < CLOSING) this.#state = CLOSING;
      if (this.#error === undefined) this.#error = new ChannelClosedError('channel was destroyed');
      this.#endReceive();
      this.#stream.destroy();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** End the channel with an error: waiting recvs and queued sends reject with it, the transport is destroyed. */
  #fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    publishError(this, error);
    if (this.#error === undefined || this.#error instanceof ChannelClosedError) this.#error = error;
    if (this.#state < CLOSING) this.#state = CLOSING;
    this.#endReceive();
    this.#rejectBacklog(this.#closedError());
    this.#onDrain();
    this.#stream.destroy();
  }

  /** Receiving has ended: the waiting recv (if the inbox is empty) rejects; queued ones follow. */
  #endReceive(): void {
    this.#raw?.fail(this.#error!);
    const waiter = this.#waiter;
    if (waiter !== null) this.#settleWaiter(waiter, undefined, 0, this.#error);
  }

  readonly #onEnd = (): void => {
    if (this.#raw !== null || !this.#decoder.atBoundary) {
      const what =
        this.#raw !== null ? 'connection closed during the handshake' : 'connection closed in the middle of a frame';
      this.#fail(new UnexpectedEofError(what, { offset: this.#decoder.offset }));
      return;
    }
    if (this.#error === undefined) this.#error = new ChannelClosedError('peer closed the connection');
    if (this.#state < CLOSING) this.#state = CLOSING;
    this.#endReceive();
  };

  readonly #onError = (error: Error): void => this.#fail(error);

  readonly #onClose = (): void => {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#watchdog.stop();
    if (this.#error === undefined) this.#error = new ChannelClosedError('connection closed');
    this.#endReceive();
    this.#rejectBacklog(this.#closedError());
    this.#onDrain();
    this.#writer.release();
    this.#bodies.clear();
    this.#stashed = null;
    this.#budget?.releaseAll(); // unread and unfinished bodies: nobody will take them now
    this.#resolveClosed(this.#failed ? this.#error : undefined);
    publishClose(this, this.#failed ? this.#error : undefined);
  };

  async #handshake(run: (io: HandshakeIO) => Promise<void>, isServer: boolean, timeout: number): Promise<void> {
    const raw = this.#raw!;
    const stream = this.#stream;
    try {
      await runHandshake(stream, raw, run, isServer, timeout, this.framing.name);
    } catch (error) {
      this.#fail(error as Error);
      throw this.#error;
    }
    if (this.#state !== HANDSHAKE) throw this.#closedError();
    this.#state = OPEN;
    this.#raw = null;
    this.#watchdog.start();
    publishConnect(this, isServer);
    const rest = raw.leftover();
    if (rest.length > 0) this.#onData(rest);
    if (this.#state === OPEN && stream.isPaused() && !this.#paused && !this.#answersPaused && this.#stashed === null)
      stream.resume();
  }
}

/** How connect() and Listener make a channel for a connected stream. */
function createChannel(stream: Duplex, options: ChannelOptions & ChannelInternals): Channel {
  return new Channel(stream, options);
}
