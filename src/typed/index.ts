/** The typed layer: Protocol registry, payload codecs, typed channel, packetmq session. */
export { json, msgpack, msgpackCodec, raw, uint, uint32, utf8String, type Codec, type MsgpackCodecOptions } from './codec.js';
export {
  Protocol,
  type MessageDefinition,
  type MessageMap,
  type MessagesOf,
  type MessageRef,
  type ProtocolOptions,
  type TypedMessage,
} from './protocol.js';
export {
  TypedChannel,
  type FrameTransport,
  type TypedChannelOptions,
  type TypedChannelStats,
  type TypedSendOptions,
} from './typedChannel.js';
export {
  DEFAULT_PACKETMQ_HANDSHAKE_TIMEOUT,
  PACKETMQ_MAX_ID,
  PACKETMQ_MAX_LENGTH,
  PACKETMQ_MIN_ID,
  PACKETMQ_RESERVED,
  PACKETMQ_VERSION,
  PacketmqSession,
  packetmqChannelOptions,
  packetmqFraming,
  packetmqProtocol,
  type PacketmqSessionOptions,
  type PacketmqStats,
} from './packetmq.js';
