/**
 * Server: callbacks, a connection set, broadcast, a connection limit and graceful shutdown over
 * the public Channel/Listener API (and TypedChannel, or PacketmqSession, when a Protocol is given).
 * The seeds' servers: ltprotocol's LTTwistedServer, tinyproto's TinyProtoServer, packetmq's Server
 * and MemoryServer. It reads each connection with recv() and never touches a socket itself.
 */
import type { AddressInfo } from 'node:net';
import { Channel } from '../core/channel.js';
import type { Listener } from '../core/listener.js';
import type { SessionListener } from '../session/listen.js';
import type { ResumeOptions } from '../session/options.js';
import { memoryPair } from '../core/memory.js';
import { MemoryBudget } from '../core/budget.js';
import {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MEMORY_BUDGET,
  type ChannelOptions,
  type ListenOptions,
} from '../core/options.js';
import { ChannelClosedError, ConnectionRefusedError, MemoryAddressInUseError, TimeoutError } from '../errors.js';
import { reportError } from '../report.js';
import { PacketmqSession } from '../typed/packetmq.js';
import type { MessageMap } from '../typed/protocol.js';
import type { TypedChannel } from '../typed/typedChannel.js';
import { noop, settlesWithin } from '../util.js';
import { checkNumber, checkTimeout } from '../validate.js';
import type { RequestContext, RequestOptions, RequestReply } from '../rpc/options.js';
import type { RequestChannel } from '../rpc/request.js';
import { Broadcaster, type SlowConsumerPolicy } from './broadcast.js';
import { noHandler, requestLayer, requestsEnabled } from './requests.js';
import {
  DEFAULT_SHUTDOWN_REASON,
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

export { DEFAULT_BROADCAST_TIMEOUT, DEFAULT_BROADCAST_WAIT_TIMEOUT, type SlowConsumerPolicy } from './broadcast.js';

/** Options of a Server. Listen options (tls, backlog, reuse, noDelay, echo) apply to every listen(). */
export interface ServerOptions<M extends MessageMap = never>
  extends PeerOptions<M>, Pick<ListenOptions, 'tls' | 'backlog' | 'reuse' | 'noDelay' | 'echo' | 'memoryBudget'> {
  /**
   * Resumable sessions (docs/sessions.md): a client that connects with `resume` keeps one
   * Connection across dropped connections (onConnection and onClose fire once per session).
   * Only clients with `resume` can connect. Not with `listen({ memory })`.
   */
  resume?: true | ResumeOptions;
  /**
   * Most connections open at once, counting those still in their handshake. An extra client is
   * refused before any message: tinyproto's `FE` init byte, otherwise a TCP reset (in process: at
   * connect); a Client stops with ConnectionRefusedError (code ERR_CONNECTION_LIMIT) after `FE` or
   * in process, and retries a reset with backoff (see docs/server-client.md). One limit
   * across every listen() (the listeners' own `maxConnections` is lifted). `Infinity` for none.
   * @default 10000 (as Channel.listen)
   */
  maxConnections?: number;
  /**
   * What broadcast() does with a connection that does not keep up (a client that stops reading,
   * or reads slower than the others take messages):
   * - `'close'`: once its outbound queue is full (`maxQueuedBytes`), destroy it with
   *   SlowConsumerError (code ERR_SLOW_CONSUMER); its onClose gets that error.
   * - `'drop'`: once its queue is full, skip it for each message until it catches up
   *   (Connection.dropped counts them); it stays connected.
   * - `'wait'`: wait for every connection to take each message, as long as `broadcastTimeout`;
   *   one that has not by then is destroyed with SlowConsumerError. Nothing is dropped; everyone
   *   goes at the pace of the slowest.
   * With 'close' and 'drop', broadcast() waits at most `broadcastTimeout` for a connection whose
   * transport is full before leaving it behind: later broadcasts queue to it without waiting until
   * it has caught up, so one stalled client cannot hold the others back.
   * @default 'close'
   */
  slowConsumer?: SlowConsumerPolicy;
  /**
   * Milliseconds one broadcast() waits for a connection to take the message into its transport
   * (see `slowConsumer`).
   * @default 100 ('close', 'drop'); 10000 ('wait')
   */
  broadcastTimeout?: number;
  /** A client connected (after the framing's and packetmq's handshakes). Awaited before its first message is handled. */
  onConnection?: (conn: Connection<M>) => unknown;
  /** A message arrived. Handlers of one connection run one at a time in wire order; a returned promise is awaited. */
  onMessage?: (conn: Connection<M>, message: Incoming<M>) => unknown;
  /**
   * A request arrived (turns `requests` on): return the reply, or a promise of it; a throw reaches
   * the client as RemoteError. Requests of one connection run concurrently, up to `maxPending`.
   * `ctx.signal` aborts when the connection closes. One-way messages still go to onMessage.
   */
  onRequest?: (conn: Connection<M>, body: Buffer, ctx: RequestContext) => RequestReply | PromiseLike<RequestReply>;
  /** A connection closed: `reason` is a packetmq softquit reason, the Error that ended it, or undefined after a clean close. */
  onClose?: (conn: Connection<M>, reason: string | Error | undefined) => unknown;
  /**
   * A handler threw, a message could not be decoded, a listener failed (without onError: a process
   * warning), or a connection's handshake failed (TLS, the framing's, `auth`, packetmq's; `conn`
   * undefined before the connection was made; without onError: not reported).
   */
  onError?: (error: Error, conn: Connection<M> | undefined) => unknown;
}

/** Where to listen: a TCP port, a Unix socket path, or an in-process name. */
export interface ServerListenOptions extends Pick<
  ListenOptions,
  'tls' | 'backlog' | 'reuse' | 'noDelay' | 'echo' | 'ws'
> {
  port?: number;
  host?: string;
  path?: string;
  /** In-process transport: Client.connect({ memory: name }) reaches this server with no socket. */
  memory?: string;
}

/** Options of Server.close(). */
export interface ServerCloseOptions {
  /** packetmq: the softquit reason sent to every client. @default 'reason.shutdown' */
  reason?: string;
  /**
   * Milliseconds to wait for every connection to close; then the rest are destroyed and close()
   * rejects with TimeoutError at once (a handler still running is not waited for). @default 10000
   */
  timeout?: number;
}

let nextId = 1;

/** A Server's handler: the connection first, then what it is called with. */
type Handler<M extends MessageMap, A, B, R> = (conn: Connection<M>, a: A, b: B) => R;

/** One client of a Server. */
export class Connection<M extends MessageMap = never> {
  /** Unique in this process, increasing. */
  readonly id = nextId++;
  /** The channel below (its `ip`, `port`, `closed`, ...). */
  readonly channel: Channel;
  /** The typed layer (a PacketmqSession with `packetmq`), when the server has a Protocol. */
  readonly typed: TypedChannel<M> | undefined;
  /** The request/reply layer, with `requests` or `onRequest`: messages then carry its envelope. */
  readonly requests: RequestChannel | undefined;
  /** Free for the application (a user name, a session object, ...). */
  data: unknown;
  /** Aborted when the server stops reading this connection. */
  readonly #stop = new AbortController();
  #closing: Promise<void> | undefined;
  #dropped = 0;

  constructor(channel: Channel, typed: TypedChannel<M> | undefined, requests?: RequestChannel) {
    this.channel = channel;
    this.typed = typed;
    this.requests = requests;
  }

  /** Send a request to this client (with `requests`; the client answers with its onRequest). See RequestChannel.request(). */
  request(data: Uint8Array | string, options?: RequestOptions): Promise<Buffer> {
    if (this.requests === undefined)
      return Promise.reject(new TypeError('Expected a server with `requests` or `onRequest` for request()'));
    return this.requests.request(data, options);
  }

  /** The remote IP address (undefined over a Unix socket or in memory). */
  get ip(): string | undefined {
    return this.channel.ip;
  }

  get port(): number | undefined {
    return this.channel.port;
  }

  /** Resolves when the connection has closed: undefined after a clean close, the error otherwise. */
  get closed(): Promise<Error | undefined> {
    return this.channel.closed;
  }

  /** True until the connection starts closing. */
  get isOpen(): boolean {
    return this.channel.isOpen && this.#closing === undefined;
  }

  /** The packetmq softquit reason, once either side quit. */
  get quitReason(): string | undefined {
    return this.typed instanceof PacketmqSession ? this.typed.quitReason : undefined;
  }

  /** Messages broadcast() skipped for this connection because its queue was full (`slowConsumer: 'drop'`). */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Send `(data)`, or `(name, data)` with a Protocol. Resolves once handed to the transport (see
   * Channel.send); rejects if the connection is closed, its queue is full (SendQueueFullError) or
   * the data cannot be encoded. The rejection of a send nobody awaits is not reported as unhandled.
   */
  send(...args: Outgoing<M>): Promise<void> {
    const p = this.#send(args);
    p.catch(noop);
    return p;
  }

  #send(args: Outgoing<M>): Promise<void> {
    try {
      if (this.typed !== undefined) {
        const [name, data] = args as unknown as [string, never];
        return this.typed.send(name as never, data);
      }
      return (this.requests ?? this.channel).send(args[0] as Uint8Array | string);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** @internal a message broadcast() skipped. */
  countDropped(): void {
    this.#dropped++;
  }

  /** @internal */
  get stopSignal(): AbortSignal {
    return this.#stop.signal;
  }

  /** @internal stop reading (what is buffered is still handled). */
  stopReading(): void {
    this.#stop.abort(new ChannelClosedError('server is closing'));
  }

  /**
   * Close gracefully: sends queued before are flushed; packetmq sends softquit with `reason`.
   * Messages already received are still handled by the server's onMessage.
   */
  close(options: { reason?: string; timeout?: number } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    let timeout: number;
    try {
      timeout = checkTimeout('timeout', options.timeout) ?? DEFAULT_SHUTDOWN_TIMEOUT;
    } catch (error) {
      return Promise.reject(error);
    }
    this.stopReading();
    this.#closing = closeGracefully(this.channel, this.typed, options.reason ?? DEFAULT_SHUTDOWN_REASON, timeout);
    this.#closing.catch(noop);
    return this.#closing;
  }

  /** Close at once without flushing. */
  destroy(error?: Error): void {
    this.stopReading();
    this.channel.destroy(error);
  }
}

/**
 * A server with callbacks: listen on any number of TCP ports, Unix paths and in-process names;
 * each client becomes a Connection in `connections`, its messages go to onMessage in order.
 * @example
 * const server = new Server({ onMessage: (conn, msg) => conn.send(msg) }); // echo
 * const { port } = await server.listen(0, '127.0.0.1');
 * // later
 * await server.close();
 */
export class Server<M extends MessageMap = never> {
  onConnection: ServerOptions<M>['onConnection'];
  onMessage: ServerOptions<M>['onMessage'];
  onClose: ServerOptions<M>['onClose'];
  onError: ServerOptions<M>['onError'];
  onRequest: ServerOptions<M>['onRequest'];
  /** Most connections at once (Infinity: no limit). */
  readonly maxConnections: number;
  /** broadcast(): its `slowConsumer` policy, its timeout, and what it remembers of each connection. */
  readonly #broadcaster: Broadcaster<M>;

  readonly #options: ServerOptions<M>;
  readonly #channelOptions: ChannelOptions;
  readonly #connections = new Set<Connection<M>>();
  readonly #budget: MemoryBudget;
  readonly #listeners = new Set<Listener | SessionListener>();
  readonly #memoryNames = new Set<string>();
  /** Serve loops (and listener loops, with no connection) still running. */
  readonly #serving = new Map<Promise<void>, Connection<M> | undefined>();
  #closeReason = DEFAULT_SHUTDOWN_REASON;
  #closeTimeout = DEFAULT_SHUTDOWN_TIMEOUT;
  /** Connections accepted by a memory listen whose Channel is in its handshake. */
  #memoryHandshaking = 0;
  #closing: Promise<void> | undefined;
  readonly #requests: boolean;
  /** The connection whose handler is running synchronously right now (see #call). */
  #calling: Connection<M> | undefined;

  constructor(options: ServerOptions<M> = {}) {
    this.#options = options;
    this.#requests = requestsEnabled(options);
    this.onRequest = options.onRequest;
    this.#channelOptions = peerChannelOptions(options);
    this.maxConnections = checkNumber('maxConnections', options.maxConnections, 0, true) ?? DEFAULT_MAX_CONNECTIONS;
    // One memory budget for large bodies across every listen() (as maxConnections is one limit).
    this.#budget = new MemoryBudget(
      checkNumber('memoryBudget', options.memoryBudget, 0, true) ?? DEFAULT_MEMORY_BUDGET,
    );
    this.#broadcaster = new Broadcaster({
      slowConsumer: options.slowConsumer,
      broadcastTimeout: options.broadcastTimeout,
      maxQueuedBytes: this.#channelOptions.maxQueuedBytes,
      protocol: options.protocol,
    });
    this.onConnection = options.onConnection;
    this.onMessage = options.onMessage;
    this.onClose = options.onClose;
    this.onError = options.onError;
  }

  /** The live connections (after their handshakes). */
  get connections(): ReadonlySet<Connection<M>> {
    return this.#connections;
  }

  /** Every bound address (TCP and Unix; in-process names have family 'memory'). */
  get addresses(): AddressInfo[] {
    const out: AddressInfo[] = [];
    for (const l of this.#listeners) if (l.address) out.push(l.address);
    for (const name of this.#memoryNames) out.push({ address: name, family: 'memory', port: 0 });
    return out;
  }

  /** True once close() was called. */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Start listening; call it as often as you like (several ports, a Unix path, an in-process name).
   * Resolves with the bound address; rejects on EADDRINUSE and the like.
   */
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Listen on a Unix socket path. */
  listen(path: string): Promise<AddressInfo>;
  listen(options: ServerListenOptions): Promise<AddressInfo>;
  async listen(portOrOptions: number | string | ServerListenOptions, host?: string): Promise<AddressInfo> {
    if (this.#closing) throw new ChannelClosedError('server is closed');
    const where: ServerListenOptions =
      typeof portOrOptions === 'number'
        ? { port: portOrOptions, host }
        : typeof portOrOptions === 'string'
          ? { path: portOrOptions }
          : portOrOptions;
    if (where.memory !== undefined) return this.#listenMemory(where.memory);
    const o = this.#options;
    const listenOptions: ListenOptions = {
      ...this.#channelOptions,
      tls: o.tls,
      backlog: o.backlog,
      reuse: o.reuse,
      noDelay: o.noDelay,
      echo: o.echo,
      keepAlive: o.keepAlive,
      ...where,
      admit: this.#admit,
      onHandshakeError: this.#handshakeFailed,
      maxConnections: Infinity, // the server counts across all its listeners
      budget: this.#budget,
    };
    const listener =
      o.resume === undefined ? Channel.listen(listenOptions) : Channel.listen({ ...listenOptions, resume: o.resume });
    this.#listeners.add(listener);
    let address: AddressInfo;
    try {
      address = await listener.listening;
    } catch (error) {
      this.#listeners.delete(listener);
      throw error;
    }
    this.#track(
      undefined,
      (async () => {
        try {
          for await (const channel of listener) this.#accept(channel);
        } catch (error) {
          this.#report(error, undefined);
        }
      })(),
    );
    return address;
  }

  #listenMemory(name: string): AddressInfo {
    if (typeof name !== 'string' || name.length === 0)
      throw new TypeError(`Expected \`memory\` to be a non-empty string, got ${String(name)}`);
    if (memoryServers.has(name)) throw new MemoryAddressInUseError(name);
    memoryServers.set(name, () => {
      if (!this.#admit())
        throw new ConnectionRefusedError(`in-process server '${name}' refused the connection (connection limit)`);
      const [client, server] = memoryPair();
      const channel = new Channel(server, { ...this.#channelOptions, isServer: true, budget: this.#budget });
      this.#memoryHandshaking++;
      channel.ready.then(
        () => {
          this.#memoryHandshaking--;
          if (this.#closing) channel.destroy();
          else this.#accept(channel);
        },
        (error: unknown) => {
          this.#memoryHandshaking--;
          this.#handshakeFailed(error as Error);
        },
      );
      return client;
    });
    this.#memoryNames.add(name);
    return { address: name, family: 'memory', port: 0 };
  }

  /** Connections that count toward maxConnections: live, queued in a listener, or in a handshake. */
  #count(): number {
    let n = this.#connections.size + this.#memoryHandshaking;
    for (const l of this.#listeners) n += l.pending + l.handshaking;
    return n;
  }

  /**
   * A connection's handshake failed (TLS, the framing's, `auth`): that connection is closed, and
   * onError hears of it. Without an onError it is not a process warning: anyone who can connect
   * could fill stderr with them.
   */
  readonly #handshakeFailed = (error: Error): void => {
    if (this.onError !== undefined) this.#report(error, undefined);
  };

  readonly #admit = (): boolean => this.#closing === undefined && this.#count() < this.maxConnections;

  #track(conn: Connection<M> | undefined, p: Promise<void>): void {
    this.#serving.set(p, conn);
    void p.finally(() => this.#serving.delete(p));
  }

  #accept(channel: Channel): void {
    let typed: TypedChannel<M> | undefined;
    try {
      typed = messageLayer(channel, this.#options, true);
    } catch (error) {
      channel.destroy(error as Error);
      this.#report(error, undefined);
      return;
    }
    // eslint-disable-next-line prefer-const -- the request layer's handler refers to the connection made after it
    let conn: Connection<M> | undefined;
    const requests = this.#requests
      ? requestLayer(
          channel,
          this.#options.requests,
          (body, ctx) =>
            this.onRequest === undefined ? Promise.reject(noHandler()) : this.#call(conn!, this.onRequest, body, ctx),
          (error) => this.#report(error, conn),
        )
      : undefined;
    conn = new Connection<M>(channel, typed, requests);
    this.#connections.add(conn);
    this.#track(conn, this.#serve(conn));
  }

  async #serve(conn: Connection<M>): Promise<void> {
    const { channel, typed } = conn;
    let connected = false;
    try {
      if (typed instanceof PacketmqSession) {
        // A server over its limit still does the session's part: refuse with packetmq's own softquit.
        try {
          await typed.ready;
        } catch (error) {
          this.#report(error, conn);
          return;
        }
      }
      if (this.#closing) {
        await conn.close({ reason: DEFAULT_SHUTDOWN_REASON }).catch(noop);
        return;
      }
      connected = true;
      try {
        await this.#call(conn, this.onConnection, undefined, undefined);
      } catch (error) {
        this.#report(error, conn);
      }
      await readMessages(
        conn.requests ?? channel,
        typed,
        conn.stopSignal,
        (message) => this.#call(conn, this.onMessage, message, undefined),
        (error) => this.#report(error, conn),
      );
      // The peer closed, or the server is closing and what was received is handled: close our side
      // too (flushing what we sent; packetmq: softquit).
      // (Not after a failure or the peer's close: that would hide the error `closed` reports.)
      if (channel.isOpen) await conn.close({ reason: this.#closeReason, timeout: this.#closeTimeout }).catch(noop);
      const error = await channel.closed;
      const reason = conn.quitReason ?? error;
      try {
        await this.#call(conn, this.onClose, reason, undefined);
      } catch (e) {
        this.#report(e, conn);
      }
    } finally {
      this.#connections.delete(conn);
      if (!connected) channel.destroy();
    }
  }

  /**
   * Call one of the handlers for `conn`, known in #calling while it runs synchronously, so close()
   * called from it does not wait for the loop that waits for the handler. After an `await` in the
   * handler that is no longer known: close() then waits for it, at most its timeout. (Knowing it
   * would take an AsyncLocalStorage, whose promise hooks on Node 20 tax every promise in the
   * process: bench/README.md.)
   */
  #call<A, B, R>(conn: Connection<M>, handler: Handler<M, A, B, R>, a: A, b: B): R;
  #call<A, B, R>(conn: Connection<M>, handler: Handler<M, A, B, R> | undefined, a: A, b: B): R | undefined;
  #call<A, B, R>(conn: Connection<M>, handler: Handler<M, A, B, R> | undefined, a: A, b: B): R | undefined {
    if (handler === undefined) return undefined;
    const outer = this.#calling;
    this.#calling = conn;
    try {
      return handler.call(this, conn, a, b);
    } finally {
      this.#calling = outer;
    }
  }

  #report(error: unknown, conn: Connection<M> | undefined): void {
    reportError(this.onError, error, conn);
  }

  /**
   * Send to every open connection. Each connection gets the message at once, without waiting for
   * another; then broadcast() waits (backpressure) until each has taken it into its transport, at
   * most `broadcastTimeout` per connection, never for one already left behind. A connection that
   * does not keep up is handled per `slowConsumer`. Resolves with how many connections the message
   * was handed to (taken, or queued behind earlier messages): connections skipped ('drop'), closed
   * as slow, or closing meanwhile are not counted. Rejects only for a message that cannot be sent
   * at all (a bad type or size, an unknown name); that rejection is not reported as unhandled.
   */
  broadcast(...args: Outgoing<M>): Promise<number> {
    const p = this.#broadcaster.broadcast(this.#connections, args);
    p.catch(noop);
    return p;
  }

  /**
   * Stop accepting, let each connection handle what it has already received, then close each
   * gracefully (flushing what was sent; packetmq: softquit with `reason`). Resolves when every
   * connection is closed; after `timeout` the rest are destroyed and it rejects with TimeoutError.
   */
  close(options: ServerCloseOptions = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    let timeout: number;
    try {
      timeout = checkTimeout('timeout', options.timeout) ?? DEFAULT_SHUTDOWN_TIMEOUT;
    } catch (error) {
      return Promise.reject(error);
    }
    const reason = options.reason ?? DEFAULT_SHUTDOWN_REASON;
    this.#closeReason = reason;
    this.#closeTimeout = timeout;
    // Called from a handler (tinyproto's SRVQUIT): that connection closes once its handler returns; don't wait for it here.
    const self = this.#calling;
    this.#closing = (async () => {
      for (const name of this.#memoryNames) memoryServers.delete(name);
      this.#memoryNames.clear();
      await Promise.all([...this.#listeners].map((l) => l.close()));
      // Each serve loop handles what was already received, then closes its connection.
      for (const conn of this.#connections) conn.stopReading();
      const all = (async () => {
        for (;;) {
          const waits = [...this.#serving].filter(([, conn]) => conn === undefined || conn !== self).map(([p]) => p);
          if (waits.length === 0) break;
          await Promise.all(waits);
        }
      })();
      try {
        if (!(await settlesWithin(all, timeout))) {
          // Past the timeout: what is left is destroyed, and close() says so now. A handler still
          // running may never return; its connection's onClose follows when it does.
          const error = new TimeoutError(`server close timed out after ${timeout} ms`);
          for (const conn of this.#connections) if (conn !== self) conn.destroy(error);
          throw error;
        }
      } finally {
        this.#listeners.clear();
      }
    })();
    this.#closing.catch(noop);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
