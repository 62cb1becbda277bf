/**
 * The Channel class: one connection carrying framed messages, with ordered async send()/recv(),
 * backpressure both ways, limits and a lifecycle. The only module that touches the transport.
 * Listener (listener.ts) and connect (connect.ts) get the class through a factory, so this is
 * the one core module that imports them, never the other way round.
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type * as tls from 'node:tls';
import {
  ChannelClosedError,
  closedError,
  MessageTooLargeError,
  ProtocolError,
  SendQueueFullError,
  SendsFailedError,
  SessionLostError,
  TimeoutError,
  UnexpectedEofError,
} from '../errors.js';
import { BODY_BUDGET_MIN } from '../framing/body.js';
import { checkSendType, type AckIO, type Framing, type HandshakeIO } from '../framing/types.js';
import { noop, settlesWithin } from '../util.js';
import { connectChannel, peerCertificateOf, type ChannelFactory } from './connect.js';
import { defineStreams } from './streams.js';
import { connectOptionsOf, connectWebSocket } from '../ws/connect.js';
import { Deque } from './deque.js';
import { MESSAGE_OVERHEAD, ReceiveQueue } from './receive.js';
import { RawReader, handshakeOf, runHandshake } from './handshake.js';
import { Listener } from './listener.js';
import { connectSession } from '../session/connect.js';
import { SessionListener } from '../session/listen.js';
import { SessionStream } from '../session/stream.js';
import { publishClose, publishConnect, publishError } from './diagnostics.js';
import { messages } from './iterator.js';
import { SendPromise, SendTally } from './sends.js';
import { SendBacklog } from './backlog.js';
import { Watchdog } from './watchdog.js';
import type { ReadSource, ReadTarget } from './reader.js';
import { BudgetShare } from './budget.js';
import { BodyPool } from './recycle.js';
import { FrameWriter } from './writer.js';
import { memoryPair } from './memory.js';
import {
  closeTimeout,
  checkChannelOptions,
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

const RESOLVED: Promise<void> = Promise.resolve();

// Lifecycle states, in order.
const HANDSHAKE = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

// Why decoding is held, as bits of Channel.#holds. #readOn() is the one place that decides whether
// to read on; a new reason is a new bit here, set with #hold() and cleared with #unhold().
/** Unread messages passed the high-water mark (cleared once recv() drains them to half of it). */
const HOLD_UNREAD = 1;
/** The peer does not read our tinyproto answers (cleared when the transport drains). */
const HOLD_ANSWERS = 2;
/** The next body waits for the listener's memory budget (cleared when some is released). */
const HOLD_MEMORY = 4;
/** The framing's handshake reads the bytes (cleared once it is done). */
const HOLD_HANDSHAKE = 8;
/** Holds the peer brought on itself (announcing a body that must wait): its timeouts still run. */
const HOLDS_OF_THE_PEER = HOLD_MEMORY;
/**
 * While decoding is held the channel still reads, undecoded, this many bytes ahead before it
 * pauses the transport, so a peer's end (FIN or reset) just behind what it sent is seen.
 */
export const READ_AHEAD = 64 * 1024;

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
  /** Messages received and not yet taken, and the recv() calls waiting for one. */
  readonly #receiveQueue: ReceiveQueue;
  /** Why decoding is held: HOLD_* bits, 0 = decode as bytes arrive. */
  #holds = 0;
  /** The rest of a chunk the decoder stopped in (its next body waits for memory), or the handshake's leftover: decoded first. */
  #undecoded: Buffer | null = null;
  /** Chunks read while decoding is held, in order, and their bytes plus MESSAGE_OVERHEAD each (the transport pauses at READ_AHEAD). */
  readonly #readAhead = new Deque<Buffer>();
  #readAheadBytes = 0;
  /** True while a chunk is in the decoder, which is not reentrant. */
  #decoding = false;
  /** Set once the peer's end has been read: bodies not wholly received are passed over, not allocated. */
  #atEof = false;
  /** The listener's memory budget for bodies of BODY_BUDGET_MIN and up (server side), and what this channel holds of it. */
  readonly #budget: BudgetShare | undefined;
  /** Frames decoded and their body bytes, for stats (the writer counts the sent ones). */
  #framesReceived = 0;
  #framesReceivedBytes = 0;
  /** Raw bytes read from the transport, read-ahead included (idleTimeout, and the heartbeat of a layer above). */
  #bytesRead = 0;
  /** Where reads come from without 'data' events (reader.ts): a socket's direct reader, a session. */
  readonly #reader: ReadSource | undefined;
  /** Released messages' memory, reused for large bodies (release()). */
  readonly #bodies = new BodyPool();
  /** Reads the raw bytes while the framing's handshake runs; null once it is done. */
  #handshakeReader: RawReader | null = null;

  // Send side.
  readonly #maxQueued: number;
  /** Writes frames: small ones batched into a slab once per tick, big bodies without a copy. */
  readonly #writer: FrameWriter;
  /** Sends that must wait (backpressure, the handshake, tinyproto's answers), written in order by one task. */
  readonly #backlog: SendBacklog;
  /** Sends that failed, and those nobody handled (close() reports them). */
  readonly #sendTally = new SendTally();

  /** Samples the decoder for headerTimeout and idleTimeout. */
  readonly #watchdog: Watchdog;
  /** Settles the send waiting for the peer's answer to its header (acknowledged framings). */
  #ackWaiter: ((error: Error | undefined) => void) | null = null;

  /** The direct receive path (reader.ts): large bodies in progress are read straight into. */
  readonly #readTarget: ReadTarget = {
    data: (chunk) => this.#onData(chunk),
    space: (min) =>
      this.#holds === 0 && this.#undecoded === null && this.#readAhead.length === 0
        ? (this.#decoder.bodySpace?.(min) ?? null)
        : null,
    filled: (n) => {
      this.#bytesRead += n;
      this.#decoder.bodyFilled!(n, this.#onFrame);
    },
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
      } else if (queued >= this.#sendHWM && (this.#holds & HOLD_ANSWERS) === 0) {
        this.#hold(HOLD_ANSWERS);
        this.#writer.flush();
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
      {
        maxMessageSize: this.maxMessageSize,
        reserve: this.#budget?.reserve,
        alloc: this.#bodies.alloc,
        // Closing (what still arrives is discarded) or at the peer's end (nothing more will come):
        // a body not wholly in hand is passed over, never allocated.
        discard: () => this.#state >= CLOSING || this.#atEof,
      },
      this.framing.acknowledged ? this.#ackIO : undefined,
    );
    this.#receiveQueue = new ReceiveQueue(this.framing.hasType, this.#onTake);
    this.#watchdog = new Watchdog(
      {
        decoder: this.#decoder,
        maxHeaderLength: this.framing.maxHeaderLength,
        active: () => this.#state === OPEN,
        bytesRead: () => this.#bytesRead,
        holding: () => this.#heldByUs(),
        blocking: () => this.peerBlocked,
        contended: () => this.#budget?.contended === true && (this.#holds & HOLD_MEMORY) === 0,
        fail: (error) => this.#fail(error),
      },
      o.headerTimeout,
      o.idleTimeout,
      o.bodyTimeout,
    );
    this.#stream = stream;
    const session = stream instanceof SessionStream ? stream : undefined;
    this.#writer = new FrameWriter(stream, this.framing, this.#sendTally, (cause) =>
      this.#error === undefined ? new ChannelClosedError('channel is closed', { cause }) : this.#closedError(),
    );
    this.#backlog = new SendBacklog({
      stream,
      writer: this.#writer,
      framing: this.framing,
      sendHighWaterMark: this.#sendHWM,
      maxQueuedBytes: this.#maxQueued,
      tally: this.#sendTally,
      handshake: () => (this.#state === HANDSHAKE ? this.ready : undefined),
      writable: () => !(this.#state === CLOSED || this.#failed || stream.writableEnded || stream.destroyed),
      closedError: () => this.#closedError(),
      queuedBytes: () => this.queuedBytes,
      expectAck: (length, answered) => {
        this.#ackWaiter = answered;
        this.#decoder.expectAck!(length);
      },
    });
    const socket = stream as Partial<net.Socket>;
    this.ip = typeof socket.remoteAddress === 'string' ? socket.remoteAddress : undefined;
    this.port = typeof socket.remotePort === 'number' ? socket.remotePort : undefined;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));

    if (session) session.messageCounts = { sent: () => this.#writer.sent, received: () => this.#framesReceived };
    const reader = (this.#reader = options.reader ?? session?.reader);
    if (reader === undefined) stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    stream.on('close', this.#onClose);
    stream.on('drain', this.#onDrain);

    const run = handshakeOf(this.framing, o.auth);
    if (run !== undefined) {
      this.#state = HANDSHAKE;
      this.#holds = HOLD_HANDSHAKE;
      this.#handshakeReader = new RawReader(stream, this.#recvHWM);
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
  static connect(url: `ws://${string}` | `wss://${string}`, options?: ConnectOptions): Promise<Channel>; // docs/websocket.md
  static connect(to: string | ConnectOptions, port?: number | ConnectOptions, o?: ConnectOptions): Promise<Channel> {
    const opts = connectOptionsOf(to, port, o);
    if (opts.resume !== undefined && opts.resume !== false) return connectSession(opts, createChannel); // TCP, TLS, Unix or WebSocket
    if (opts.url !== undefined) return connectWebSocket(opts, createChannel);
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
   * Once the promise resolves, `data` is the caller's again (to modify, reuse or release): a body
   * up to 16 KiB is copied into the writer's slab, so its send resolves at once; a bigger one is
   * written without a copy and its send resolves once the transport's write of it has called back.
   * A send that fails because the channel ended rejects its promise, and the same failure is
   * reported through `closed` and recv(); an un-awaited send's rejection is not reported as unhandled.
   *
   * The promise returned carries no identity: an uncontended send of a copied body returns one
   * shared, already-resolved promise; every other send a promise of its own. Never tell sends
   * apart (or skip watching one) by comparing their promises.
   */
  send(data: Uint8Array | string, options?: SendOptions): Promise<void> {
    if (this.#state > OPEN) return SendPromise.failed(this.#sendTally, this.#closedError());
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
      // Uncontended: no queue; a copied body needs no promise of its own.
      return this.#writer.write(body, type) ?? RESOLVED;
    }
    return this.#backlog.enqueue(body, type, options?.signal);
  }

  #uncontended(): boolean {
    const queued = this.#stream.writableLength + this.#writer.buffered;
    return this.#state === OPEN && this.framing.acknowledged !== true && this.#backlog.idle && queued < this.#sendHWM;
  }

  /**
   * @internal `head[0, headLength)` then `payload` as one message (RequestChannel's envelope),
   * joined in the write slab. Settles as send() does, with the same ownership and promise contract.
   */
  sendJoined(head: Buffer, headLength: number, payload: Buffer): Promise<void> {
    if (headLength + payload.length <= this.#sendLimit && this.#uncontended()) {
      return this.#writer.writeJoined(head, headLength, payload) ?? RESOLVED;
    }
    return this.send(Buffer.concat([head.subarray(0, headLength), payload]));
  }

  #closedError(): Error {
    return closedError(this.#error);
  }

  /** The channel ended: the send waiting for a tinyproto answer, then every queued send, reject with `error`. */
  #rejectBacklog(error: Error): void {
    if (this.#ackWaiter !== null) this.#ackIO.acked(error);
    this.#backlog.reject(error);
  }

  readonly #onDrain = (): void => {
    if ((this.#holds & HOLD_ANSWERS) !== 0) this.#unhold(HOLD_ANSWERS); // closing too: the peer's end must arrive
    this.#backlog.drained();
  };

  // ---------------------------------------------------------------- receiving

  /**
   * Receive the next message. Concurrent calls resolve in call order with messages in wire order.
   * A call that is aborted or times out takes no message: that message goes to the next caller.
   * Rejects with ChannelClosedError once the peer has closed and every message has been read, or
   * with the error that ended the channel.
   */
  recv(options?: RecvOptions): Promise<Buffer> {
    return this.#receiveQueue.recv(options, false) as Promise<Buffer>;
  }

  /**
   * Take the next message if one is already buffered and no recv() is waiting, without a promise;
   * undefined otherwise (then `await recv()`). The fastest way to drain a busy channel:
   * `const msg = ch.tryRecv() ?? (await ch.recv())`.
   */
  tryRecv(): Buffer | undefined {
    return this.#receiveQueue.tryRecv();
  }

  /** Like recv(), with the frame's type field: `{ type, data }`. */
  recvFrame(options?: RecvOptions): Promise<Frame> {
    return this.#receiveQueue.recv(options, true) as Promise<Frame>;
  }

  /** A message left the receive queue (taken, or handed straight to a waiting recv()): it is no longer held. */
  readonly #onTake = (body: Buffer): void => {
    this.#releaseBody(body);
    if ((this.#holds & HOLD_UNREAD) !== 0 && this.#receiveQueue.bytes <= this.#recvHWM >>> 1) this.#unhold(HOLD_UNREAD);
  };

  /** A body no longer held by this channel gives its bytes back to the memory budget. */
  #releaseBody(body: Buffer): void {
    if (body.length >= BODY_BUDGET_MIN && this.#budget !== undefined) this.#budget.release(body.length);
  }

  readonly #onFrame = (body: Buffer, type: number): void => {
    if (this.#state >= CLOSING) {
      // Closed locally (the peer's end decodes what came before it first): the user asked for no more.
      this.#releaseBody(body);
      return;
    }
    this.#framesReceived++;
    this.#framesReceivedBytes += body.length;
    if (!this.#receiveQueue.push(body, type) && this.#receiveQueue.bytes > this.#recvHWM) this.#hold(HOLD_UNREAD);
  };

  // ---------------------------------------------------------------- flow control

  #hold(reason: number): void {
    this.#holds |= reason;
  }

  #unhold(reason: number): void {
    this.#holds &= ~reason;
    if (this.#holds === 0) this.#readOn();
  }

  /** True while decoding is held for a reason of ours, not the peer's: its timeouts wait. */
  #heldByUs(): boolean {
    return (this.#holds & ~HOLDS_OF_THE_PEER) !== 0;
  }

  /**
   * The one decision about reading: while any hold remains, what arrives is read ahead (up to
   * READ_AHEAD bytes, then the transport pauses); once none does, decode what was read ahead, in
   * order, and read on.
   */
  #readOn(): void {
    if (this.#decoding) return; // a hold cleared from inside the decoder: the loop around it reads on
    while (this.#holds === 0 && !this.#failed && this.#state !== CLOSED) {
      let chunk = this.#undecoded;
      if (chunk !== null) this.#undecoded = null;
      else {
        chunk = this.#readAhead.shift() ?? null;
        if (chunk === null) {
          if (this.#stream.isPaused()) this.#stream.resume();
          return;
        }
        this.#readAheadBytes -= chunk.length + MESSAGE_OVERHEAD;
      }
      this.#decode(chunk);
    }
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#bytesRead += chunk.length;
    if (this.#handshakeReader !== null) this.#handshakeReader.feed(chunk);
    else if (this.#holds === 0 && this.#undecoded === null && this.#readAhead.length === 0) this.#decode(chunk);
    else {
      // Held: read ahead, in order, without decoding; pause the transport once that is full.
      this.#readAhead.push(chunk);
      this.#readAheadBytes += chunk.length + MESSAGE_OVERHEAD; // its object counts too: a trickle of 1-byte reads
      if (this.#readAheadBytes >= READ_AHEAD && !this.#stream.isPaused()) this.#stream.pause();
    }
  };

  /** Push one chunk through the decoder; if its next body waits for memory, keep the rest and hold. */
  #decode(chunk: Buffer): void {
    const decoder = this.#decoder;
    this.#decoding = true;
    try {
      if (this.#budget === undefined) decoder.push(chunk, this.#onFrame);
      else {
        const start = decoder.offset;
        decoder.push(chunk, this.#onFrame);
        const used = decoder.offset - start;
        if (used < chunk.length) {
          this.#undecoded = chunk.subarray(used);
          this.#hold(HOLD_MEMORY);
          this.#budget.wait(this.#memoryReleased);
        }
      }
    } catch (error) {
      // Bad bytes from the peer; a malformed answer to our tinyproto header fails the send waiting for it with that error.
      if (this.#ackWaiter !== null && error instanceof ProtocolError) this.#ackIO.acked(error);
      this.#fail(error as Error);
    } finally {
      this.#decoding = false;
    }
  }

  /** Memory was released somewhere: try the body that waits for it again. */
  readonly #memoryReleased = (): void => {
    if ((this.#holds & HOLD_MEMORY) !== 0) this.#unhold(HOLD_MEMORY);
  };

  /**
   * The peer's end has been read: decode everything read before it, whatever holds reading (the
   * bytes are in memory already, and recv() delivers them before it reports the end). A body not
   * wholly among them can never complete, so it is passed over rather than allocated.
   */
  #decodeToEnd(): void {
    this.#atEof = true;
    const parts: Buffer[] = [];
    if (this.#undecoded !== null) parts.push(this.#undecoded);
    for (let c = this.#readAhead.shift(); c !== undefined; c = this.#readAhead.shift()) parts.push(c);
    this.#undecoded = null;
    this.#readAheadBytes = 0;
    // One chunk, so a body that lies within what was read is seen whole (a view, no allocation).
    if (parts.length > 0) this.#decode(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    this.#undecoded = null; // the rest of a body that can never complete
  }

  /** The transport closed or failed: what was read ahead is not decoded. */
  #dropReadAhead(): void {
    this.#undecoded = null;
    this.#readAhead.drain();
    this.#readAheadBytes = 0;
  }

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
    return this.#receiveQueue.length;
  }

  /**
   * @internal Raw bytes read from the transport so far, bytes read ahead included. A layer above
   * (RequestChannel's heartbeat) compares it between ticks: it moves whenever the peer reached us.
   */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /**
   * @internal True while the channel, for reasons of its own (unread messages, unread tinyproto
   * answers), has stopped reading with its read-ahead full: the peer cannot reach us now, so its
   * silence is not its fault. Waiting for the memory budget is the peer's doing and does not count.
   */
  get peerBlocked(): boolean {
    return this.#heldByUs() && this.#stream.isPaused();
  }

  /** @internal True while decoding is held for any reason (what arrives is read ahead, undecoded): for tests. */
  get holdsReading(): boolean {
    return this.#holds !== 0;
  }

  /** @internal Undecoded bytes read ahead while decoding is held (at most about READ_AHEAD): for tests. */
  get readAheadBytes(): number {
    return this.#readAheadBytes + (this.#undecoded?.length ?? 0);
  }

  /** Messages and body bytes sent and received so far (see ChannelStats); a new object each read. */
  get stats(): ChannelStats {
    const w = this.#writer;
    return {
      messagesSent: w.sent,
      messagesReceived: this.#framesReceived,
      bytesSent: w.sentBytes,
      bytesReceived: this.#framesReceivedBytes,
      bytesReadDirect: this.#reader?.directBytes ?? 0,
      sendsFailed: this.#sendTally.failed,
      ...(this.#stream instanceof SessionStream && { session: this.#stream.stats }),
    };
  }

  /** Outbound bytes not yet written to the transport (its buffer, batched frames, queued sends): what `maxQueuedBytes` bounds. */
  get queuedBytes(): number {
    return this.#stream.writableLength + this.#writer.buffered + this.#backlog.bytes;
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
    const timeout = closeTimeout(options);
    if (timeout instanceof Error) return Promise.reject(timeout); // an async API rejects, never throws
    const wasOpen = this.#state <= OPEN;
    if (this.#state < CLOSING) this.#state = CLOSING;
    if (!(this.#error instanceof ChannelClosedError) || wasOpen) {
      this.#error = new ChannelClosedError('channel was closed', this.#error ? { cause: this.#error } : undefined);
    }
    // Discard unread messages and fail waiting recvs: the user asked for no more.
    for (const body of this.#receiveQueue.clear()) this.#releaseBody(body);
    this.#receiveQueue.end(this.#error);
    // Keep reading (and discarding, without allocating a body) so the peer's end arrives.
    this.#holds = 0;
    this.#readOn();
    (this.#closing = this.#closeGracefully(timeout)).catch(noop);
    return this.#closing;
  }

  async #closeGracefully(timeout: number): Promise<void> {
    const flushed = (async () => {
      await this.#backlog.whenIdle();
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
    const tally = this.#sendTally;
    if (tally.unseen > 0) throw new SendsFailedError(tally.unseen, { cause: tally.lastUnseen });
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
    this.#handshakeReader?.fail(this.#error!);
    this.#receiveQueue.end(this.#error!);
  }

  readonly #onEnd = (): void => {
    if (this.#handshakeReader === null) this.#decodeToEnd();
    if (this.#failed) return;
    if (this.#handshakeReader !== null || !this.#decoder.atBoundary) {
      const what =
        this.#handshakeReader !== null
          ? 'connection closed during the handshake'
          : 'connection closed in the middle of a frame';
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
    this.#dropReadAhead();
    this.#budget?.releaseAll(); // unread and unfinished bodies: nobody will take them now
    this.#resolveClosed(this.#failed ? this.#error : undefined);
    publishClose(this, this.#failed ? this.#error : undefined);
  };

  async #handshake(run: (io: HandshakeIO) => Promise<void>, isServer: boolean, timeout: number): Promise<void> {
    const raw = this.#handshakeReader!;
    const stream = this.#stream;
    try {
      await runHandshake(stream, raw, run, isServer, timeout, this.framing.name);
    } catch (error) {
      this.#fail(error as Error);
      throw this.#error;
    }
    if (this.#state !== HANDSHAKE) throw this.#closedError();
    this.#state = OPEN;
    this.#handshakeReader = null;
    this.#watchdog.start();
    publishConnect(this, isServer);
    const rest = raw.leftover();
    if (rest.length > 0) this.#undecoded = rest; // before anything read after it
    this.#unhold(HOLD_HANDSHAKE);
  }
}

defineStreams(Channel); // ch.readable and ch.writable (streams.ts)
/** How connect() and Listener make a channel for a connected stream. */
const createChannel: ChannelFactory = (stream, options) => new Channel(stream, options);
