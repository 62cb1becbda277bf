/**
 * The browser's Channel: the client side of a msgchannel connection over the WebSocket API, with
 * the Node Channel's API where the browser allows it (send/recv/tryRecv, async iteration,
 * readable/writable Web Streams, close/destroy/closed) and Uint8Array where Node has Buffer.
 * Its own small class rather than the Node one, which is built on node:stream's Duplex: it shares
 * the wire (the MSG framing's bytes in binary WebSocket messages, docs/websocket.md), the errors
 * and the request envelope, and decodes with the same strictness (./msg.ts).
 *
 * Backpressure: send() waits while the WebSocket's `bufferedAmount` is at `sendHighWaterMark`
 * (the browser has no 'drain' event: it looks again every few milliseconds), and refuses past
 * `maxQueuedBytes`. Receiving cannot be paused through the WebSocket API, so unread messages are
 * bounded instead: past `maxUnreadBytes` the channel fails with SlowConsumerError.
 */
import {
  ChannelClosedError,
  MessageTooLargeError,
  SendQueueFullError,
  SlowConsumerError,
  TimeoutError,
  UnexpectedEofError,
} from '../errors.js';
import { MsgDecoder, msgHeader } from './msg.js';

/** Options of the browser's Channel.connect(). */
export interface BrowserConnectOptions {
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

interface Waiter {
  resolve(message: Uint8Array): void;
  reject(error: Error): void;
}

interface QueuedSend {
  body: Uint8Array;
  resolve(): void;
  reject(error: Error): void;
}

export class Channel implements AsyncIterable<Uint8Array> {
  readonly maxMessageSize: number;
  /** Resolves when the WebSocket has closed: undefined after a clean close, the error otherwise. Never rejects. */
  readonly closed: Promise<Error | undefined>;
  readonly #ws: WebSocket;
  readonly #decoder: MsgDecoder;
  readonly #sendHWM: number;
  readonly #maxQueued: number;
  readonly #maxUnread: number;
  readonly #inbox: Uint8Array[] = [];
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
    this.#sendHWM = options.sendHighWaterMark ?? 1024 * 1024;
    this.#maxQueued = options.maxQueuedBytes ?? 16 * 1024 * 1024;
    this.#maxUnread = options.maxUnreadBytes ?? 64 * 1024 * 1024;
    this.#decoder = new MsgDecoder(this.maxMessageSize);
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    ws.addEventListener('message', this.#onMessage);
    ws.addEventListener('close', this.#onClose);
  }

  // ------------------------------------------------------------ sending

  /**
   * Send one message (strings as UTF-8). Resolves once it is handed to the WebSocket (which copies
   * it: `data` is the caller's again at once); while the WebSocket buffers `sendHighWaterMark` or
   * more, it first waits. Sends go out in call order.
   */
  send(data: Uint8Array | string): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#closedError());
    const body = typeof data === 'string' ? encoder.encode(data) : data;
    if (!(body instanceof Uint8Array)) return Promise.reject(new TypeError('Expected a Uint8Array or a string'));
    if (body.length > this.maxMessageSize) {
      return Promise.reject(new MessageTooLargeError(body.length, this.maxMessageSize, 'send'));
    }
    if (this.#queue.length === 0 && this.#ws.bufferedAmount < this.#sendHWM) {
      this.#write(body);
      return Promise.resolve();
    }
    if (this.#queue.length > 0 && this.#queuedBytes + body.length > this.#maxQueued) {
      return Promise.reject(new SendQueueFullError(body.length, this.#queuedBytes, this.#maxQueued));
    }
    return new Promise<void>((resolve, reject) => {
      // Not copied: `data` is the caller's again only once this promise resolves (as in Node).
      this.#queue.push({ body, resolve, reject });
      this.#queuedBytes += body.length;
      this.#schedulePoll();
    });
  }

  /** Outbound bytes not yet on the network: the WebSocket's buffer and the sends waiting behind it. */
  get queuedBytes(): number {
    return this.#ws.bufferedAmount + this.#queuedBytes;
  }

  #write(body: Uint8Array): void {
    const ws = this.#ws;
    const header = msgHeader(body.length);
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
      this.#write(next.body);
      next.resolve();
    }
    if (this.#queue.length > 0 && this.#error === undefined) this.#schedulePoll();
  };

  // ------------------------------------------------------------ receiving

  /** The next message; rejects with ChannelClosedError after the last one once the channel has ended. */
  recv(): Promise<Uint8Array> {
    const message = this.tryRecv();
    if (message !== undefined) return Promise.resolve(message);
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** The next message if one is buffered and no recv() waits; undefined otherwise. */
  tryRecv(): Uint8Array | undefined {
    if (this.#waiters.length > 0 || this.#inboxHead === this.#inbox.length) return undefined;
    const message = this.#inbox[this.#inboxHead]!;
    this.#inbox[this.#inboxHead++] = undefined as unknown as Uint8Array;
    if (this.#inboxHead === this.#inbox.length) {
      this.#inbox.length = 0;
      this.#inboxHead = 0;
    }
    this.#unread -= message.length + MESSAGE_OVERHEAD;
    return message;
  }

  /** Messages received and not yet taken. */
  get bufferedMessages(): number {
    return this.#inbox.length - this.#inboxHead;
  }

  readonly #onFrame = (body: Uint8Array): void => {
    if (this.#closing !== undefined || this.#failed) return; // closed locally (the user asked for no more) or failed
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve(body);
      return;
    }
    this.#inbox.push(body);
    this.#unread += body.length + MESSAGE_OVERHEAD;
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
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      let message: Uint8Array;
      try {
        message = this.tryRecv() ?? (await this.recv());
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
      yield message;
    }
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
