/**
 * Listener: a listening server as an async iterable of client channels (Channel.listen()), with
 * a connection limit and refusal. The Channel comes from a factory, so this module only knows
 * its type.
 */
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { webSocketAcceptor, type WebSocketAcceptor } from '../ws/accept.js';
import { attachedServer } from '../ws/options.js';
import type { Framing } from '../framing/types.js';
import { MAX_TIMER_DELAY, noop, tlsLib } from '../util.js';
import type { Channel } from './channel.js';
import type { ChannelFactory } from './connect.js';
import { AcceptQueue } from './acceptQueue.js';
import { MemoryBudget } from './budget.js';
import { DIRECT_READS, adoptAccepted, type ReadSource } from './reader.js';
import { DEFAULT_CLOSE_TIMEOUT, checkListenOptions, type ListenOptions } from './options.js';

/** Refuse an incoming connection: the framing's refusal bytes then close, or a TCP reset. */
function refuse(socket: net.Socket, framing: Framing | undefined): void {
  socket.on('error', noop);
  const refusal = framing?.refusal;
  if (refusal !== undefined) {
    socket.resume(); // discard what the client sends, so its close is seen
    socket.end(refusal);
    socket.setTimeout(DEFAULT_CLOSE_TIMEOUT, () => socket.destroy());
    return;
  }
  try {
    socket.resetAndDestroy(); // TCP: the client reads ECONNRESET before any frame
  } catch {
    socket.destroy(); // not TCP (a Unix socket): a close before any frame
  }
}

/**
 * A listening server: an async iterable of client channels. Clients that connect while nobody
 * iterates wait in a queue; none is lost. Leaving a `for await` loop closes the listener;
 * channels already handed out stay open.
 */
export class Listener implements AsyncIterable<Channel> {
  /** Resolves with the bound address once listening; rejects on EADDRINUSE and the like. */
  readonly listening: Promise<AddressInfo>;

  readonly #server: net.Server;
  readonly #options: ListenOptions;
  /** Channels whose handshakes are done, for accept() and the iterator. */
  readonly #accepted = new AcceptQueue<Channel>();
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #create: ChannelFactory;
  /** Memory for large bodies, shared by this listener's connections (or a Server's, across its listeners). */
  readonly #budget: MemoryBudget;
  readonly #maxConnections: number;
  /** Channels whose handshakes are done and that are not closed yet (pending or handed out). */
  #handshaken = 0;
  /** The TLS server that accepted sockets are handed to (with `tls`); it never listens itself. */
  #tls: tls.Server | undefined;
  /** Channels of this listener not yet closed (handshaking, pending or handed out). */
  #connectionCount = 0;
  /** With `ws`: takes the HTTP upgrades (on this listener's port, or on an attached server's). */
  readonly #ws: WebSocketAcceptor | undefined;

  /**
   * Use Channel.listen(). `create` makes each client's channel (Channel.listen passes
   * `(stream, options) => new Channel(stream, options)`).
   */
  constructor(options: ListenOptions, create: ChannelFactory) {
    this.#options = options;
    this.#create = create;
    const checked = checkListenOptions(options); // now, not at the first client
    this.#maxConnections = checked.maxConnections;
    this.#budget = options.budget ?? new MemoryBudget(checked.memoryBudget);
    // Every connection is counted and refused (or admitted) at TCP accept. A TLS server never
    // listens: accepted sockets are handed to it, so the limit counts a TLS connection from
    // accept, a refusal is a TCP reset before any TLS byte, and handshakeTimeout bounds the TLS
    // handshake too (a socket that fails or stalls in it is destroyed, not left open).
    // Plain sockets are accepted paused so they can be re-wrapped for the direct receive path
    // (reader.ts) before anything is read; TLS sockets take the 'data' path.
    this.#ws = webSocketAcceptor(options, checked.handshakeTimeout, this.#countAttached, (s) =>
      this.#onSocket(s, s.reader),
    );
    const attached = attachedServer(options);
    this.#server =
      attached ?? net.createServer({ pauseOnConnect: DIRECT_READS && !options.tls && !options.ws }, this.#onConnection);
    if (options.tls && attached === undefined) {
      // Node's TLS handshake timer is a socket timeout: 0 is none, and it honours at most MAX_TIMER_DELAY.
      const handshakeTimeout = Math.min(checked.handshakeTimeout, MAX_TIMER_DELAY);
      const server = tlsLib().createServer({ ...options.tls, handshakeTimeout }, (socket) =>
        this.#ws === undefined ? this.#onSocket(socket) : this.#ws.connection(socket),
      );
      server.on('tlsClientError', (error, socket) => {
        socket.destroy(); // that socket only
        this.#options.onHandshakeError?.(error);
      });
      this.#tls = server;
    }
    this.listening = new Promise<AddressInfo>((resolve, reject) => {
      if (attached?.listening) return resolve(this.address!); // an http(s).Server of the application's
      const onError = (error: Error): void => {
        this.#fatal(error);
        reject(error);
      };
      this.#server.once('error', onError);
      this.#server.once('listening', () => {
        this.#server.removeListener('error', onError);
        this.#server.on('error', (error) => this.#fatal(error));
        const address = this.address!;
        if (options.echo) console.log(`listening on ${options.path ?? `${address.address}:${address.port}`}`);
        resolve(address);
      });
    });
    this.listening.catch(noop);
    const listenOptions: net.ListenOptions & { reusePort?: boolean } =
      options.path !== undefined
        ? { path: options.path, backlog: options.backlog }
        : { host: options.host, port: options.port, backlog: options.backlog, reusePort: options.reuse ?? true };
    if (attached === undefined) this.#server.listen(listenOptions);
    if (options.signal) {
      if (options.signal.aborted) void this.close();
      else options.signal.addEventListener('abort', () => void this.close(), { once: true });
    }
  }

  /** What was bound (port 0 picks a free one); null before listening and after close. */
  get address(): AddressInfo | null {
    const a = this.#server.address();
    if (a === null) return null;
    if (typeof a === 'string') return { address: a, family: 'unix', port: 0 };
    return a;
  }

  /** Channels accepted but not yet taken by the iterator (waiting to be taken). */
  get pending(): number {
    return this.#accepted.length;
  }

  /** Connections accepted whose handshakes (TLS, the framing's, auth) have not finished yet (not yet in `pending`). */
  get handshaking(): number {
    return this.#connectionCount - this.#handshaken;
  }

  /** Connections of this listener open now: in their handshake, pending, or handed out and not closed. */
  get connections(): number {
    return this.#connectionCount;
  }

  /** An upgrade request of an attached server (`ws.server`): count it as an accepted connection, or refuse it (false). */
  readonly #countAttached = (socket: Duplex): boolean => {
    if (
      this.#closed ||
      this.#connectionCount >= this.#maxConnections ||
      (this.#options.admit !== undefined && !this.#options.admit())
    )
      return false;
    this.#connectionCount++;
    socket.once('close', this.#onConnectionClosed);
    return true;
  };

  readonly #onConnectionClosed = (): void => {
    this.#connectionCount--;
  };

  readonly #onHandshakenClosed = (): void => {
    this.#handshaken--;
  };

  /** A TCP (or Unix) connection was accepted: count it from now until its socket closes, or refuse it. */
  readonly #onConnection = (accepted: net.Socket): void => {
    let socket = accepted;
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (
      this.#connectionCount >= this.#maxConnections ||
      (this.#options.admit !== undefined && !this.#options.admit())
    ) {
      // Over TLS a framing's refusal bytes would be plaintext inside a handshake: reset instead.
      refuse(socket, this.#tls === undefined ? this.#options.framing : undefined);
      return;
    }
    this.#connectionCount++;
    const direct = this.#tls === undefined && this.#ws === undefined ? adoptAccepted(accepted) : undefined;
    if (direct !== undefined) socket = direct.socket;
    socket.once('close', this.#onConnectionClosed);
    if (this.#options.path === undefined) {
      socket.setNoDelay(this.#options.noDelay ?? true);
      const keepAlive = this.#options.keepAlive;
      if (keepAlive) socket.setKeepAlive(true, keepAlive === true ? 0 : keepAlive);
    }
    if (this.#tls !== undefined) this.#tls.emit('connection', socket);
    else if (this.#ws !== undefined) this.#ws.connection(socket);
    else this.#onSocket(socket, direct?.reader);
  };

  /** A socket ready for its channel: a plain one at once, a TLS one after its handshake. */
  #onSocket(socket: Duplex, reader?: ReadSource): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    let channel: Channel;
    try {
      channel = this.#create(socket, { ...this.#options, isServer: true, budget: this.#budget, reader });
    } catch (error) {
      socket.destroy();
      this.#fatal(error as Error);
      return;
    }
    if (this.#options.echo) console.log(`--> ${channel.ip ?? this.#options.path}:${channel.port ?? ''}`);
    channel.ready.then(
      () => {
        this.#handshaken++;
        void channel.closed.then(this.#onHandshakenClosed);
        this.#accepted.push(channel); // destroyed instead if the listener has closed meanwhile
      },
      // A failed handshake ends that connection only; whoever listens is told.
      (error: unknown) => this.#options.onHandshakeError?.(error as Error),
    );
  }

  /** A listener error (EADDRINUSE, ...) is thrown once by the iterator (or accept()), then it is done. */
  #fatal(error: Error): void {
    this.#accepted.fail(error);
    void this.close();
  }

  /** Wait for the next client. Resolves with undefined once the listener is closed. */
  accept(): Promise<Channel | undefined> {
    return this.#accepted.accept();
  }

  /** Stop accepting. Channels handed out stay open; ones accepted but not yet handed out are closed. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#accepted.close();
    this.#ws?.close();
    this.#closing = new Promise<void>((resolve) => {
      if (!this.#server.listening || (this.#ws !== undefined && attachedServer(this.#options) !== undefined)) {
        resolve();
        return;
      }
      // server.close()'s callback waits for every connection to end; the port is released now.
      this.#server.close();
      setImmediate(resolve);
    });
    return this.#closing;
  }

  [Symbol.asyncIterator](): AsyncIterator<Channel, undefined> {
    return this.#accepted.iterator(() => this.close());
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
