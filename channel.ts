/**
 * msgchannel: framed messages over TCP, TLS, Unix sockets and memory, with ordered async
 * send()/recv(). This is the package entry: named re-exports only, no logic, and no module of
 * the library imports it. See docs/architecture.md for the layers behind it.
 */

// Core: the Channel, its options and defaults, the Listener.
export { Channel } from './src/core/channel.js';
export { Listener } from './src/core/listener.js';
export {
  DEFAULT_BODY_TIMEOUT,
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_HEADER_TIMEOUT,
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_MAX_QUEUED_BYTES,
  DEFAULT_MEMORY_BUDGET,
  DEFAULT_SEND_HIGH_WATER_MARK,
  type ChannelOptions,
  type ChannelStats,
  type CloseOptions,
  type ConnectOptions,
  type Frame,
  type ListenOptions,
  type RecvOptions,
  type SendOptions,
  type SessionListenOptions,
} from './src/core/options.js';
// WebSocket (docs/websocket.md): the options of `ws` in listen(); Channel.connect('ws://...').
export type { WebSocketListenOptions } from './src/ws/options.js';
// Resumable sessions (`resume`): the listening side, options, defaults, counters.
export { SessionListener, type SessionListenerStats } from './src/session/listen.js';
export {
  DEFAULT_HEARTBEAT,
  DEFAULT_KEEP,
  DEFAULT_MAX_DETACHED,
  DEFAULT_REPLAY_BUDGET,
  DEFAULT_WINDOW,
  type ResumeOptions,
} from './src/session/options.js';
export type { SessionStats } from './src/session/stream.js';
export { DIAGNOSTICS_CHANNELS, type CloseEvent, type ConnectEvent, type ErrorEvent } from './src/core/diagnostics.js';

// Errors, one class per failure, each with a stable `code`.
export {
  AuthenticationError,
  ChannelClosedError,
  ConnectionRefusedError,
  ErrorCode,
  HandshakeError,
  MemoryAddressInUseError,
  MemoryPeerResetError,
  MemoryPipeClosedError,
  MemoryServerNotFoundError,
  MessageDecodeError,
  MessageNotSentError,
  MessageRefusedError,
  MessageTooLargeError,
  MsgChannelError,
  ProtocolError,
  ReconnectFailedError,
  RemoteError,
  SendQueueFullError,
  SendsFailedError,
  SessionLostError,
  SlowConsumerError,
  TimeoutError,
  UnexpectedEofError,
  UnknownMessageTypeError,
} from './src/errors.js';

// Framings: the wire formats.
export { msg } from './src/framing/msg.js';
export {
  int32,
  lengthPrefixed,
  ltprotocol,
  openflow,
  openflowType,
  type LengthPrefixedFraming,
  type LengthPrefixedOptions,
  type StructCode,
} from './src/framing/lengthPrefixed.js';
export { pythonConnection, type PythonConnectionOptions } from './src/framing/pythonConnection.js';
export { tinyproto } from './src/framing/tinyproto.js';
export type { AckIO, Decoder, DecoderLimits, FrameSink, Framing, HandshakeIO } from './src/framing/types.js';
export type { AuthOptions, ChallengeKind } from './src/auth.js';

// The typed layer: Protocol registry, codecs, typed channel, packetmq session.
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
} from './src/typed/codec.js';
export {
  Protocol,
  type MessageDefinition,
  type MessageMap,
  type MessageRef,
  type MessagesOf,
  type ProtocolOptions,
  type TypedMessage,
} from './src/typed/protocol.js';
export {
  TypedChannel,
  type FrameTransport,
  type TransportFrame,
  type TypedChannelOptions,
  type TypedChannelStats,
  type TypedSendOptions,
} from './src/typed/typedChannel.js';
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
} from './src/typed/packetmq.js';

// Request/reply: correlation ids, one-way messages, heartbeats, over any Channel.
export { RequestChannel } from './src/rpc/request.js';
export {
  DEFAULT_MAX_PENDING,
  DEFAULT_REQUEST_TIMEOUT,
  type HeartbeatOptions,
  type OneWaySendOptions,
  type RequestChannelOptions,
  type RequestChannelStats,
  type RequestContext,
  type RequestHandler,
  type RequestOptions,
  type RequestReply,
} from './src/rpc/options.js';
export {
  MAX_ERROR_CODE,
  MAX_ERROR_MESSAGE,
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  type EnvelopeInput,
  type EnvelopeKind,
} from './src/rpc/envelope.js';

// Server and Client.
export {
  CONNECTION_LIMIT_REASON,
  DEFAULT_SHUTDOWN_REASON,
  DEFAULT_SHUTDOWN_TIMEOUT,
  type Incoming,
  type Outgoing,
  type PacketmqOption,
  type PeerOptions,
} from './src/peer/shared.js';
export {
  Connection,
  DEFAULT_BROADCAST_TIMEOUT,
  DEFAULT_BROADCAST_WAIT_TIMEOUT,
  Server,
  type ServerCloseOptions,
  type ServerListenOptions,
  type ServerOptions,
  type SlowConsumerPolicy,
} from './src/peer/server.js';
export {
  Client,
  RECONNECT_DEFAULTS,
  REFUSAL_WINDOW,
  type ClientCloseOptions,
  type ClientOptions,
  type ClientTarget,
} from './src/peer/client.js';
