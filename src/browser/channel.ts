/**
 * The browser's Channel: the client side of a msgchannel connection over the WebSocket API, with
 * the Node Channel's API where the browser allows it (send/recv/tryRecv/recvFrame, async
 * iteration, readable/writable Web Streams, close/destroy/closed) and Uint8Array where Node has
 * Buffer. Its own small class rather than the Node one, which is built on node:stream's Duplex: it
 * shares the wire (a framing's bytes in binary WebSocket messages, docs/websocket.md; MSG by
 * default, or a length-prefixed framing with a type field for a TypedChannel), the errors, the
 * iterator and the request envelope, and decodes with the same strictness (./msg.ts,
 * ./lengthPrefixed.ts).
 *
 * Backpressure: send() waits while the WebSocket's `bufferedAmount` is at `sendHighWaterMark`
 * (the browser has no 'drain' event: it looks again every few milliseconds), and refuses past
 * `maxQueuedBytes`. Receiving cannot be paused through the WebSocket API, so unread messages are
 * bounded instead: past `maxUnreadBytes` the channel fails with SlowConsumerError.
 */
import { messages } from '../core/iterator.js';
import {
  ChannelClosedError,
  MessageTooLargeError,
  SendQueueFullError,
  SlowConsumerError,
  TimeoutError,
  UnexpectedEofError,
} from '../errors.js';
import { checkSendType } from '../framing/types.js';
import { MAX_TIMER_DELAY, checkTimeout } from '../validate.js';
import type { BrowserDecoder, BrowserFraming } from './framing.js';
import { msg } from './msg.js';

/** Options of the browser's Channel.connect(). */
export interface BrowserConnectOptions {
  /**
   * The wire format, as the server's: `msg` (the default), or a length-prefixed framing
   * (`lengthPrefixed()`, `ltprotocol()`, `int32`); a TypedChannel needs one with a type field.
   * @default msg
   */
  framing?: BrowserFraming;
  /** Largest message accepted or sent, in bytes. @default 64 MiB */
  maxMessageSize?: number;
  /** send() waits while the WebSocket buffers this many bytes. @default 1 MiB */
  sendHighWaterMark?: number;
  /** Most bytes of sends waiting behind sendHighWaterMark; a send past it is refused (SendQueueFullError). @default 16 MiB */
  maxQueuedBytes?: number;
  /** Most bytes of received messages not yet taken (plus 64 per message); past it the channel fails (SlowConsumerError). @default 64 MiB */
  maxUnreadBytes?: number;
  /** Milliseconds to wait for the connection. @default no limit */
  timeout?: number;
  /** Aborts connecting. */
  signal?: AbortSignal;
  /** WebSocket subprotocols to offer. */
  protocols?: string | string[];
  /** The WebSocket class (another implementation, or Node's `ws` in tests). @default globalThis.WebSocket */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
}

/** What a message costs beyond its bytes (as the Node Channel counts it). */
const MESSAGE_OVERHEAD = 64;
/** The most bytes one WebSocket message carries from us (the server's default maxPayload). */
const WS_CHUNK = 64 * 1024;
/** Bodies up to this size are joined with their header into one WebSocket message. */
const JOIN_LIMIT = 16 * 1024;
/** How often a send waiting on bufferedAmount looks again, in ms. */
const DRAIN_POLL = 4;

const encoder = new TextEncoder();

/** A received message and its type (0 for framings without a type field). */
export interface BrowserFrame {
  readonly type: number;
  readonly data: Uint8Array;
}

/** Per-call options of recv() and recvFrame(). */
export interface BrowserRecvOptions {
  /** Aborting rejects this recv with the signal's reason; it takes no message. */
  signal?: AbortSignal;
  /** Milliseconds to wait; then it rejects with TimeoutError and takes no message. `0` or `Infinity`: no limit. */
  timeout?: number;
}

/** Per-call options of send(). */
export interface BrowserSendOptions {
  /** The frame's type (framings with a type field). @default 0 */
  type?: number;
  /** Aborting before the message is handed to the WebSocket rejects with the signal's reason and sends nothing. */
  signal?: AbortSignal | undefined;
}

interface Waiter {
  deliver(frame: BrowserFrame): void;
  reject(error: Error): void;
}

interface QueuedSend {
  header: Uint8Array;
  body: Uint8Array;
  resolve(): void;
  reject(error: Error): void;
}

export class Channel implements AsyncIterable<Uint8Array> {
  readonly maxMessageSize: number;
  /** The wire format (`msg` unless `framing` said otherwise). */
  readonly framing: BrowserFraming;
  /** Resolves when the WebSocket has closed: undefined after a clean close, the error otherwise. Never rejects. */
  readonly closed: Promise<Error | undefined>;
  readonly #ws: WebSocket;
  readonly #decoder: BrowserDecoder;
  readonly #sendHWM: number;
  readonly #maxQueued: number;
  readonly #maxUnread: number;
  readonly #inbox: BrowserFrame[] = [];
  #inboxHead = 0;
  #unread = 0;
  readonly #waiters: Waiter[] = [];
  readonly #queue: QueuedSend[] = [];
  #queuedBytes = 0;
  #poll: ReturnType<typeof setTimeout> | undefined;
  #error: Error | undefined;
  #failed = false;
  #closing: Promise<void> | undefined;
  #resolveClosed!: (error: Error | undefined) => void;
  #streams: { readable?: ReadableStream<Uint8Array>; writable?: WritableStream<Uint8Array | string> } = {};

  /** Connect to a msgchannel Server (or Channel.listen) serving WebSocket: `ws://host:port/path` or `wss://...`. */
  static connect(url: string, options: BrowserConnectOptions = {}): Promise<Channel> {
    const Impl = options.WebSocket ?? globalThis.WebSocket;
    return new Promise<Channel>((resolve, reject) => {
      if (options.signal?.aborted) {
        reject(options.signal.reason);
        return;
      }
      const ws = new Impl(url, options.protocols);
      ws.binaryType = 'arraybuffer';
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        ws.removeEventListener('open', onOpen);
        ws.removeEventListener('close', onFail);
      };
      const fail = (error: unknown): void => {
        done();
        ws.close();
        reject(error);
      };
      const onAbort = (): void => fail(options.signal!.reason);
      const onFail = (): void => fail(new ChannelClosedError(`could not connect to ${url}`));
      const onOpen = (): void => {
        done();
        resolve(new Channel(ws, options));
      };
      ws.addEventListener('open', onOpen);
      ws.addEventListener('close', onFail);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.timeout !== undefined) {
        timer = setTimeout(
          () => fail(new TimeoutError(`connect to ${url} timed out after ${options.timeout} ms`)),
          options.timeout,
        );
      }
    });
  }

  /** Wrap an open WebSocket (Channel.connect does this for you). */
  constructor(ws: WebSocket, options: BrowserConnectOptions = {}) {
    this.#ws = ws;
    ws.binaryType = 'arraybuffer';
    this.maxMessageSize = options.maxMessageSize ?? 64 * 1024 * 1024;
    this.framing = options.framing ?? msg;
    this.#sendHWM = options.sendHighWaterMark ?? 1024 * 1024;
    this.#maxQueued = options.maxQueuedBytes ?? 16 * 1024 * 1024;
    this.#maxUnread = options.maxUnreadBytes ?? 64 * 1024 * 1024;
    this.#decoder = this.framing.createDecoder(this.maxMessageSize);
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    ws.addEventListener('message', this.#onMessage);
    ws.addEventListener('close', this.#onClose);
  }

  // ------------------------------------------------------------ sending

  /**
   * Send one message (strings as UTF-8), with `type` on a framing with a type field. Resolves once
   * it is handed to the WebSocket (which copies it: `data` is the caller's again at once); while the
   * WebSocket buffers `sendHighWaterMark` or more, it first waits. Sends go out in call order.
   */
  send(data: Uint8Array | string, options?: BrowserSendOptions): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#closedError());
    const body = typeof data === 'string' ? encoder.encode(data) : data;
    if (!(body instanceof Uint8Array)) return Promise.reject(new TypeError('Expected a Uint8Array or a string'));
    if (body.length > this.maxMessageSize) {
      return Promise.reject(new MessageTooLargeError(body.length, this.maxMessageSize, 'send'));
    }
    const type = options?.type ?? 0;
    const signal = options?.signal;
    let header: Uint8Array;
    try {
      const refused = checkSendType(this.framing, type);
      if (refused !== undefined) throw refused;
      header = this.framing.header(body.length, type);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.#queue.length === 0 && this.#ws.bufferedAmount < this.#sendHWM) {
      this.#write(header, body);
      return Promise.resolve();
    }
    if (this.#queue.length > 0 && this.#queuedBytes + body.length > this.#maxQueued) {
      return Promise.reject(new SendQueueFullError(body.length, this.#queuedBytes, this.#maxQueued));
    }
    return new Promise<void>((resolve, reject) => {
      // Not copied: `data` is the caller's again only once this promise resolves (as in Node).
      const onAbort = (): void => {
        const at = this.#queue.indexOf(queued);
        if (at < 0) return; // already written
        this.#queue.splice(at, 1);
        this.#queuedBytes -= body.length;
        reject(signal!.reason as Error);
      };
      const done = (): void => signal?.removeEventListener('abort', onAbort);
      const queued: QueuedSend = {
        header,
        body,
        resolve: () => {
          done();
          resolve();
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(queued);
      this.#queuedBytes += body.length;
      this.#schedulePoll();
    });
  }

  /** Outbound bytes not yet on the network: the WebSocket's buffer and the sends waiting behind it. */
  get queuedBytes(): number {
    return this.#ws.bufferedAmount + this.#queuedBytes;
  }

  #write(header: Uint8Array, body: Uint8Array): void {
    const ws = this.#ws;
    if (body.length <= JOIN_LIMIT) {
      const frame = new Uint8Array(header.length + body.length);
      frame.set(header);
      frame.set(body, header.length);
      ws.send(frame);
      return;
    }
    ws.send(header);
    for (let at = 0; at < body.length; at += WS_CHUNK) ws.send(body.subarray(at, at + WS_CHUNK));
  }

  #schedulePoll(): void {
    if (this.#poll === undefined) this.#poll = setTimeout(this.#drain, DRAIN_POLL);
  }

  readonly #drain = (): void => {
    this.#poll = undefined;
    while (this.#queue.length > 0 && this.#ws.bufferedAmount < this.#sendHWM && this.#error === undefined) {
      const next = this.#queue.shift()!;
      this.#queuedBytes -= next.body.length;
      this.#write(next.header, next.body);
      next.resolve();
    }
    if (this.#queue.length > 0 && this.#error === undefined) this.#schedulePoll();
  };

  // ------------------------------------------------------------ receiving

  /**
   * The next message; rejects with ChannelClosedError after the last one once the channel has
   * ended. Calls resolve in call order; one that is aborted or times out takes no message.
   */
  recv(options?: BrowserRecvOptions): Promise<Uint8Array> {
    const frame = this.#take();
    if (frame !== undefined) return Promise.resolve(frame.data);
    return this.#wait(options, (resolve) => (f) => resolve(f.data));
  }

  /** The next message with its type (`{ type, data }`), as recv(). */
  recvFrame(options?: BrowserRecvOptions): Promise<BrowserFrame> {
    const frame = this.#take();
    if (frame !== undefined) return Promise.resolve(frame);
    return this.#wait(options, (resolve) => resolve);
  }

  /** The next message if one is buffered and no recv() waits; undefined otherwise. */
  tryRecv(): Uint8Array | undefined {
    return this.#take()?.data;
  }

  #take(): BrowserFrame | undefined {
    if (this.#waiters.length > 0 || this.#inboxHead === this.#inbox.length) return undefined;
    const frame = this.#inbox[this.#inboxHead]!;
    this.#inbox[this.#inboxHead++] = undefined as unknown as BrowserFrame;
    if (this.#inboxHead === this.#inbox.length) {
      this.#inbox.length = 0;
      this.#inboxHead = 0;
    }
    this.#unread -= frame.data.length + MESSAGE_OVERHEAD;
    return frame;
  }

  /** A waiter for the next frame, in call order, leaving the queue when aborted or timed out. */
  #wait<T>(
    options: BrowserRecvOptions | undefined,
    deliverTo: (resolve: (value: T) => void) => (frame: BrowserFrame) => void,
  ): Promise<T> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    let timeout: number | undefined;
    try {
      timeout = checkTimeout('timeout', options?.timeout); // 0 and Infinity: no limit (0), as in Node
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const leave = (error: Error): void => {
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        settle();
        reject(error);
      };
      const onAbort = (): void => leave(signal!.reason as Error);
      const settle = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const deliver = deliverTo(resolve);
      const waiter: Waiter = {
        deliver: (frame) => {
          settle();
          deliver(frame);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      };
      this.#waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      // Longer than a timer holds (2^31 - 1 ms, 24.8 days) is waited without one, never cut to 1 ms.
      if (timeout !== undefined && timeout > 0 && timeout <= MAX_TIMER_DELAY) {
        timer = setTimeout(() => leave(new TimeoutError(`recv timed out after ${timeout} ms`)), timeout);
      }
    });
  }

  /** Messages received and not yet taken. */
  get bufferedMessages(): number {
    return this.#inbox.length - this.#inboxHead;
  }

  readonly #onFrame = (data: Uint8Array, type: number): void => {
    if (this.#closing !== undefined || this.#failed) return; // closed locally (the user asked for no more) or failed
    const frame: BrowserFrame = { type, data };
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter.deliver(frame);
      return;
    }
    this.#inbox.push(frame);
    this.#unread += data.length + MESSAGE_OVERHEAD;
    if (this.#unread > this.#maxUnread) {
      this.#fail(
        new SlowConsumerError(`more than maxUnreadBytes ${this.#maxUnread} received and not read`, this.#unread),
      );
    }
  };

  readonly #onMessage = (event: MessageEvent): void => {
    if (this.#failed) return;
    const data: unknown = event.data;
    if (!(data instanceof ArrayBuffer)) {
      this.#fail(new ChannelClosedError('the server sent a text WebSocket message (msgchannel sends binary only)'));
      return;
    }
    try {
      this.#decoder.push(new Uint8Array(data), this.#onFrame);
    } catch (error) {
      this.#fail(error as Error);
    }
  };

  readonly #onClose = (event: { code: number; reason: string }): void => {
    clearTimeout(this.#poll);
    if (!this.#failed && this.#closing === undefined && ![1000, 1001, 1005, 1006].includes(event.code)) {
      // The server reported an error (1002 protocol error, 1009 too big, 1011, ...).
      const why = event.reason === '' ? '' : ` (${event.reason})`;
      this.#fail(
        new ChannelClosedError(`the server closed the WebSocket with code ${event.code}${why}`, {
          reason: String(event.code),
        }),
      );
    } else if (!this.#failed && !this.#decoder.atBoundary) {
      this.#fail(
        new UnexpectedEofError('connection closed in the middle of a frame', { offset: this.#decoder.offset }),
      );
    }
    this.#error ??= new ChannelClosedError('peer closed the connection');
    this.#rejectAll();
    this.#resolveClosed(this.#failed ? this.#error : undefined);
  };

  #fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    if (this.#error === undefined || this.#error instanceof ChannelClosedError) this.#error = error;
    this.#rejectAll();
    this.#ws.close(error instanceof MessageTooLargeError ? 1009 : 1002);
  }

  #rejectAll(): void {
    for (let w = this.#waiters.shift(); w !== undefined; w = this.#waiters.shift()) w.reject(this.#error!);
    for (let s = this.#queue.shift(); s !== undefined; s = this.#queue.shift()) s.reject(this.#closedError());
    this.#queuedBytes = 0;
  }

  #closedError(): Error {
    const error = this.#error;
    return error instanceof ChannelClosedError
      ? error
      : new ChannelClosedError('channel is closed', error === undefined ? undefined : { cause: error });
  }

  // ------------------------------------------------------------ streams and iteration

  /** Messages until the peer closes at a frame boundary; any other error is thrown. Breaking out does not close. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array, undefined> {
    return messages(this); // the Node Channel's iterator
  }

  /** The messages as a ReadableStream, pulled one at a time (made at first use). */
  get readable(): ReadableStream<Uint8Array> {
    const iterator = this[Symbol.asyncIterator]();
    return (this.#streams.readable ??= new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const next = await iterator.next();
          if (next.done === true) controller.close();
          else controller.enqueue(next.value);
        },
        cancel: () => void iterator.return?.(),
      },
      { highWaterMark: 0 },
    ));
  }

  /** A WritableStream whose writes are send()s; close() closes the channel, abort() destroys it. */
  get writable(): WritableStream<Uint8Array | string> {
    return (this.#streams.writable ??= new WritableStream<Uint8Array | string>(
      {
        write: (chunk) => this.send(chunk),
        close: () => this.close(),
        abort: (reason) => this.destroy(reason instanceof Error ? reason : undefined),
      },
      { highWaterMark: 1 },
    ));
  }

  // ------------------------------------------------------------ lifecycle

  /** True until the channel starts closing. */
  get isOpen(): boolean {
    return this.#error === undefined;
  }

  /** Send what is queued, close the WebSocket (code 1000) and resolve once it is closed. Idempotent. */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      while (this.#queue.length > 0 && !this.#failed) await new Promise((r) => setTimeout(r, DRAIN_POLL));
      this.#error ??= new ChannelClosedError('channel was closed');
      for (let w = this.#waiters.shift(); w !== undefined; w = this.#waiters.shift()) w.reject(this.#error);
      this.#inbox.length = 0;
      this.#inboxHead = 0;
      this.#ws.close(1000);
      await this.closed;
    })();
    return this.#closing;
  }

  /** Close at once; pending operations reject with `error` (or ChannelClosedError). */
  destroy(error?: Error): void {
    if (error !== undefined) this.#fail(error);
    else {
      this.#error ??= new ChannelClosedError('channel was destroyed');
      this.#rejectAll();
      this.#ws.close(1000);
    }
  }
}
