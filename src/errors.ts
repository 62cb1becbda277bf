/**
 * Every error msgchannel raises, one class per failure, each with a stable `code`.
 * Tests and callers should branch on `code` (or the class), never on the message text.
 */

/** The static property naming the symbol that brands a class's instances. */
const BRAND = Symbol.for('msgchannel.brand');

/**
 * Brand `cls`: its instances (and its subclasses' instances) carry `Symbol.for('msgchannel.<name>')`,
 * so `instanceof` holds across copies of this module (the ESM and the CommonJS build, two bundles).
 */
function brand(cls: abstract new (...args: never[]) => Error, name: string): void {
  const symbol = Symbol.for(`msgchannel.${name}`);
  Object.defineProperty(cls, BRAND, { value: symbol });
  Object.defineProperty(cls.prototype, symbol, { value: true });
}

/** Common base: `code` is stable across versions, `message` is for humans. */
export class MsgChannelError extends Error {
  static {
    brand(this, 'MsgChannelError');
  }

  readonly code: string;

  /** `instanceof` by brand for msgchannel's own classes (any copy of them); plain prototype checks for subclasses users write. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (!Object.prototype.hasOwnProperty.call(this, BRAND))
      return Function.prototype[Symbol.hasInstance].call(this, value);
    if (typeof value !== 'object' || value === null) return false;
    return (value as Record<symbol, unknown>)[(this as unknown as Record<symbol, symbol>)[BRAND]!] === true;
  }

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** send()/recv() on a closed channel, or the peer closed cleanly with nothing left to read. */
export class ChannelClosedError extends MsgChannelError {
  static {
    brand(this, 'ChannelClosedError');
  }

  /** Why the channel was closed, when the closing side said (e.g. a packetmq softquit reason). */
  readonly reason: string | undefined;
  constructor(message = 'channel is closed', options?: ErrorOptions & { reason?: string }) {
    super('ERR_CHANNEL_CLOSED', message, options);
    this.reason = options?.reason;
  }
}

/** The peer sent bytes that are not a valid frame. `offset` is the byte of the stream at fault. */
export class ProtocolError extends MsgChannelError {
  static {
    brand(this, 'ProtocolError');
  }

  /** Offset in the connection's inbound byte stream of the offending byte, when known. */
  readonly offset: number | undefined;
  constructor(message: string, options?: ErrorOptions & { offset?: number; code?: string }) {
    super(options?.code ?? 'ERR_PROTOCOL', message, options);
    this.offset = options?.offset;
  }
}

/** The peer closed the connection in the middle of a frame. */
export class UnexpectedEofError extends ProtocolError {
  static {
    brand(this, 'UnexpectedEofError');
  }

  constructor(message = 'connection closed in the middle of a frame', options?: ErrorOptions & { offset?: number }) {
    super(message, { ...options, code: 'ERR_UNEXPECTED_EOF' });
  }
}

/** A message above `maxMessageSize`: decided from the header before any allocation (receiving), or before any byte is written (sending). */
export class MessageTooLargeError extends MsgChannelError {
  static {
    brand(this, 'MessageTooLargeError');
  }

  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, direction: 'send' | 'recv') {
    super(
      'ERR_MESSAGE_TOO_LARGE',
      direction === 'recv'
        ? `peer announced a ${size}-byte message, above maxMessageSize ${limit}`
        : `cannot send a ${size}-byte message, above maxMessageSize ${limit}`,
    );
    this.size = size;
    this.limit = limit;
  }
}

/** An operation did not finish within its `timeout`. */
export class TimeoutError extends MsgChannelError {
  static {
    brand(this, 'TimeoutError');
  }

  constructor(message = 'operation timed out', options?: ErrorOptions) {
    super('ERR_TIMEOUT', message, options);
  }
}

/** A typed channel received a frame whose type id its Protocol does not define. The message is consumed; the channel stays open. */
export class UnknownMessageTypeError extends MsgChannelError {
  static {
    brand(this, 'UnknownMessageTypeError');
  }

  /** The type id on the wire. */
  readonly id: number;
  /** The frame body, undecoded. */
  readonly body: Buffer | undefined;
  constructor(id: number, options?: ErrorOptions & { body?: Buffer; message?: string }) {
    super('ERR_UNKNOWN_TYPE', options?.message ?? `received a message of unknown type id ${id}`, options);
    this.id = id;
    this.body = options?.body;
  }
}

/** A typed channel received a known message type whose body its codec could not unpack (`cause` says why). The message is consumed; the channel stays open. */
export class MessageDecodeError extends MsgChannelError {
  static {
    brand(this, 'MessageDecodeError');
  }

  readonly id: number;
  readonly body: Buffer;
  /** The message type's name (`name` is the error class name). */
  readonly type: string;
  constructor(id: number, type: string, body: Buffer, options?: ErrorOptions) {
    super(
      'ERR_DECODE',
      `cannot unpack a '${type}' message (type id ${id}): ${(options?.cause as Error | undefined)?.message ?? 'bad body'}`,
      options,
    );
    this.id = id;
    this.type = type;
    this.body = body;
  }
}

/** A session handshake (packetmq's) failed; `reason` is the dotted reason sent or received (e.g. `reason.versionmismatch`). */
export class HandshakeError extends MsgChannelError {
  static {
    brand(this, 'HandshakeError');
  }

  readonly reason: string | undefined;
  constructor(message: string, options?: ErrorOptions & { reason?: string }) {
    super('ERR_HANDSHAKE', message, options);
    this.reason = options?.reason;
  }
}

/** Authentication of the connection failed (a wrong authkey on either side, or a malformed challenge or answer). */
export class AuthenticationError extends MsgChannelError {
  static {
    brand(this, 'AuthenticationError');
  }

  constructor(message = 'authentication failed', options?: ErrorOptions) {
    super('ERR_AUTH', message, options);
  }
}

/** The peer refused a message we sent (tinyproto's negative ack); `status` is the byte it answered. */
export class MessageRefusedError extends MsgChannelError {
  static {
    brand(this, 'MessageRefusedError');
  }

  /** The peer's status byte (0x00 error, 0xFE connection limit, 0xFD conflict). */
  readonly status: number;
  /** Size of the refused message. */
  readonly size: number;
  constructor(size: number, status: number, message?: string) {
    super(
      'ERR_MESSAGE_REFUSED',
      message ?? `peer refused a ${size}-byte message (status 0x${status.toString(16).padStart(2, '0')})`,
    );
    this.size = size;
    this.status = status;
  }
}

/**
 * The server said it is at its connection limit: tinyproto's `FE` init byte, or in process at
 * connect. The Client also reads a packetmq softquit `reason.connectionlimit` as one. (A server
 * of another framing resets the connection, which the Client cannot tell from a crash or a flaky
 * network: it retries that with backoff, it is not this error.)
 * A ProtocolError subclass, so code that caught tinyproto's FE as a ProtocolError still does.
 */
export class ConnectionRefusedError extends ProtocolError {
  static {
    brand(this, 'ConnectionRefusedError');
  }

  constructor(
    message = 'the server refused the connection (connection limit)',
    options?: ErrorOptions & { offset?: number },
  ) {
    super(message, { ...options, code: 'ERR_CONNECTION_LIMIT' });
  }
}

/**
 * A message the Client accepted but could not send: its offline queue was full, or the client was
 * closed (or gave up reconnecting) before the message could be sent. `data` is the message.
 */
export class MessageNotSentError extends MsgChannelError {
  static {
    brand(this, 'MessageNotSentError');
  }

  /** The message, as given to send() (for a typed client, `{ name, data }`). */
  readonly data: unknown;
  /** Its position among the client's send() calls, counting from 1. */
  readonly seq: number;
  constructor(message: string, data: unknown, seq: number, options?: ErrorOptions) {
    super('ERR_NOT_SENT', message, options);
    this.data = data;
    this.seq = seq;
  }
}

/** A reconnecting Client used up `maxRetries` (`cause` is the last connection error). */
export class ReconnectFailedError extends MsgChannelError {
  static {
    brand(this, 'ReconnectFailedError');
  }

  readonly attempts: number;
  constructor(attempts: number, options?: ErrorOptions) {
    super('ERR_RECONNECT_FAILED', `gave up after ${attempts} failed connection attempts`, options);
    this.attempts = attempts;
  }
}

/**
 * A send() refused because the connection's outbound queue already holds `maxQueuedBytes`: the
 * peer is not reading (or not fast enough) and the sender did not wait. Nothing of the message was
 * written and the channel stays open; await earlier sends (or send less) and try again.
 */
export class SendQueueFullError extends MsgChannelError {
  static {
    brand(this, 'SendQueueFullError');
  }

  /** Size of the refused message. */
  readonly size: number;
  /** Bytes queued when it was refused. */
  readonly queued: number;
  readonly limit: number;
  constructor(size: number, queued: number, limit: number, what = `a ${size}-byte message`) {
    super(
      'ERR_SEND_QUEUE_FULL',
      `cannot queue ${what}: ${queued} bytes already wait to be written (maxQueuedBytes ${limit})`,
    );
    this.size = size;
    this.queued = queued;
    this.limit = limit;
  }
}

/**
 * A request's handler on the other side threw or rejected (RequestChannel, `Client.request`,
 * `Connection.request`). `message` is the remote error's message (at most 1024 bytes of UTF-8, no
 * stack: the peer's stack never crosses the wire); `remoteCode` is its `code` when it had a string
 * one. The channel carries on.
 */
export class RemoteError extends MsgChannelError {
  static {
    brand(this, 'RemoteError');
  }

  /** The remote error's own `code` (e.g. `ERR_TIMEOUT`, `ENOENT`), when it had one. */
  readonly remoteCode: string | undefined;
  constructor(message: string, options?: ErrorOptions & { remoteCode?: string }) {
    super('ERR_REMOTE', message, options);
    this.remoteCode = options?.remoteCode;
  }
}

/**
 * A Server closed a connection that did not keep up with broadcast(): its outbound queue was full
 * (`maxQueuedBytes`, with `slowConsumer: 'close'`), or it did not take a message within
 * `broadcastTimeout` (with `slowConsumer: 'wait'`). The connection's onClose gets this error.
 */
export class SlowConsumerError extends MsgChannelError {
  static {
    brand(this, 'SlowConsumerError');
  }

  /** Bytes waiting to be written to the connection when it was closed. */
  readonly queued: number;
  constructor(message: string, queued: number, options?: ErrorOptions) {
    super('ERR_SLOW_CONSUMER', message, options);
    this.queued = queued;
  }
}

/** Every stable error code msgchannel itself raises. */
export const ErrorCode = {
  CHANNEL_CLOSED: 'ERR_CHANNEL_CLOSED',
  PROTOCOL: 'ERR_PROTOCOL',
  UNEXPECTED_EOF: 'ERR_UNEXPECTED_EOF',
  MESSAGE_TOO_LARGE: 'ERR_MESSAGE_TOO_LARGE',
  TIMEOUT: 'ERR_TIMEOUT',
  AUTH: 'ERR_AUTH',
  MESSAGE_REFUSED: 'ERR_MESSAGE_REFUSED',
  UNKNOWN_TYPE: 'ERR_UNKNOWN_TYPE',
  DECODE: 'ERR_DECODE',
  HANDSHAKE: 'ERR_HANDSHAKE',
  CONNECTION_LIMIT: 'ERR_CONNECTION_LIMIT',
  NOT_SENT: 'ERR_NOT_SENT',
  RECONNECT_FAILED: 'ERR_RECONNECT_FAILED',
  SEND_QUEUE_FULL: 'ERR_SEND_QUEUE_FULL',
  REMOTE: 'ERR_REMOTE',
  SLOW_CONSUMER: 'ERR_SLOW_CONSUMER',
  SENDS_FAILED: 'ERR_SENDS_FAILED',
  NO_HANDLER: 'ERR_NO_HANDLER',
  SESSION_LOST: 'ERR_SESSION_LOST',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * What a call on an ended channel rejects with: the ChannelClosedError that ended it, or a new one
 * whose cause is the error that did (undefined: a plain 'channel is closed').
 */
export function closedError(ended: Error | undefined): ChannelClosedError {
  if (ended instanceof ChannelClosedError) return ended;
  return new ChannelClosedError('channel is closed', ended ? { cause: ended } : undefined);
}

/**
 * What a RequestChannel answers a request with when this side has no `onRequest` handler: the
 * requester gets RemoteError with `remoteCode` ERR_NO_HANDLER.
 */
export class NoHandlerError extends MsgChannelError {
  static {
    brand(this, 'NoHandlerError');
  }

  constructor() {
    super('ERR_NO_HANDLER', 'no request handler on this side (onRequest)');
  }
}

/**
 * An error made without capturing a stack trace: for errors a peer can cause by the million (a
 * malformed envelope, a remote error reply), where the stack would only point at the read loop.
 */
export function withoutStack<E extends Error>(make: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Channel.close() (and the layers' close() built on it): `count` sends failed, refused or dropped
 * (SendQueueFullError, the channel ended before they were written, the peer refused them), and
 * nobody had handled their promises: without this, those messages would be gone without a word.
 * `cause` is the error of the latest of them. The channel is closed all the same.
 */
export class SendsFailedError extends MsgChannelError {
  static {
    brand(this, 'SendsFailedError');
  }

  /** Sends that failed with nobody handling their promises. */
  readonly count: number;
  constructor(count: number, options?: ErrorOptions) {
    super(
      'ERR_SENDS_FAILED',
      `${count} ${count === 1 ? 'message was' : 'messages were'} not sent, and nobody handled ${count === 1 ? 'its send() promise' : 'their send() promises'}`,
      options,
    );
    this.count = count;
  }
}

/**
 * Channel.pair's in-memory transport: a write to an end whose peer is closed or destroyed. The
 * code is a socket's own for a write after its peer closed (`EPIPE`), so code that branches on a
 * socket's errors treats both alike.
 */
export class MemoryPipeClosedError extends MsgChannelError {
  static {
    brand(this, 'MemoryPipeClosedError');
  }

  constructor(message: string) {
    super('EPIPE', message);
  }
}

/**
 * Channel.pair's in-memory transport: the peer end was destroyed with an error, as a TCP peer's
 * reset; the code is a socket's own (`ECONNRESET`).
 */
export class MemoryPeerResetError extends MsgChannelError {
  static {
    brand(this, 'MemoryPeerResetError');
  }

  constructor(message = 'in-memory peer was destroyed') {
    super('ECONNRESET', message);
  }
}

/**
 * A resumable session (`resume`) ended without its peer: it could not reconnect within `keep`,
 * or the peer no longer knew it (it restarted, or expired it). The messages this side sent that
 * the peer had not acknowledged are counted: they are the last `unacknowledged` messages sent,
 * numbered from `firstUnacknowledged` (0-based, in send order since the session began).
 */
export class SessionLostError extends MsgChannelError {
  static {
    brand(this, 'SessionLostError');
  }

  /** Messages sent (send() resolved) that the peer never acknowledged. */
  readonly unacknowledged: number;
  /** The send-order number (0-based) of the first of them: every message before it was received. */
  readonly firstUnacknowledged: number;
  /** Bytes of the stream (framing headers included) the peer never acknowledged. */
  readonly unacknowledgedBytes: number;
  constructor(
    message: string,
    counts: { unacknowledged: number; firstUnacknowledged: number; unacknowledgedBytes: number },
    options?: ErrorOptions,
  ) {
    super('ERR_SESSION_LOST', message, options);
    this.unacknowledged = counts.unacknowledged;
    this.firstUnacknowledged = counts.firstUnacknowledged;
    this.unacknowledgedBytes = counts.unacknowledgedBytes;
  }
}

/**
 * Server.listen({ memory }): the in-process name is already taken by another server in this
 * process. The code is a socket's own for a bound address (`EADDRINUSE`), so code that branches on
 * listen errors treats both alike.
 */
export class MemoryAddressInUseError extends MsgChannelError {
  static {
    brand(this, 'MemoryAddressInUseError');
  }

  constructor(name: string) {
    super('EADDRINUSE', `in-process address '${name}' is already in use`);
  }
}

/**
 * Client.connect({ memory }): no server in this process listens on that in-process name. The code
 * is a socket's own for nobody listening (`ECONNREFUSED`), so the Client retries it with backoff
 * as it does a TCP refusal. Not a ConnectionRefusedError: no server said it is full.
 */
export class MemoryServerNotFoundError extends MsgChannelError {
  static {
    brand(this, 'MemoryServerNotFoundError');
  }

  constructor(name: string) {
    super('ECONNREFUSED', `no in-process server named '${name}'`);
  }
}
