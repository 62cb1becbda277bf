/**
 * `node:diagnostics_channel` events of every Channel, for tracing and metrics without wrapping the
 * API. Each publish first checks `hasSubscribers`, so with nobody subscribed an event costs one
 * property read and builds nothing. The channels are global by name, so the ESM and the CommonJS
 * copies of the library publish to the same ones.
 *
 * - `msgchannel:connect` `{ channel, isServer }`: a channel is open (its handshakes are done).
 * - `msgchannel:close` `{ channel, error }`: its transport closed; `error` as `channel.closed` resolves.
 * - `msgchannel:error` `{ channel, error }`: an error is ending it (transport, protocol, handshake,
 *   timeout, destroy(error)); or `{ channel: undefined, error, target }`: a connect attempt failed.
 */
import dc from 'node:diagnostics_channel';
import type { Channel } from './channel.js';

/** The names of the diagnostics channels msgchannel publishes on. */
export const DIAGNOSTICS_CHANNELS = Object.freeze({
  connect: 'msgchannel:connect',
  close: 'msgchannel:close',
  error: 'msgchannel:error',
} as const);

/** What `msgchannel:connect` publishes. */
export interface ConnectEvent {
  channel: Channel;
  /** True on the accepting side (a Listener, a Server, the second end of Channel.pair). */
  isServer: boolean;
}
/** What `msgchannel:close` publishes. */
export interface CloseEvent {
  channel: Channel;
  /** undefined after a clean close, the error that ended the channel otherwise. */
  error: Error | undefined;
}
/** What `msgchannel:error` publishes. */
export interface ErrorEvent {
  /** undefined when a connect attempt failed before a channel existed. */
  channel: Channel | undefined;
  error: Error;
  /** The address a failed connect attempt was for (`host:port` or a path). */
  target?: string;
}

const connect = dc.channel(DIAGNOSTICS_CHANNELS.connect);
const close = dc.channel(DIAGNOSTICS_CHANNELS.close);
const error = dc.channel(DIAGNOSTICS_CHANNELS.error);

export function publishConnect(channel: Channel, isServer: boolean): void {
  if (connect.hasSubscribers) connect.publish({ channel, isServer } satisfies ConnectEvent);
}

export function publishClose(channel: Channel, err: Error | undefined): void {
  if (close.hasSubscribers) close.publish({ channel, error: err } satisfies CloseEvent);
}

export function publishError(channel: Channel | undefined, err: Error, target?: string): void {
  if (error.hasSubscribers)
    error.publish(
      (target === undefined ? { channel, error: err } : { channel, error: err, target }) satisfies ErrorEvent,
    );
}
