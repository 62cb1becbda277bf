/**
 * The transport connections under a session: open one (TCP, TLS or a Unix socket) and read the
 * fixed-size hello at its start, each within a time limit.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { ChannelClosedError, TimeoutError } from '../errors.js';
import { noop, tlsLib } from '../util.js';
import type { ConnectOptions } from '../core/options.js';

/** Open a transport connection to where `opts` says, within `timeout` ms (and `signal`). */
export function openTransport(opts: ConnectOptions, timeout: number, signal?: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const where = opts.path !== undefined ? { path: opts.path } : { host: opts.host ?? 'localhost', port: opts.port! };
    const secure = opts.tls !== undefined;
    const socket: net.Socket = secure
      ? tlsLib().connect({ ...(opts.tls === true ? {} : opts.tls), ...where })
      : net.connect(where);
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

/**
 * Read the first `length` bytes of `transport` (a hello) within `timeout` ms: resolves with them
 * and what came after them. Rejects (the transport left to the caller) on an end, error or timeout.
 */
export function readHello(
  transport: Duplex,
  length: number,
  timeout: number,
  signal?: AbortSignal,
): Promise<{ hello: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const settle = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      transport.removeListener('data', onData);
      transport.removeListener('error', fail);
      transport.removeListener('end', onEnd);
      transport.removeListener('close', onEnd);
    };
    const fail = (error: unknown): void => {
      settle();
      reject(error);
    };
    const onEnd = (): void => fail(new ChannelClosedError('connection closed during the session hello'));
    const onAbort = (): void => fail(signal!.reason);
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      have += chunk.length;
      if (have < length) return;
      settle();
      transport.pause(); // nothing is read until the session takes over
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks, have);
      resolve({ hello: all.subarray(0, length), rest: all.subarray(length) });
    };
    const timer = setTimeout(() => fail(new TimeoutError(`session hello timed out after ${timeout} ms`)), timeout);
    transport.on('data', onData);
    transport.once('error', fail);
    transport.once('end', onEnd);
    transport.once('close', onEnd);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
