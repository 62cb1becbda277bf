/**
 * msgchannel/browser: the client side for web pages (docs/websocket.md). ESM with no `node:`
 * import (test/browser/bundle.test.ts checks the bundle): a Channel over the WebSocket API,
 * RequestChannel over it, and the error classes, with Uint8Array where Node has Buffer.
 */
export { Channel, type BrowserConnectOptions } from './channel.js';
export { RequestChannel, type BrowserRequestOptions, type BrowserRequestReply } from './requests.js';
export { MsgDecoder, msgHeader } from './msg.js';
export {
  ChannelClosedError,
  ErrorCode,
  MessageTooLargeError,
  MsgChannelError,
  NoHandlerError,
  ProtocolError,
  RemoteError,
  SendQueueFullError,
  SlowConsumerError,
  TimeoutError,
  UnexpectedEofError,
} from '../errors.js';
