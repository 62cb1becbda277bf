/**
 * The listening side of WebSocket (`Channel.listen({ ws })`): turns HTTP upgrade requests into
 * WebSocketStreams for the Listener, which makes their channels as it does for sockets. Either
 * the Listener's own port serves WebSocket (it accepts, counts and refuses TCP connections as
 * usual, and hands each socket, after TLS with `tls`, to the HTTP parser here), or `server`
 * attaches to an http(s).Server the application runs, taking its upgrade requests.
 */
import type * as http from 'node:http';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import { lazyModule, noop } from '../util.js';
import { WS_CHUNK, WebSocketStream } from './stream.js';
import type { WebSocketListenOptions } from './options.js';

/** @internal `ws`, loaded by the first WebSocket listen or connect: a process without WebSocket does not pay for it (nor for node:http). */
export const wsLib = lazyModule<typeof import('ws')>('ws');
const httpLib = lazyModule<typeof import('node:http')>('node:http');

/** What the Listener does with WebSocket connections. */
export interface WebSocketHost {
  /** With `server`: count an upgrade request's connection until its socket closes, or refuse it (false). */
  admit(socket: Duplex): boolean;
  /** A WebSocket is open: make its channel. */
  deliver(stream: WebSocketStream): void;
}

/** Answer an HTTP request on a raw socket and close it. */
function reject(socket: Duplex, status: number, text: string): void {
  socket.on('error', noop);
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

export class WebSocketAcceptor {
  readonly #options: WebSocketListenOptions;
  readonly #host: WebSocketHost;
  readonly #handshakeTimeout: number;
  readonly #wss: WebSocketServer;
  readonly #maxPayload: number;
  /** Parses the HTTP of the listener's own connections (it never listens itself). */
  readonly #http: http.Server | undefined;

  constructor(options: WebSocketListenOptions, handshakeTimeout: number, host: WebSocketHost) {
    this.#options = options;
    this.#host = host;
    this.#handshakeTimeout = handshakeTimeout;
    this.#maxPayload = options.maxPayload ?? WS_CHUNK;
    // No compression: permessage-deflate would let a small message inflate past every limit, and
    // costs a copy of each message; no client tracking: the Listener counts connections.
    this.#wss = new (wsLib().WebSocketServer)({
      noServer: true,
      maxPayload: this.#maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
      skipUTF8Validation: true,
    });
    this.#wss.on('error', noop); // errors of one connection reach its stream
    const attached = options.server;
    if (attached !== undefined) {
      attached.on('upgrade', this.#onAttachedUpgrade);
      this.#http = undefined;
    } else {
      this.#http = httpLib().createServer((_request, response) => {
        response.writeHead(426, { Connection: 'close', Upgrade: 'websocket' }).end();
      });
      this.#http.on('upgrade', this.#onUpgrade);
      this.#http.on('clientError', (_error, socket) => reject(socket, 400, 'Bad Request'));
    }
  }

  /** The listener accepted (and counted) this connection: read its upgrade request, within handshakeTimeout. */
  connection(socket: net.Socket): void {
    socket.setTimeout(this.#handshakeTimeout, () => socket.destroy());
    this.#http!.emit('connection', socket);
  }

  readonly #onAttachedUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (!this.#pathMatches(request)) return; // another upgrade handler's
    if (!this.#host.admit(socket)) {
      reject(socket, 503, 'Service Unavailable');
      return;
    }
    this.#onUpgrade(request, socket, head);
  };

  readonly #onUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (!this.#pathMatches(request)) {
      reject(socket, 404, 'Not Found');
      return;
    }
    const origin = request.headers.origin;
    const allowed = this.#options.allowedOrigins;
    if (origin !== undefined && allowed !== undefined) {
      const ok = typeof allowed === 'function' ? allowed(origin) : allowed.includes(origin);
      if (!ok) {
        reject(socket, 403, 'Forbidden');
        return;
      }
    }
    socket.on('error', noop); // until the WebSocket owns it
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      const raw = socket as net.Socket;
      raw.setTimeout?.(0); // the channel's handshakeTimeout and idleTimeout take over
      this.#host.deliver(new WebSocketStream(ws, raw, this.#maxPayload));
    });
  };

  #pathMatches(request: http.IncomingMessage): boolean {
    const path = this.#options.path;
    if (path === undefined) return true;
    const url = request.url ?? '/';
    const q = url.indexOf('?');
    return (q === -1 ? url : url.slice(0, q)) === path;
  }

  /** Stop taking upgrade requests (an attached server keeps running). */
  close(): void {
    this.#options.server?.removeListener('upgrade', this.#onAttachedUpgrade);
    this.#http?.removeAllListeners('upgrade');
    this.#wss.close();
  }
}

/** The listener's acceptor with `ws`, else undefined. */
export function webSocketAcceptor(
  options: { ws?: WebSocketListenOptions | true | undefined },
  handshakeTimeout: number,
  admit: WebSocketHost['admit'],
  deliver: WebSocketHost['deliver'],
): WebSocketAcceptor | undefined {
  if (options.ws === undefined) return undefined;
  return new WebSocketAcceptor(options.ws === true ? {} : options.ws, handshakeTimeout, { admit, deliver });
}
