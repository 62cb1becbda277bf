/**
 * The listening side of resumable sessions (`Channel.listen(..., { resume })`): an async iterable
 * that yields each session's Channel once. A reconnection carrying a known token re-attaches to
 * its session; a session without a connection is kept `keep` ms, at most `maxDetached` of them;
 * every session's replay buffer counts against `replayBudget`. Unknown tokens, bad hellos and
 * offsets that do not fit are refused on that connection only. With `ws`, the transport
 * connections are WebSockets (the upgrade handled by ws/accept.ts, as for a plain Listener),
 * and everything else is the same.
 */
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type * as tls from 'node:tls';
import { authHandshake, authKey } from '../auth.js';
import { MemoryBudget } from '../core/budget.js';
import type { Channel } from '../core/channel.js';
import type { ChannelFactory } from '../core/connect.js';
import { AcceptQueue } from '../core/acceptQueue.js';
import { DIRECT_READS, adoptAccepted, discardReads, readsThrough } from '../core/reader.js';
import { DEFAULT_CLOSE_TIMEOUT, checkListenOptions, type SessionListenOptions } from '../core/options.js';
import { lazyModule, noop, tlsLib } from '../util.js';
import { webSocketAcceptor, type WebSocketAcceptor } from '../ws/accept.js';
import { attachedServer } from '../ws/options.js';
import { recordSession } from './connect.js';
import { checkResume, type ResumeSettings } from './options.js';
import { ReplayBudget, SessionStream, type SessionOwner } from './stream.js';
import { ConnectionStart, tlsSocketOf, type Transport } from './transport.js';
import {
  CLIENT_HELLO_LENGTH,
  Status,
  TOKEN_LENGTH,
  decodeClientHello,
  encodeServerHello,
  isNewSessionToken,
  type Hello,
} from './wire.js';

const cryptoLib = lazyModule<typeof import('node:crypto')>('node:crypto');

/** Counters of a session listener. */
export interface SessionListenerStats {
  /** Connections refused at their hello: unknown or expired token, bad hello, offsets that do not fit, identity. */
  refused: number;
  /** Sessions lost because their client did not come back within `keep` (or `maxDetached` pushed them out). */
  expired: number;
}

/** The peer certificate of a TLS connection (or of the TLS socket under a wss:// WebSocket), undefined otherwise (or without one). */
function certificateOf(transport: Duplex): tls.PeerCertificate | undefined {
  const cert = tlsSocketOf(transport)?.getPeerCertificate();
  return cert != null && Object.keys(cert).length > 0 ? cert : undefined;
}

/** The peer certificate's SHA-256 fingerprint of a TLS connection, undefined otherwise. */
function fingerprintOf(transport: Duplex): string | undefined {
  const fingerprint = certificateOf(transport)?.fingerprint256;
  return typeof fingerprint === 'string' ? fingerprint : undefined;
}

export class SessionListener implements AsyncIterable<Channel> {
  /** Resolves with the bound address once listening; rejects on EADDRINUSE and the like. */
  readonly listening: Promise<AddressInfo>;
  readonly stats: SessionListenerStats = { refused: 0, expired: 0 };

  /** The listening server, or with `ws.server` the application's http(s).Server. */
  readonly #server: net.Server;
  #tls: tls.Server | undefined;
  /** With `ws`: takes the HTTP upgrades (on this listener's port, or on an attached server's). */
  readonly #ws: WebSocketAcceptor | undefined;
  readonly #options: SessionListenOptions;
  readonly #settings: ResumeSettings;
  readonly #create: ChannelFactory;
  readonly #handshakeTimeout: number;
  /** `auth`'s key: every connection proves it before its hello. */
  readonly #key: Buffer | undefined;
  readonly #maxConnections: number;
  readonly #maxSessions: number;
  readonly #memory: MemoryBudget;
  readonly #replayBudget: ReplayBudget;
  /** Every live session by token (hex). */
  readonly #sessions = new Map<string, SessionStream>();
  /** Sessions without a connection, oldest first, with their `keep` timers. */
  readonly #detached = new Map<SessionStream, NodeJS.Timeout>();
  /** New sessions whose Channel handshakes are done, for accept() and the iterator. */
  readonly #accepted = new AcceptQueue<Channel>();
  #open = 0;
  #handshaking = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: SessionListenOptions, create: ChannelFactory) {
    this.#options = options;
    this.#create = create;
    this.#settings = checkResume(options.resume)!;
    const checked = checkListenOptions(options);
    this.#handshakeTimeout = checked.handshakeTimeout;
    this.#key = options.auth === undefined ? undefined : authKey(options.auth);
    this.#maxConnections = checked.maxConnections;
    this.#maxSessions = this.#settings.maxSessions ?? checked.maxConnections;
    this.#memory = options.budget ?? new MemoryBudget(checked.memoryBudget);
    this.#replayBudget = new ReplayBudget(this.#settings.replayBudget);
    // As in a plain Listener: the TCP connections of the listener's own port are counted from
    // accept, then go through TLS (with `tls`), then through the HTTP upgrade (with `ws`), and
    // what comes out (a socket, a TLS socket or a WebSocketStream) is a transport with a hello.
    this.#ws = webSocketAcceptor(
      options,
      checked.handshakeTimeout,
      this.#countAttached,
      (stream) => void this.#onTransport(stream),
    );
    const attached = attachedServer(options);
    // Plain sockets are accepted paused and re-wrapped to read through the direct path (core/reader.ts).
    const direct = DIRECT_READS && !options.tls && !options.ws;
    this.#server = attached ?? net.createServer({ pauseOnConnect: direct }, this.#onConnection);
    if (options.tls && attached === undefined) {
      const server = tlsLib().createServer({ ...options.tls, handshakeTimeout: checked.handshakeTimeout }, (socket) =>
        this.#ws === undefined ? void this.#onTransport(socket) : this.#ws.connection(socket),
      );
      server.on('tlsClientError', (_error, socket) => socket.destroy());
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
        resolve(this.address!);
      });
    });
    this.listening.catch(noop);
    if (attached === undefined) {
      this.#server.listen(
        options.path !== undefined
          ? { path: options.path, backlog: options.backlog }
          : ({
              host: options.host,
              port: options.port,
              backlog: options.backlog,
              reusePort: options.reuse ?? true,
            } as net.ListenOptions), // reusePort: Node versions that have it
      );
    }
    if (options.signal) {
      if (options.signal.aborted) void this.close();
      else options.signal.addEventListener('abort', () => void this.close(), { once: true });
    }
  }

  /** What was bound; null before listening and after close. */
  get address(): AddressInfo | null {
    const a = this.#server.address();
    if (a === null) return null;
    if (typeof a === 'string') return { address: a, family: 'unix', port: 0 };
    return a;
  }

  /** Sessions accepted but not yet taken by the iterator. */
  get pending(): number {
    return this.#accepted.length;
  }

  /** Transport connections open now (in their hello or carrying a session). */
  get connections(): number {
    return this.#open;
  }

  /** Connections in their hello, and new sessions whose Channel handshakes are not done yet. */
  get handshaking(): number {
    return this.#handshaking;
  }

  /** Sessions alive now, with or without a connection. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Sessions waiting for their client to come back. */
  get detached(): number {
    return this.#detached.size;
  }

  /** Bytes held in the replay buffers of all sessions. */
  get replayBytes(): number {
    return this.#replayBudget.used;
  }

  /** May one more connection open? (The connection limit, `admit`, and not closed.) */
  #admits(): boolean {
    return (
      !this.#closed && this.#open < this.#maxConnections && (this.#options.admit === undefined || this.#options.admit())
    );
  }

  /** Count a connection until its socket closes. */
  #count(socket: Duplex): void {
    this.#open++;
    socket.once('close', () => this.#open--);
  }

  /** An upgrade request of an attached server (`ws.server`): count it as an accepted connection, or refuse it (false: 503). */
  readonly #countAttached = (socket: Duplex): boolean => {
    if (!this.#admits()) return false;
    this.#count(socket);
    return true;
  };

  readonly #onConnection = (accepted: net.Socket): void => {
    if (!this.#admits()) {
      accepted.on('error', noop);
      accepted.destroy();
      return;
    }
    let socket = accepted;
    const direct = this.#tls === undefined && this.#ws === undefined ? adoptAccepted(accepted) : undefined;
    if (direct !== undefined) {
      socket = direct.socket;
      readsThrough(socket, direct.reader);
    }
    this.#count(socket);
    if (this.#options.path === undefined) {
      socket.setNoDelay(this.#options.noDelay ?? true);
      const keepAlive = this.#options.keepAlive;
      if (keepAlive) socket.setKeepAlive(true, keepAlive === true ? 0 : keepAlive);
    }
    if (this.#tls !== undefined) this.#tls.emit('connection', socket);
    else if (this.#ws !== undefined) this.#ws.connection(socket);
    else void this.#onTransport(socket);
  };

  /** A transport is up (a socket, a TLS socket, a WebSocket): read its hello, then make a session, resume one, or refuse. */
  async #onTransport(socket: Transport): Promise<void> {
    socket.on('error', noop); // until a session takes it: its failure ends this connection only
    let hello: Hello;
    let rest: Buffer;
    this.#handshaking++;
    try {
      const start = new ConnectionStart(socket, this.#handshakeTimeout);
      // With `auth`, every connection proves the key before its hello: the first and each resume.
      if (this.#key !== undefined) await authHandshake(this.#key, true, start);
      hello = decodeClientHello(await start.read(CLIENT_HELLO_LENGTH));
      rest = start.finish();
    } catch {
      this.stats.refused++;
      socket.destroy(); // a wrong key, a bad or missing hello: that connection only
      return;
    } finally {
      this.#handshaking--;
    }
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (isNewSessionToken(hello.token)) this.#newSession(socket, hello, rest);
    else this.#resume(socket, hello, rest);
  }

  #refuse(socket: Duplex, status: number): void {
    this.stats.refused++;
    socket.end(encodeServerHello({ status, token: Buffer.alloc(TOKEN_LENGTH), received: 0, messages: 0, window: 1 }));
    discardReads(socket);
    const timer = setTimeout(() => socket.destroy(), DEFAULT_CLOSE_TIMEOUT);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  #newSession(socket: Transport, hello: Hello, rest: Buffer): void {
    if (hello.received !== 0 || hello.messages !== 0 || this.#sessions.size >= this.#maxSessions) {
      this.#refuse(socket, hello.received !== 0 || hello.messages !== 0 ? Status.UNKNOWN : Status.BUSY);
      return;
    }
    const token = cryptoLib().randomBytes(TOKEN_LENGTH);
    const s = this.#settings;
    const stream = new SessionStream(
      {
        token,
        window: s.window,
        peerWindow: hello.window,
        heartbeat: s.heartbeat,
        owner: this.#owner,
        budget: this.#replayBudget,
      },
      socket,
    );
    stream.peerCertificate = certificateOf(socket);
    stream.identity = fingerprintOf(socket);
    this.#sessions.set(token.toString('hex'), stream);
    stream.attach(socket, hello, rest, encodeServerHello({ ...stream.hello(), status: Status.OK }));
    if (stream.destroyed) {
      // What came with the hello ended the session (a bad segment, an ABORT): that connection is
      // refused, and the application never sees a session that a Channel over it would report closed cleanly.
      this.stats.refused++;
      stream.on('error', noop); // its error, emitted on a later tick, concerns that connection only
      return;
    }
    // `auth` ran on the connection, under the session (and runs again on each resume): not above it.
    const { resume: _resume, auth: _auth, ...options } = this.#options;
    let channel: Channel;
    try {
      channel = this.#create(stream, { ...options, isServer: true, budget: this.#memory });
    } catch (error) {
      stream.destroy();
      this.#fatal(error as Error);
      return;
    }
    recordSession(channel, stream);
    this.#handshaking++;
    channel.ready.then(
      () => {
        this.#handshaking--;
        this.#accepted.push(channel); // destroyed instead if the listener has closed meanwhile
      },
      () => this.#handshaking--, // a failed handshake ends that session only
    );
  }

  #resume(socket: Transport, hello: Hello, rest: Buffer): void {
    const stream = this.#sessions.get(hello.token.toString('hex'));
    if (stream === undefined || stream.destroyed) {
      this.#refuse(socket, Status.UNKNOWN);
      return;
    }
    if (stream.identity !== fingerprintOf(socket)) {
      this.#refuse(socket, Status.IDENTITY);
      return;
    }
    try {
      stream.attach(socket, hello, rest, encodeServerHello({ ...stream.hello(), status: Status.OK }));
    } catch {
      this.stats.refused++;
      socket.destroy(); // offsets that do not fit: that connection only, the session waits on
      return;
    }
    const timer = this.#detached.get(stream);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#detached.delete(stream);
    }
  }

  /** What the sessions tell their listener. */
  readonly #owner: SessionOwner = {
    detached: (stream) => this.#onDetached(stream),
    ended: (stream) => this.#onEnded(stream),
  };

  #onDetached(stream: SessionStream): void {
    if (this.#detached.has(stream)) return;
    if (this.#closed) {
      // Nothing listens for its client any more: waiting `keep` would only hold a timer.
      this.stats.expired++;
      stream.lose('the listener is closed');
      return;
    }
    const timer = setTimeout(
      () => this.#expire(stream, `no reconnection within keep (${this.#settings.keep} ms)`),
      this.#settings.keep,
    );
    this.#detached.set(stream, timer);
    if (this.#detached.size > this.#settings.maxDetached) {
      const oldest = this.#detached.keys().next().value!;
      this.#expire(oldest, `more than maxDetached (${this.#settings.maxDetached}) sessions without a connection`);
    }
  }

  #onEnded(stream: SessionStream): void {
    this.#sessions.delete(stream.token.toString('hex'));
    clearTimeout(this.#detached.get(stream));
    this.#detached.delete(stream);
  }

  #expire(stream: SessionStream, reason: string): void {
    this.stats.expired++;
    clearTimeout(this.#detached.get(stream));
    this.#detached.delete(stream);
    stream.lose(reason);
  }

  /** A listener error (EADDRINUSE, ...) is thrown once by the iterator (or accept()), then it is done. */
  #fatal(error: Error): void {
    this.#accepted.fail(error);
    void this.close();
  }

  /** Wait for the next new session. Resolves with undefined once the listener is closed. */
  accept(): Promise<Channel | undefined> {
    return this.#accepted.accept();
  }

  /**
   * Stop accepting connections. Sessions handed out stay open while their connection lasts; one
   * without a connection, now or once its connection drops, cannot come back and is lost at once
   * (SessionLostError). Sessions accepted but not yet handed out are closed.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    for (const stream of [...this.#detached.keys()]) this.#expire(stream, 'the listener is closed');
    this.#accepted.close();
    this.#ws?.close();
    this.#closing = new Promise<void>((resolve) => {
      if (!this.#server.listening || attachedServer(this.#options) !== undefined) {
        resolve();
        return;
      }
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
