/**
 * Channel.connect(): TCP, TLS or a Unix socket, with a timeout and an abort signal. Every option
 * is checked before a socket is opened. The Channel comes from a factory, so this module only
 * knows its type.
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { TimeoutError } from '../errors.js';
import { afterTimeout, tlsLib, type Timer } from '../util.js';
import type { Channel } from './channel.js';
import { publishError } from './diagnostics.js';
import { SessionStream } from '../session/stream.js';
import { DIRECT_READS, DirectReader } from './reader.js';
import { writesDoneAtCallback } from './writer.js';
import { checkConnectOptions, type ChannelInternals, type ChannelOptions, type ConnectOptions } from './options.js';

/** Makes a channel for a connected stream (Channel.connect and Channel.listen pass `new Channel`). */
export type ChannelFactory = (stream: Duplex, options: ChannelOptions & ChannelInternals) => Channel;

function describeTarget(opts: {
  host?: string | undefined;
  port?: number | undefined;
  path?: string | undefined;
}): string {
  return opts.path !== undefined ? opts.path : `${opts.host ?? 'localhost'}:${opts.port}`;
}

/** Connect, then make the channel with `create` once the transport (and TLS) is up; resolves once its handshakes are done. */
export function connectChannel(opts: ConnectOptions, create: ChannelFactory): Promise<Channel> {
  let timeout: number | undefined;
  try {
    timeout = checkConnectOptions(opts); // before any socket: a bad option rejects, never throws later
  } catch (error) {
    return Promise.reject(error);
  }
  const target = describeTarget(opts);
  return new Promise<Channel>((resolve, reject) => {
    const where = opts.path !== undefined ? { path: opts.path } : { host: opts.host ?? 'localhost', port: opts.port! };
    const secure = opts.tls !== undefined;
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    // Plain sockets read through the direct path (reader.ts) where Node offers it.
    const reader = !secure && DIRECT_READS ? new DirectReader() : undefined;
    const socket: net.Socket = secure
      ? tlsLib().connect({ ...(opts.tls === true ? {} : opts.tls), ...where })
      : net.connect(reader === undefined ? where : { ...where, onread: reader.onread });
    if (reader !== undefined) writesDoneAtCallback(socket); // a plain Node socket
    let channel: Channel | undefined;
    let timer: Timer | undefined;
    const settle = (): void => {
      timer?.clear();
      opts.signal?.removeEventListener('abort', onAbort);
      socket.removeListener('error', onError);
    };
    const fail = (error: unknown): void => {
      settle();
      if (channel) channel.destroy(error as Error);
      else {
        socket.destroy();
        if (error instanceof Error) publishError(undefined, error, target);
      }
      reject(error);
    };
    const onError = (error: Error): void => fail(error);
    const onAbort = (): void => fail(opts.signal!.reason);
    socket.once('error', onError);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = afterTimeout(timeout, () => fail(new TimeoutError(`connect to ${target} timed out after ${timeout} ms`)));
    }
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      if (opts.path === undefined) socket.setNoDelay(opts.noDelay ?? true);
      if (opts.keepAlive && opts.path === undefined)
        socket.setKeepAlive(true, opts.keepAlive === true ? 0 : opts.keepAlive);
      socket.removeListener('error', onError);
      try {
        channel = create(socket, reader === undefined ? opts : { ...opts, reader });
      } catch (error) {
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
    });
  });
}

/** A TLS stream's peer certificate (on a mutual-TLS server, the client's); undefined for any other stream or none. */
export function peerCertificateOf(stream: Duplex): tls.PeerCertificate | undefined {
  if (stream instanceof SessionStream) return stream.peerCertificate; // a resumable session: its first connection's
  if (!(stream instanceof tlsLib().TLSSocket)) return undefined;
  const cert = stream.getPeerCertificate();
  return cert != null && Object.keys(cert).length > 0 ? cert : undefined;
}
