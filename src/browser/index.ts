/**
 * msgchannel/browser: the client side for web pages (docs/websocket.md). ESM with no `node:`
 * import (test/browser/bundle.test.ts checks the bundle): a Channel over the WebSocket API with
 * the MSG and length-prefixed framings, RequestChannel over it, and Node's own TypedChannel,
 * Protocol, codecs and error classes (shared code: src/platform.browser.ts stands in for Node's
 * platform.ts), with Uint8Array where Node has Buffer.
 */
export {
  Channel,
  type BrowserConnectOptions,
  type BrowserFrame,
  type BrowserRecvOptions,
  type BrowserSendOptions,
} from './channel.js';
export { RequestChannel, type BrowserRequestOptions, type BrowserRequestReply } from './requests.js';

// Framings: MSG (the default) and the length-prefixed ones, with Node's header layout.
export { MsgDecoder, msg, msgHeader } from './msg.js';
export { int32, lengthPrefixed, ltprotocol, type BrowserLengthPrefixedFraming } from './lengthPrefixed.js';
export type { BrowserDecoder, BrowserFraming, FrameSink } from './framing.js';
export type { LengthPrefixedOptions, StructCode } from '../framing/layout.js';

// The typed layer, as in Node: a TypedChannel over the browser Channel (a framing with a type field).
export {
  json,
  msgpack,
  msgpackCodec,
  raw,
  uint,
  uint32,
  utf8String,
  type Codec,
  type MsgpackCodecOptions,
} from '../typed/codec.js';
export {
  Protocol,
  type MessageDefinition,
  type MessageMap,
  type MessageRef,
  type MessagesOf,
  type ProtocolOptions,
  type TypedMessage,
} from '../typed/protocol.js';
export {
  TypedChannel,
  type FrameTransport,
  type TransportFrame,
  type TypedChannelOptions,
  type TypedChannelStats,
  type TypedSendOptions,
} from '../typed/typedChannel.js';

// Errors, with the same classes and codes as in Node.
export {
  ChannelClosedError,
  ErrorCode,
  MessageDecodeError,
  MessageTooLargeError,
  MsgChannelError,
  NoHandlerError,
  ProtocolError,
  RemoteError,
  SendQueueFullError,
  SlowConsumerError,
  TimeoutError,
  UnexpectedEofError,
  UnknownMessageTypeError,
} from '../errors.js';
