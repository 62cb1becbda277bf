/**
 * Every error msgchannel raises, one class per failure, each with a stable `code`.
 * Tests and callers should branch on `code` (or the class), never on the message text.
 */

/** Common base: `code` is stable across versions, `message` is for humans. */
export class MsgChannelError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** send()/recv() on a closed channel, or the peer closed cleanly with nothing left to read. */
export class ChannelClosedError extends MsgChannelError {
  /** Why the channel was closed, when the closing side said (e.g. a packetmq softquit reason). */
  readonly reason: string | undefined;
  constructor(message = 'channel is closed', options?: ErrorOptions & { reason?: string }) {
    super('ERR_CHANNEL_CLOSED', message, options);
    this.reason = options?.reason;
  }
}

/** The peer sent bytes that are not a valid frame. `offset` is the byte of the stream at fault. */
export class ProtocolError extends MsgChannelError {
  /** Offset in the connection's inbound byte stream of the offending byte, when known. */
  readonly offset: number | undefined;
  constructor(message: string, options?: ErrorOptions & { offset?: number; code?: string }) {
    super(options?.code ?? 'ERR_PROTOCOL', message, options);
    this.offset = options?.offset;
  }
}

/** The peer closed the connection in the middle of a frame. */
export class UnexpectedEofError extends ProtocolError {
  constructor(message = 'connection closed in the middle of a frame', options?: ErrorOptions & { offset?: number }) {
    super(message, { ...options, code: 'ERR_UNEXPECTED_EOF' });
  }
}

/** A message above `maxMessageSize`: decided from the header before any allocation (receiving), or before any byte is written (sending). */
export class MessageTooLargeError extends MsgChannelError {
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
  constructor(message = 'operation timed out', options?: ErrorOptions) {
    super('ERR_TIMEOUT', message, options);
  }
}

/** Every stable error code msgchannel itself raises. */
export const ErrorCode = {
  CHANNEL_CLOSED: 'ERR_CHANNEL_CLOSED',
  PROTOCOL: 'ERR_PROTOCOL',
  UNEXPECTED_EOF: 'ERR_UNEXPECTED_EOF',
  MESSAGE_TOO_LARGE: 'ERR_MESSAGE_TOO_LARGE',
  TIMEOUT: 'ERR_TIMEOUT',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
