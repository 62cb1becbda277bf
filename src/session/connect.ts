/**
 * The connecting side of a resumable session (`Channel.connect(..., { resume })`): the first
 * connection makes the session; when a connection drops, it reconnects with backoff and resumes,
 * for up to `keep` ms, to the same place (host and port, a Unix path, or a ws:// or wss:// URL)
 * with the same options; a refusal (the server no longer knows the session) ends it with
 * SessionLostError. The Channel comes from a factory, so this module only knows its type.
 */
import type { Channel } from '../core/channel.js';
import type { ChannelFactory } from '../core/connect.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT,
  checkConnectOptions,
  type ChannelOptions,
  type ConnectOptions,
} from '../core/options.js';
import { authHandshake, authKey } from '../auth.js';
import { AuthenticationError, ConnectionRefusedError, ProtocolError } from '../errors.js';
import { noop } from '../util.js';
import { checkWebSocketConnectOptions } from '../ws/connect.js';
import { checkResume, type ResumeSettings } from './options.js';
import { SessionStream, type SessionOwner } from './stream.js';
import { ConnectionStart, openTransport, tlsSocketOf, type Transport } from './transport.js';
import { SERVER_HELLO_LENGTH, Status, TOKEN_LENGTH, decodeServerHello, encodeClientHello, type Hello } from './wire.js';

/** Delays between reconnection attempts: the first is immediate, then 50 ms doubling up to 2 s, with jitter. */
const FIRST_RETRY_DELAY = 50;
const MAX_RETRY_DELAY = 2_000;

/** Why a server hello refuses, for errors. */
function refusal(status: number): string {
  switch (status) {
    case Status.UNKNOWN:
      return 'the server does not know the session (it restarted, or the session expired)';
    case Status.BUSY:
      return 'the server holds as many sessions as it may';
    default:
      return 'the resume did not come with the peer certificate the session began with';
  }
}

/**
 * One connection's start: with `auth` (its key), both sides prove they hold the key first, on
 * every connection of the session, the first and each resume; then the hellos. Resolves with the
 * server's hello and what followed it.
 */
async function exchangeHellos(
  opts: ConnectOptions,
  key: Buffer | undefined,
  mine: Hello,
  timeout: number,
  signal?: AbortSignal,
): Promise<{ transport: Transport; peer: Hello & { status: number }; rest: Buffer }> {
  const transport = await openTransport(opts, timeout, signal);
  try {
    const start = new ConnectionStart(transport, timeout, signal);
    if (key !== undefined) await authHandshake(key, false, start);
    start.write(encodeClientHello(mine));
    const hello = await start.read(SERVER_HELLO_LENGTH);
    return { transport, peer: decodeServerHello(hello), rest: start.finish() };
  } catch (error) {
    transport.on('error', noop);
    transport.destroy();
    throw error;
  }
}

/** Connect with `resume`: resolves with a Channel over a SessionStream once its handshakes are done. */
export async function connectSession(opts: ConnectOptions, create: ChannelFactory): Promise<Channel> {
  const settings = checkResume(opts.resume)!;
  const connectTimeout = opts.url !== undefined ? checkWebSocketConnectOptions(opts) : checkConnectOptions(opts);
  const timeout = connectTimeout ?? opts.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  const key = opts.auth === undefined ? undefined : authKey(opts.auth);
  const { transport, peer, rest } = await exchangeHellos(
    opts,
    key,
    { token: Buffer.alloc(TOKEN_LENGTH), received: 0, messages: 0, window: settings.window },
    timeout,
    opts.signal,
  );
  if (peer.status !== Status.OK) {
    transport.destroy();
    throw peer.status === Status.BUSY
      ? new ConnectionRefusedError(`session refused: ${refusal(peer.status)}`)
      : new ProtocolError(`session refused: ${refusal(peer.status)}`);
  }
  const reconnector = new Reconnector(opts, settings, key);
  const stream = new SessionStream(
    {
      token: peer.token,
      window: settings.window,
      peerWindow: peer.window,
      heartbeat: settings.heartbeat,
      owner: reconnector,
    },
    transport,
  );
  stream.peerCertificate = tlsSocketOf(transport)?.getPeerCertificate();
  try {
    stream.attach(transport, peer, rest);
  } catch (error) {
    stream.destroy();
    throw error;
  }
  // `auth` ran on the connection, under the session (and runs again on each resume): not above it.
  const { resume: _resume, auth: _auth, ...channelOptions } = opts;
  let channel: Channel;
  try {
    channel = create(stream, channelOptions as ChannelOptions);
  } catch (error) {
    stream.destroy();
    throw error;
  }
  sessions.set(channel, stream);
  await channel.ready; // a failed handshake has destroyed the channel and its stream
  return channel;
}

/** The session of each resumable Channel (for sessionStats). */
const sessions = new WeakMap<object, SessionStream>();

/** @internal The session stream under a Channel made with `resume`, if any. */
export function sessionOf(channel: object): SessionStream | undefined {
  return sessions.get(channel);
}

/** @internal Record the session under a Channel (the listening side does it for the channels it makes). */
export function recordSession(channel: object, stream: SessionStream): void {
  sessions.set(channel, stream);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The connecting side's owner of a session: reconnects when its connection drops. */
class Reconnector implements SessionOwner {
  readonly #opts: ConnectOptions;
  readonly #settings: ResumeSettings;
  readonly #key: Buffer | undefined;
  /** Aborts the attempt in progress once the session ends. */
  readonly #stop = new AbortController();
  #running = false;

  constructor(opts: ConnectOptions, settings: ResumeSettings, key: Buffer | undefined) {
    this.#opts = opts;
    this.#settings = settings;
    this.#key = key;
  }

  detached(stream: SessionStream): void {
    if (this.#running) return;
    this.#running = true;
    this.#reconnect(stream).then(
      () => (this.#running = false),
      (error: unknown) => {
        this.#running = false;
        stream.destroy(error as Error);
      },
    );
  }

  ended(): void {
    this.#stop.abort();
  }

  async #reconnect(stream: SessionStream): Promise<void> {
    const deadline = Date.now() + this.#settings.keep;
    const signal = this.#stop.signal;
    let delay = 0;
    for (;;) {
      // The backoff never sleeps past the deadline: the session is lost `keep` ms after its connection, not a backoff step later.
      if (delay > 0) await sleep(Math.min(delay * (0.5 + Math.random() / 2), deadline - Date.now()), signal);
      if (signal.aborted || stream.destroyed) return;
      const left = deadline - Date.now();
      if (left <= 0) {
        stream.lose(`no connection within keep (${this.#settings.keep} ms)`);
        return;
      }
      delay = delay === 0 ? FIRST_RETRY_DELAY : Math.min(delay * 2, MAX_RETRY_DELAY);
      let attempt;
      try {
        attempt = await exchangeHellos(
          this.#opts,
          this.#key,
          stream.hello(),
          Math.min(left, 2 * this.#settings.heartbeat),
          signal,
        );
      } catch (error) {
        // The server no longer accepts our key (or is another server): retrying cannot help.
        if (error instanceof AuthenticationError) throw error;
        continue; // refused, reset, timed out: try again until `keep` runs out
      }
      const { transport, peer, rest } = attempt;
      if (signal.aborted || stream.destroyed) {
        transport.destroy();
        return;
      }
      if (peer.status === Status.BUSY) {
        transport.destroy();
        continue;
      }
      if (peer.status !== Status.OK) {
        transport.destroy();
        stream.lose(refusal(peer.status));
        return;
      }
      if (!peer.token.equals(stream.token)) {
        transport.destroy();
        throw new ProtocolError('session resume answered with another session token');
      }
      try {
        stream.attach(transport, peer, rest);
      } catch (error) {
        transport.destroy();
        throw error; // a confused or hostile server: the session ends with that ProtocolError
      }
      return;
    }
  }
}
