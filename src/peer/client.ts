/**
 * Client: a connection that reconnects by itself with exponential backoff and jitter (Twisted's
 * ReconnectingClientFactory defaults, as ltprotocol's LTTwistedClient), callbacks, and an explicit
 * policy for sends made while disconnected. Built on Channel.connect() and, with a Protocol, on
 * TypedChannel / PacketmqSession. It never touches a socket itself.
 */
import { Channel } from '../core/channel.js';
import type { ChannelOptions, ConnectOptions } from '../core/options.js';
import {
  ChannelClosedError,
  ConnectionRefusedError,
  MemoryServerNotFoundError,
  ReconnectFailedError,
  TimeoutError,
} from '../errors.js';
import { reportError } from '../report.js';
import { PacketmqSession } from '../typed/packetmq.js';
import type { MessageMap } from '../typed/protocol.js';
import type { TypedChannel } from '../typed/typedChannel.js';
import { after, noop, settlesWithin, sleep, type Timer } from '../util.js';
import { checkDelay, checkFinite, checkNumber, checkTimeout } from '../validate.js';
import { checkConnectOptions } from '../core/options.js';
import { checkWebSocketConnectOptions, isWebSocketUrl } from '../ws/connect.js';
import { checkResume } from '../session/options.js';
import type { RequestContext, RequestOptions, RequestReply } from '../rpc/options.js';
import type { RequestChannel } from '../rpc/request.js';
import { OfflineQueue } from './offlineQueue.js';
import { noHandler, requestLayer, requestsEnabled } from './requests.js';
import {
  CONNECTION_LIMIT_REASON,
  DEFAULT_SHUTDOWN_TIMEOUT,
  memoryServers,
  messageLayer,
  peerChannelOptions,
  readMessages,
  closeGracefully,
  type Incoming,
  type Outgoing,
  type PeerOptions,
} from './shared.js';

/** Twisted ReconnectingClientFactory's defaults (ltprotocol's client uses them). */
export const RECONNECT_DEFAULTS = Object.freeze({
  /** First retry after this many ms. */
  initialDelay: 1000,
  /** Each further retry waits this many times longer (Twisted: e). */
  factor: Math.E,
  /** Never wait longer than this (Twisted: 3600 s). */
  maxDelay: 3_600_000,
  /** Standard deviation of the wait, as a fraction of it (Twisted: 0.11962656472). */
  jitter: 0.11962656472,
  /** Attempts before giving up (Twisted: None, unlimited). */
  maxRetries: Infinity,
  /** Per-attempt connect timeout in ms (Twisted's connectTCP timeout: 30 s). */
  connectTimeout: 30_000,
});

/**
 * A connection is established once the server has sent something (any message, a reply or a pong
 * included, or its part of a handshake) or it has lasted this many milliseconds (plus the time the
 * connect itself took, which covers the round trip). Until then, sends on it are not resolved: if
 * it ends, they are queued again, and its end counts as a failed attempt (the backoff grows). A
 * reset, early or late, is never taken as a refusal: only a server that says it is full (tinyproto's
 * `FE`, packetmq's `reason.connectionlimit`, an in-process server at its limit) refuses.
 */
export const REFUSAL_WINDOW = 250;

/** Options of a Client. */
export interface ClientOptions<M extends MessageMap = never>
  extends PeerOptions<M>, Pick<ConnectOptions, 'tls' | 'noDelay' | 'resume' | 'origin' | 'maxPayload'> {
  /**
   * Reconnect after a lost connection or a failed attempt. With false, the first failure ends the client.
   * @default true
   */
  reconnect?: boolean;
  /** @default 1000 (ms) */
  initialDelay?: number;
  /** @default Math.E */
  factor?: number;
  /** @default 3600000 (1 h) */
  maxDelay?: number;
  /** Relative standard deviation of each wait (normally distributed, as Twisted's). @default 0.11962656472 */
  jitter?: number;
  /** Failed attempts in a row before giving up with ReconnectFailedError. @default Infinity */
  maxRetries?: number;
  /** Milliseconds each connection attempt may take. @default 30000 */
  connectTimeout?: number;
  /**
   * Sends made while disconnected: `'queue'` keeps them (up to `queueLimit`) and sends them in
   * order after the reconnect; `'reject'` rejects them at once with MessageNotSentError.
   * @default 'queue'
   */
  offline?: 'queue' | 'reject';
  /** Most messages queued while disconnected; past it, send() rejects with MessageNotSentError. @default 1000 */
  queueLimit?: number;
  /**
   * A server that says it is at its connection limit (ConnectionRefusedError: tinyproto's `FE`,
   * packetmq's `reason.connectionlimit`, in process) ends the client unless this is true, in which
   * case it retries with backoff like any failure. A reset is never a refusal (see REFUSAL_WINDOW).
   * @default false
   */
  retryRefused?: boolean;
  /** Connected (after the handshakes), and the queued messages are handed to the connection. */
  onConnect?: (client: Client<M>) => unknown;
  /** A message arrived; handlers run one at a time in wire order, a returned promise is awaited. */
  onMessage?: (message: Incoming<M>, client: Client<M>) => unknown;
  /** The connection was lost: a packetmq softquit reason, the Error, or undefined after a clean close. */
  onDisconnect?: (reason: string | Error | undefined, client: Client<M>) => unknown;
  /**
   * The server sent a request (turns `requests` on): return the reply; a throw reaches the server
   * as RemoteError. `ctx.signal` aborts when the connection closes.
   */
  onRequest?: (body: Buffer, client: Client<M>, ctx: RequestContext) => RequestReply | PromiseLike<RequestReply>;
  /** About to retry after `delay` ms (attempt counts failures in a row from 1). */
  onRetry?: (attempt: number, delay: number, error: Error | string | undefined) => unknown;
  /** A handler threw, a message could not be decoded, a refusal, giving up. Without one: a process warning. */
  onError?: (error: Error) => unknown;
}

/** Where to connect: host and port, a Unix socket path, a WebSocket URL, or an in-process server name. */
export interface ClientTarget {
  host?: string;
  port?: number;
  path?: string;
  /**
   * WebSocket: a `ws://` or `wss://` URL (docs/websocket.md), served by a Server's `listen({ ws })`;
   * the client's `tls` options apply to wss, `origin` and `maxPayload` to the WebSocket.
   */
  url?: string;
  /** In-process: the name given to Server.listen({ memory }). */
  memory?: string;
}

/** Options of Client.close(). */
export interface ClientCloseOptions {
  /** packetmq: the softquit reason. @default 'reason.userquit' */
  reason?: string;
  /**
   * Milliseconds for the handler running (if any), the messages already received and the graceful
   * close; then the connection is destroyed (sends still pending fail with a TimeoutError as cause)
   * and close() resolves, without waiting for a handler still running. @default 10000
   */
  timeout?: number;
}

/** The refusal of a packetmq server at its connection limit: its softquit `reason.connectionlimit`. */
function refusedBySoftquit(reason: string, cause: unknown = reason): ConnectionRefusedError {
  return new ConnectionRefusedError(`the server refused the connection (packetmq softquit ${reason})`, { cause });
}

/** A normal variate (Box-Muller), as Python's random.normalvariate. */
function normal(mean: number, sd: number): number {
  const u = 1 - Math.random();
  const v = Math.random();
  return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * A client that stays connected: it reconnects with exponential backoff and jitter, and queues
 * sends made while disconnected (bounded, flushed in order after the reconnect).
 * @example
 * const client = new Client({ onMessage: (msg) => console.log(String(msg)) });
 * await client.connect('127.0.0.1', 5000);
 * await client.send('hello');   // queued if the connection is down right now
 * await client.close();
 */
export class Client<M extends MessageMap = never> {
  onConnect: ClientOptions<M>['onConnect'];
  onMessage: ClientOptions<M>['onMessage'];
  onDisconnect: ClientOptions<M>['onDisconnect'];
  onRetry: ClientOptions<M>['onRetry'];
  onError: ClientOptions<M>['onError'];
  onRequest: ClientOptions<M>['onRequest'];
  /**
   * Resolves when the client stops for good (close(), giving up, a refusal, or a failure with
   * `reconnect: false`): undefined after close(), the error otherwise. Never rejects.
   */
  readonly stopped: Promise<Error | undefined>;

  readonly #options: ClientOptions<M>;
  readonly #channelOptions: ChannelOptions;
  readonly #backoff: {
    initialDelay: number;
    factor: number;
    maxDelay: number;
    jitter: number;
    maxRetries: number;
    connectTimeout: number;
  };
  /** Sends while disconnected, sends held by a connection on probation, and their MessageNotSentErrors. */
  readonly #queue: OfflineQueue;
  #target: ClientTarget | undefined;
  #channel: Channel | undefined;
  #typed: TypedChannel<M> | undefined;
  /** The current connection's request/reply layer, with `requests` or `onRequest`. */
  #requests: RequestChannel | undefined;
  readonly #requestsOn: boolean;
  #stop = new AbortController();
  #state: 'idle' | 'connecting' | 'connected' | 'waiting' | 'closed' = 'idle';
  #failures = 0;
  #firstConnect: { resolve(): void; reject(e: unknown): void } | undefined;
  #resolveStopped!: (error: Error | undefined) => void;
  #running: Promise<void> | undefined;
  /** Handlers running synchronously right now (see #call). */
  #calling = 0;
  #closing: Promise<void> | undefined;
  /** close()'s reason, and its timeout as validated (for all of the close: see ClientCloseOptions). */
  #closeReason = 'reason.userquit';
  #closeTimeout = DEFAULT_SHUTDOWN_TIMEOUT;

  constructor(options: ClientOptions<M> = {}) {
    this.#options = options;
    this.#channelOptions = peerChannelOptions(options);
    this.#requestsOn = requestsEnabled(options);
    this.onRequest = options.onRequest;
    const d = RECONNECT_DEFAULTS;
    this.#backoff = {
      initialDelay: checkDelay('initialDelay', options.initialDelay, 0, Number.MAX_VALUE) ?? d.initialDelay,
      factor: checkFinite('factor', options.factor, 1) ?? d.factor,
      maxDelay: checkDelay('maxDelay', options.maxDelay, 0, Infinity) ?? d.maxDelay,
      jitter: checkFinite('jitter', options.jitter, 0) ?? d.jitter,
      maxRetries: checkNumber('maxRetries', options.maxRetries, 0, true) ?? d.maxRetries,
      connectTimeout: checkTimeout('connectTimeout', options.connectTimeout) ?? d.connectTimeout,
    };
    this.#queue = new OfflineQueue(
      {
        offline: options.offline,
        queueLimit: options.queueLimit,
        reconnect: options.reconnect,
        typed: options.protocol !== undefined,
      },
      {
        transmit: (args) => this.#transmit(args),
        channel: () => this.#channel,
        connected: () => this.#state === 'connected',
        closed: () => this.#state === 'closed' || this.#closing !== undefined,
        stopping: () => this.#stop.signal.aborted,
      },
    );
    this.onConnect = options.onConnect;
    this.onMessage = options.onMessage;
    this.onDisconnect = options.onDisconnect;
    this.onRetry = options.onRetry;
    this.onError = options.onError;
    this.stopped = new Promise((resolve) => (this.#resolveStopped = resolve));
  }

  /** 'idle' (before connect()), 'connecting', 'connected', 'waiting' (to retry), 'closed'. */
  get state(): 'idle' | 'connecting' | 'connected' | 'waiting' | 'closed' {
    return this.#state;
  }

  /** True while connected. */
  get connected(): boolean {
    return this.#state === 'connected';
  }

  /** The current channel, while connected. */
  get channel(): Channel | undefined {
    return this.#channel;
  }

  /** The current typed channel (PacketmqSession with `packetmq`), while connected. */
  get typed(): TypedChannel<M> | undefined {
    return this.#typed;
  }

  /** Messages waiting for a connection. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Connect and stay connected. Resolves at the first successful connection; rejects if the
   * client stops before one (close(), maxRetries, a refusal, `reconnect: false`). Call it once.
   */
  connect(host: string, port: number): Promise<void>;
  /** A WebSocket URL, `ws://host:port/path` or `wss://...` (docs/websocket.md). */
  connect(url: `ws://${string}` | `wss://${string}`): Promise<void>;
  /** A Unix socket path. */
  connect(path: string): Promise<void>;
  connect(target: ClientTarget): Promise<void>;
  connect(hostOrTarget: string | ClientTarget, port?: number): Promise<void> {
    if (this.#state !== 'idle') return Promise.reject(new Error(`connect() was already called (state ${this.#state})`));
    const target: ClientTarget =
      typeof hostOrTarget === 'string'
        ? port !== undefined
          ? { host: hostOrTarget, port }
          : isWebSocketUrl(hostOrTarget)
            ? { url: hostOrTarget }
            : { path: hostOrTarget }
        : { ...hostOrTarget };
    try {
      // Every option of the connection, checked now: a bad one would fail every attempt, for ever.
      const timeout = this.#backoff.connectTimeout;
      if (target.url !== undefined) {
        if (
          target.host !== undefined ||
          target.port !== undefined ||
          target.path !== undefined ||
          target.memory !== undefined
        )
          throw new TypeError('Expected a target with either `url` or host and port, `path` or `memory`, got both');
        checkWebSocketConnectOptions({ ...this.#channelOptions, url: target.url, timeout });
      } else if (target.memory === undefined) {
        checkConnectOptions({ ...this.#channelOptions, ...target, timeout });
      }
      if (target.memory === undefined) checkResume(this.#options.resume); // over TCP, TLS, Unix and WebSocket alike
    } catch (error) {
      return Promise.reject(error);
    }
    this.#target = target;
    const first = new Promise<void>((resolve, reject) => (this.#firstConnect = { resolve, reject }));
    first.catch(noop);
    this.#state = 'connecting';
    this.#running = this.#run();
    return first;
  }

  /** Connect once (a reset while connecting is a failed attempt, retried with backoff). */
  async #open(): Promise<{ channel: Channel; typed: TypedChannel<M> | undefined }> {
    const target = this.#target!;
    const signal = this.#stop.signal;
    let channel: Channel;
    if (target.memory !== undefined) {
      const accept = memoryServers.get(target.memory);
      if (accept === undefined) throw new MemoryServerNotFoundError(target.memory);
      channel = new Channel(accept(this.#channelOptions), { ...this.#channelOptions, isServer: false });
      try {
        await channel.ready;
      } catch (error) {
        channel.destroy();
        throw error;
      }
    } else {
      const o = this.#options;
      channel = await Channel.connect({
        ...this.#channelOptions,
        host: target.host,
        port: target.port,
        path: target.path,
        url: target.url, // WebSocket: Channel.connect takes it instead of host and port
        origin: o.origin,
        maxPayload: o.maxPayload,
        tls: o.tls,
        noDelay: o.noDelay,
        keepAlive: o.keepAlive,
        resume: o.resume, // a session survives dropped connections; a lost one ends this channel and the client reconnects
        timeout: this.#backoff.connectTimeout,
        signal,
      });
    }
    let typed: TypedChannel<M> | undefined;
    try {
      typed = messageLayer(channel, this.#options, false);
      if (typed instanceof PacketmqSession) await typed.ready;
    } catch (error) {
      channel.destroy();
      if (error instanceof ChannelClosedError && error.reason === CONNECTION_LIMIT_REASON) {
        throw refusedBySoftquit(error.reason, error);
      }
      throw error;
    }
    if (signal.aborted) {
      channel.destroy();
      throw signal.reason;
    }
    return { channel, typed };
  }

  async #run(): Promise<void> {
    let stopError: Error | undefined;
    for (;;) {
      if (this.#stop.signal.aborted) break;
      this.#state = 'connecting';
      let failure: Error | string | undefined;
      const started = performance.now();
      try {
        const { channel, typed } = await this.#open();
        failure = await this.#session(channel, typed, performance.now() - started);
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      if (this.#stop.signal.aborted) break;
      const refused = failure instanceof ConnectionRefusedError;
      if (refused) this.#report(failure as Error);
      if ((refused && this.#options.retryRefused !== true) || this.#options.reconnect === false) {
        stopError =
          failure instanceof Error
            ? failure
            : new ChannelClosedError(`connection closed: ${String(failure ?? 'by the peer')}`);
        break;
      }
      this.#failures++;
      if (this.#failures > this.#backoff.maxRetries) {
        stopError = new ReconnectFailedError(this.#failures, { cause: failure });
        this.#report(stopError);
        break;
      }
      const b = this.#backoff;
      // (0 x an overflowed factor would be NaN: no initial delay stays no delay.)
      const grown = b.initialDelay === 0 ? 0 : b.initialDelay * b.factor ** (this.#failures - 1);
      const mean = Math.min(grown, b.maxDelay);
      const drawn = b.jitter > 0 && Number.isFinite(mean) ? normal(mean, mean * b.jitter) : mean;
      const delay = Math.min(Math.max(0, drawn), b.maxDelay);
      this.#state = 'waiting';
      try {
        await this.#call(() => this.onRetry?.(this.#failures, delay, failure));
      } catch (error) {
        this.#report(error);
      }
      await sleep(delay, this.#stop.signal);
    }
    this.#finish(stopError);
  }

  /**
   * One connection's life: flush the queue, read until it ends. Returns why it ended.
   *
   * A connection is established once the server has sent something (any message, or its part of
   * a handshake) or it has lasted REFUSAL_WINDOW (+ `connectMs`); only then does the backoff start
   * again from `initialDelay` and do sends on it resolve. One that ends before was not a successful
   * connection: its sends are queued again and the next attempt waits longer.
   */
  async #session(
    channel: Channel,
    typed: TypedChannel<M> | undefined,
    connectMs: number,
  ): Promise<Error | string | undefined> {
    this.#channel = channel;
    this.#typed = typed;
    this.#requests = this.#requestsOn
      ? requestLayer(
          channel,
          this.#options.requests,
          (body, ctx) => (this.onRequest === undefined ? Promise.reject(noHandler()) : this.onRequest(body, this, ctx)),
          (error) => this.#report(error),
        )
      : undefined;
    this.#state = 'connected';
    const target = this.#target!;
    const spoke =
      typed instanceof PacketmqSession || channel.framing.handshake !== undefined || this.#options.auth !== undefined;
    // In process, a connection the server did not take fails the connect itself.
    const onProbation = !spoke && target.memory === undefined;
    let established = false;
    let timer: Timer | undefined;
    const establish = (): void => {
      if (established) return;
      established = true;
      timer?.clear();
      this.#failures = 0; // a successful connection resets the delay
      this.#queue.release();
    };
    // Ended before it was established: what it took is sent again after the reconnect (once
    // established, nothing is held).
    const requeueHeld = (): void => {
      timer?.clear();
      this.#queue.requeueHeld();
    };
    if (onProbation) {
      this.#queue.hold();
      timer = after(REFUSAL_WINDOW + connectMs, establish);
    } else establish();
    this.#queue.flush();
    this.#firstConnect?.resolve();
    this.#firstConnect = undefined;
    try {
      try {
        await this.#call(() => this.onConnect?.(this));
      } catch (error) {
        this.#report(error);
      }
      await readMessages(
        this.#requests ?? channel,
        typed,
        this.#stop.signal,
        (message) => {
          establish();
          this.#calling++; // as #call does, without a closure per message
          try {
            return this.onMessage?.(message, this);
          } finally {
            this.#calling--;
          }
        },
        (error) => this.#report(error),
      );
      if (this.#stop.signal.aborted) {
        establish(); // closed by us: what it took was flushed by the graceful close
        await this.#closeChannel(channel, typed);
      } else if (channel.isOpen) {
        await channel.close({ timeout: DEFAULT_SHUTDOWN_TIMEOUT }).catch(noop);
      }
      let reason: Error | string | undefined = await channel.closed;
      // Any message the channel received (a reply or a pong, which the request layer consumes, too): the server spoke.
      if (channel.stats.messagesReceived > 0) establish();
      if (typed instanceof PacketmqSession && typed.quitReason !== undefined) reason = typed.quitReason;
      if (reason === CONNECTION_LIMIT_REASON) reason = refusedBySoftquit(reason);
      requeueHeld();
      this.#channel = undefined;
      this.#typed = undefined;
      if (!this.#stop.signal.aborted) this.#state = 'waiting';
      try {
        await this.#call(() => this.onDisconnect?.(reason, this));
      } catch (error) {
        this.#report(error);
      }
      return reason;
    } finally {
      requeueHeld();
      this.#channel = undefined;
      this.#typed = undefined;
      this.#requests = undefined;
    }
  }

  async #closeChannel(channel: Channel, typed: TypedChannel<M> | undefined): Promise<void> {
    await closeGracefully(channel, typed, this.#closeReason, this.#closeTimeout).catch(noop);
  }

  /** Send on the current connection; never throws. */
  #transmit(args: readonly unknown[]): Promise<void> {
    try {
      const typed = this.#typed;
      return typed !== undefined
        ? typed.send(args[0] as never, args[1] as never)
        : (this.#requests ?? this.#channel!).send(args[0] as Uint8Array | string);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Send `(data)`, or `(name, data)` with a Protocol. While connected it goes out at once (see
   * Channel.send); while disconnected it follows the `offline` policy. The promise resolves once the
   * message is handed to an established connection and rejects with MessageNotSentError (`cause`:
   * why, e.g. SendQueueFullError) when it never will be. The rejection of a send nobody awaits is
   * not reported as unhandled.
   */
  send(...args: Outgoing<M>): Promise<void> {
    return this.#queue.send(args);
  }

  /**
   * Send a request over the current connection and resolve with the reply (needs `requests` or
   * `onRequest`; see RequestChannel.request()). Requests are not queued while disconnected: one
   * made then rejects at once with ChannelClosedError, and one in flight when the connection is
   * lost rejects with the error that ended it (it is not resent: it may have been handled).
   */
  request(data: Uint8Array | string, options?: RequestOptions): Promise<Buffer> {
    if (!this.#requestsOn)
      return Promise.reject(new TypeError('Expected a client with `requests` or `onRequest` for request()'));
    const requests = this.#requests;
    if (this.#state !== 'connected' || requests === undefined) {
      return Promise.reject(new ChannelClosedError(`the client is not connected (state ${this.#state})`));
    }
    return requests.request(data, options);
  }

  #report(error: unknown): void {
    reportError(this.onError, error);
  }

  /**
   * Call one of the handlers, counting it in #calling while it runs synchronously, so close()
   * called from it does not wait for the loop that waits for the handler. After an `await` in the
   * handler that is no longer known (knowing it would take an AsyncLocalStorage, whose promise
   * hooks halved a Client's message rate on Node 20): close() then waits for it, at most its
   * timeout.
   */
  #call<T>(handler: () => T): T {
    this.#calling++;
    try {
      return handler();
    } finally {
      this.#calling--;
    }
  }

  #finish(error: Error | undefined): void {
    this.#state = 'closed';
    const cause = error ?? new ChannelClosedError('client was closed');
    this.#queue.rejectAll(error ? error.message : 'the client was closed', cause);
    this.#firstConnect?.reject(cause);
    this.#firstConnect = undefined;
    this.#resolveStopped(error);
  }

  /**
   * Stop reconnecting and close the connection gracefully (what was sent is flushed; packetmq:
   * softquit with `reason`). Messages still queued reject with MessageNotSentError. Resolves once
   * everything is closed. Idempotent.
   */
  close(options: ClientCloseOptions = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    let timeout: number;
    try {
      timeout = checkTimeout('timeout', options.timeout) ?? DEFAULT_SHUTDOWN_TIMEOUT;
    } catch (error) {
      return Promise.reject(error);
    }
    this.#closeReason = options.reason ?? this.#closeReason;
    this.#closeTimeout = timeout;
    this.#closing = (async () => {
      this.#stop.abort(new ChannelClosedError('client was closed'));
      if (this.#running === undefined) this.#finish(undefined);
      // Called from one of this client's handlers: the loop closes once that handler returns.
      else if (this.#calling > 0) return;
      else if (!(await settlesWithin(this.#running, timeout))) {
        // Past the timeout, as when the graceful close itself times out: the connection is
        // destroyed (what it still had to send fails with the TimeoutError as cause) and the client
        // is closed, without waiting for a handler that may never return.
        this.#channel?.destroy(new TimeoutError(`client close timed out after ${timeout} ms`));
        this.#finish(undefined);
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
