/**
 * The transport connections under a session: open one (TCP, TLS, a Unix socket, or a WebSocket
 * for a ws:// or wss:// `url`) and read the fixed-size hello at its start, each within a time limit.
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { ChannelClosedError, TimeoutError } from '../errors.js';
import { DIRECT_READS, DirectReader, readFrom, readsThrough, type ReadTarget } from '../core/reader.js';
import { noop, tlsLib } from '../util.js';
import type { ConnectOptions } from '../core/options.js';
import { openWebSocket } from '../ws/connect.js';
import { WebSocketStream } from '../ws/stream.js';

/** A transport connection under a session: a socket, a TLS socket or a WebSocketStream, each with its peer's address. */
export type Transport = Duplex & {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
};

/** Open a transport connection to where `opts` says (`url`, `path`, or host and port), within `timeout` ms (and `signal`). */
export function openTransport(opts: ConnectOptions, timeout: number, signal?: AbortSignal): Promise<Transport> {
  if (opts.url !== undefined) return openWebSocket(opts, timeout, signal);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const where = opts.path !== undefined ? { path: opts.path } : { host: opts.host ?? 'localhost', port: opts.port! };
    const secure = opts.tls !== undefined;
    // Plain sockets read through the direct path (core/reader.ts) where Node offers it: the
    // session's DATA bytes are then read straight into the Channel's bodies.
    const reader = !secure && DIRECT_READS ? new DirectReader() : undefined;
    const socket: net.Socket = secure
      ? tlsLib().connect({ ...(opts.tls === true ? {} : opts.tls), ...where })
      : net.connect(reader === undefined ? where : { ...where, onread: reader.onread });
    if (reader !== undefined) readsThrough(socket, reader);
    const settle = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeListener('error', fail);
    };
    const fail = (error: unknown): void => {
      settle();
      socket.on('error', noop);
      socket.destroy();
      reject(error);
    };
    const onAbort = (): void => fail(signal!.reason);
    const timer = setTimeout(() => fail(new TimeoutError(`session connect timed out after ${timeout} ms`)), timeout);
    socket.once('error', fail);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      settle();
      if (opts.path === undefined) socket.setNoDelay(opts.noDelay ?? true);
      if (opts.keepAlive && opts.path === undefined)
        socket.setKeepAlive(true, opts.keepAlive === true ? 0 : opts.keepAlive);
      resolve(socket);
    });
  });
}

/** The TLS socket a transport runs on (itself, or the socket under a wss:// WebSocket), undefined without TLS. */
export function tlsSocketOf(transport: Duplex): tls.TLSSocket | undefined {
  const socket = transport instanceof WebSocketStream ? transport.socket : transport;
  return socket instanceof tlsLib().TLSSocket ? socket : undefined;
}

/** Bytes read beyond the piece asked for before reading pauses: the hellos and `auth`'s pieces are far smaller. */
const START_READ_AHEAD = 64 * 1024;

/**
 * The start of a transport connection, read as exact-length pieces (the `auth` exchange, then the
 * hello) within one deadline. Any end, error, abort or the deadline fails the read in progress and
 * every later one; the transport is left to the caller. finish() stops reading (the transport
 * paused, until the session takes it over) and returns what came after the last piece. A peer
 * that sends more than it was asked for is read no further than START_READ_AHEAD bytes ahead.
 */
export class ConnectionStart {
  readonly #transport: Duplex;
  readonly #signal: AbortSignal | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #stopReading: () => void;
  #chunks: Buffer[] = [];
  #have = 0;
  #error: unknown;
  #pending: { n: number; resolve(b: Buffer): void; reject(e: unknown): void } | null = null;

  constructor(transport: Duplex, timeout: number, signal?: AbortSignal) {
    this.#transport = transport;
    this.#signal = signal;
    this.#timer = setTimeout(
      () => this.#fail(new TimeoutError(`session connection start (auth, hello) timed out after ${timeout} ms`)),
      timeout,
    );
    const target: ReadTarget = { data: this.#onData, space: () => null, filled: noop };
    this.#stopReading = readFrom(transport, target);
    transport.once('error', this.#fail);
    transport.once('end', this.#onEnd);
    transport.once('close', this.#onEnd);
    if (signal?.aborted) this.#fail(signal.reason);
    else signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** The next `n` bytes. */
  read(n: number): Promise<Buffer> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#pending = { n, resolve, reject };
      this.#serve();
    });
  }

  /** Write `bytes` to the transport (nothing once it is gone). */
  write(bytes: Uint8Array): void {
    if (!this.#transport.destroyed) this.#transport.write(bytes);
  }

  /** Stop reading; what came after the last piece read. */
  finish(): Buffer {
    this.#stop(); // nothing more is read until the session takes the transport over
    const rest = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#have);
    this.#chunks = [];
    this.#have = 0;
    return rest;
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#chunks.push(chunk);
    this.#have += chunk.length;
    this.#serve();
    if (this.#have >= START_READ_AHEAD && !this.#transport.isPaused()) this.#transport.pause();
  };

  #serve(): void {
    const p = this.#pending;
    if (p === null) return;
    if (this.#have < p.n) {
      if (this.#transport.isPaused() && this.#error === undefined) this.#transport.resume();
      return;
    }
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#have);
    const rest = all.subarray(p.n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#have = rest.length;
    this.#pending = null;
    p.resolve(all.subarray(0, p.n));
  }

  readonly #onEnd = (): void => this.#fail(new ChannelClosedError('connection closed during the session hello'));
  readonly #onAbort = (): void => this.#fail(this.#signal!.reason);
  readonly #fail = (error: unknown): void => {
    if (this.#error !== undefined) return;
    this.#error = error;
    this.#stop();
    const p = this.#pending;
    this.#pending = null;
    p?.reject(error);
  };

  #stop(): void {
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    const transport = this.#transport;
    this.#stopReading();
    transport.removeListener('error', this.#fail);
    transport.removeListener('end', this.#onEnd);
    transport.removeListener('close', this.#onEnd);
  }
}
