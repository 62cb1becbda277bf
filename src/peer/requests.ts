/**
 * Request/reply for Server and Client: with `requests` (or an `onRequest` handler) every
 * connection speaks the RequestChannel envelope (docs/request-reply.md), so requests, replies and
 * one-way messages share it. Untyped only: a typed peer's messages use the framing's type field
 * and the codec's bytes, which the envelope would change (see docs/request-reply.md).
 */
import type { Channel } from '../core/channel.js';
import { NoHandlerError } from '../errors.js';
import { checkRequestSettings, type RequestChannelOptions, type RequestHandler } from '../rpc/options.js';
import { RequestChannel } from '../rpc/request.js';
import { describe } from '../validate.js';

/** Request/reply settings of a Server or Client: `true` for the defaults. */
export type RequestsOption = boolean | Omit<RequestChannelOptions, 'onRequest' | 'onError'>;

/** Whether a peer speaks request/reply, checking its options now (not at the first connection). */
export function requestsEnabled(options: {
  protocol?: unknown;
  requests?: RequestsOption;
  onRequest?: unknown;
}): boolean {
  if (options.onRequest !== undefined && typeof options.onRequest !== 'function') {
    throw new TypeError(`Expected \`onRequest\` to be a function, got ${describe(options.onRequest)}`);
  }
  const r = options.requests;
  if (r !== undefined && typeof r !== 'boolean' && (typeof r !== 'object' || r === null)) {
    throw new TypeError(`Expected \`requests\` to be a boolean or request settings, got ${describe(r)}`);
  }
  const on = (r !== undefined && r !== false) || options.onRequest !== undefined;
  if (!on) return false;
  if (options.protocol !== undefined) {
    throw new TypeError(
      'Expected no `protocol` with `requests`/`onRequest`: request/reply carries raw bodies (see docs/request-reply.md)',
    );
  }
  if (typeof r === 'object') checkRequestSettings(r);
  return true;
}

/** The RequestChannel of one connection. */
export function requestLayer(
  channel: Channel,
  option: RequestsOption | undefined,
  onRequest: RequestHandler,
  onError: (error: Error) => unknown,
): RequestChannel {
  return new RequestChannel(channel, { ...(typeof option === 'object' ? option : {}), onRequest, onError });
}

/** What a peer's request handler throws when none is set (the requester gets RemoteError with its code). */
export function noHandler(): Error {
  return new NoHandlerError();
}
