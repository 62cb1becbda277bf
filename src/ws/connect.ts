/**
 * Channel.connect('ws://host:port/path') and 'wss://...' in Node: a `ws` WebSocket client, wrapped
 * in a WebSocketStream and handed to the Channel factory, with the same timeout and abort signal
 * as a TCP connect. Every option is checked before a socket is opened. openWebSocket() is the one
 * place a WebSocket is opened: the plain connect uses it, and so does a session (`resume`) for
 * each of its connections.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type * as net from 'node:net';
import { ConnectionRefusedError, TimeoutError } from '../errors.js';
import type { Channel } from '../core/channel.js';
import type { ChannelFactory } from '../core/connect.js';
import { publishError } from '../core/diagnostics.js';
import { checkConnectOptions, type ConnectOptions } from '../core/options.js';
import { noop } from '../util.js';
import { wsLib } from './accept.js';
import { WS_CHUNK, WebSocketStream } from './stream.js';

/** A ws:// or wss:// URL (the target of Channel.connect(url)). */
export function isWebSocketUrl(target: unknown): target is string {
  return typeof target === 'string' && /^wss?:\/\//i.test(target);
}

/** Channel.connect's arguments as one options object: `(url, options?)`, `(host, port, options?)` or `(options)`. */
export function connectOptionsOf(
  target: string | ConnectOptions,
  port: number | ConnectOptions | undefined,
  options: ConnectOptions | undefined,
): ConnectOptions {
  if (typeof target !== 'string') return { ...target };
  if (isWebSocketUrl(target)) return { ...(typeof port === 'object' ? port : options), url: target };
  return { ...options, host: target, port: port as number };
}

/**
 * Check a WebSocket connect's options (the URL, every channel option and the timeout) before any
 * socket; returns the timeout. A Client checks its target with it once, up front; `resume` is
 * checked by the session that takes it.
 */
export function checkWebSocketConnectOptions(opts: ConnectOptions): number | undefined {
  if (!isWebSocketUrl(opts.url))
    throw new TypeError(`Expected \`url\` to be a ws:// or wss:// URL, got ${String(opts.url)}`);
  return checkConnectOptions({ ...opts, host: undefined, port: 0, path: undefined });
}

/**
 * Open a WebSocket to `opts.url` (already checked): resolves with its WebSocketStream once the
 * upgrade is done. An upgrade answered with HTTP 503 (the server's connection limit) rejects with
 * ConnectionRefusedError, another status with an error whose `status` is that status; `timeout`
 * ms (undefined: no limit) with TimeoutError; aborting `signal` with its reason. A failed attempt
 * leaves no socket behind.
 */
export function openWebSocket(
  opts: ConnectOptions,
  timeout: number | undefined,
  signal?: AbortSignal,
): Promise<WebSocketStream> {
  const url = opts.url!;
  return new Promise<WebSocketStream>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const { maxPayload = WS_CHUNK } = opts;
    const tls = opts.tls === true || opts.tls === undefined ? {} : opts.tls;
    const ws = new (wsLib().WebSocket)(url, {
      ...tls,
      maxPayload,
      perMessageDeflate: false,
      skipUTF8Validation: true,
      ...(opts.origin !== undefined && { origin: opts.origin }),
    });
    let socket: net.Socket | undefined;
    let timer: NodeJS.Timeout | undefined;
    const settle = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      ws.removeListener('error', onError);
      ws.removeListener('unexpected-response', onRefused);
    };
    const fail = (error: unknown): void => {
      settle();
      ws.on('error', noop); // terminate() before the upgrade reports an abort
      ws.terminate();
      reject(error);
    };
    const onError = (error: Error): void => fail(error);
    const onAbort = (): void => fail(signal!.reason);
    // The server answered the upgrade with an HTTP status instead of 101: 503 is its connection limit.
    const onRefused = (_request: ClientRequest, response: IncomingMessage): void => {
      const status = response.statusCode ?? 0;
      response.resume();
      fail(
        status === 503
          ? new ConnectionRefusedError(`${url} refused the connection (connection limit)`)
          : Object.assign(new Error(`${url} answered the WebSocket upgrade with HTTP ${status}`), {
              code: 'ERR_WEBSOCKET_UPGRADE',
              status,
            }),
      );
    };
    ws.once('error', onError);
    ws.once('unexpected-response', onRefused);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = setTimeout(() => fail(new TimeoutError(`connect to ${url} timed out after ${timeout} ms`)), timeout);
    }
    ws.once('upgrade', (response: IncomingMessage) => {
      socket = response.socket as net.Socket;
      socket.setNoDelay(opts.noDelay ?? true);
      if (opts.keepAlive) socket.setKeepAlive(true, opts.keepAlive === true ? 0 : opts.keepAlive);
    });
    ws.once('open', () => {
      settle();
      resolve(new WebSocketStream(ws, socket ?? {}, maxPayload)); // from now on the stream reports ws's errors
    });
  });
}

/** Connect over WebSocket to `opts.url`; resolves once the channel's handshakes are done. */
export function connectWebSocket(opts: ConnectOptions, create: ChannelFactory): Promise<Channel> {
  let timeout: number | undefined;
  try {
    timeout = checkWebSocketConnectOptions(opts);
  } catch (error) {
    return Promise.reject(error);
  }
  const url = opts.url!;
  return new Promise<Channel>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    // One deadline and one abort for the whole connect, the upgrade and then the channel's
    // handshakes: before the WebSocket is open they stop its opening, after it they destroy the channel.
    const opening = new AbortController();
    let channel: Channel | undefined;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (): void => {
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: unknown): void => {
      if (settled) return;
      settle();
      if (channel) channel.destroy(error as Error);
      else {
        opening.abort(error);
        if (error instanceof Error) publishError(undefined, error, url);
      }
      reject(error);
    };
    const onAbort = (): void => fail(opts.signal!.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = setTimeout(() => fail(new TimeoutError(`connect to ${url} timed out after ${timeout} ms`)), timeout);
    }
    openWebSocket(opts, undefined, opening.signal).then((stream) => {
      if (settled) {
        stream.destroy(); // failed in the same turn as the upgrade completed
        return;
      }
      try {
        channel = create(stream, { ...opts, reader: stream.reader }); // messages go straight to the Channel
      } catch (error) {
        stream.destroy();
        fail(error);
        return;
      }
      channel.ready.then(
        () => {
          settle();
          resolve(channel!);
        },
        (error: unknown) => fail(error),
      );
    }, fail);
  });
}
