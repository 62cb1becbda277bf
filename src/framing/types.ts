/**
 * The Framing seam: the only thing that differs between the wire formats msgchannel speaks (and
 * checkSendType(), the one check of a send's type).
 * A framing is a pure encoder (writes a frame header; the body is written after it, never copied
 * to join them) plus an incremental decoder (push any chunk, get whole frames or a typed error).
 * It has no socket, no timers and no promises, so it is tested one byte at a time and benchmarked
 * without I/O. A framing that needs a conversation (an init byte, an auth exchange) adds a
 * `handshake` step that the Channel runs before the first message.
 */

/** Receives each decoded frame. `type` is 0 for framings without a type field. */
export type FrameSink = (body: Buffer, type: number) => void;

/** Limits a decoder enforces from the header, before it allocates. */
export interface DecoderLimits {
  /** Largest body accepted, in bytes. */
  readonly maxMessageSize: number;
  /**
   * Called from the header of every body of BODY_BUDGET_MIN bytes or more, before its memory is
   * allocated. `force` is true when the body already lies in the chunk (nothing to allocate):
   * the bytes are counted anyway. Returning false (only when not forced) makes the decoder stop
   * before the body: `push()` then consumes less than the chunk, and the caller pushes the rest
   * again later (when memory is free) to go on. The Channel uses it for a listener's memory budget.
   */
  readonly reserve?: (length: number, force: boolean) => boolean;
  /**
   * Memory for a body that spans chunks (default `Buffer.allocUnsafe`); the Buffer it returns is
   * the one emitted. The Channel reuses released messages through it (Channel.release()).
   */
  readonly alloc?: (length: number) => Buffer;
  /**
   * True when what still arrives is thrown away (the Channel is closing, or has read the peer's
   * end): a body not wholly within the chunk is then passed over without being allocated or
   * reserved, and never emitted.
   */
  readonly discard?: () => boolean;
}

/** An incremental, synchronous decoder for one connection's inbound byte stream. */
export interface Decoder {
  /**
   * Feed the next chunk of the stream. Calls `sink` once for every frame completed by it, in
   * order. Throws ProtocolError or MessageTooLargeError on bad input; after a throw the decoder
   * is unusable (the connection must be closed). Consumes the whole chunk unless `limits.reserve`
   * refused a body: `offset` then tells how far it got.
   */
  push(chunk: Buffer, sink: FrameSink): void;
  /** True when the stream is at a frame boundary, so an end of stream now is clean. */
  readonly atBoundary: boolean;
  /** Bytes consumed from the stream so far (used for error offsets). */
  readonly offset: number;
  /**
   * The unfilled rest of the body in progress when at least `min` bytes of it are still due, so
   * the transport can read straight into it (no copy); null otherwise. After such a read, call
   * bodyFilled() with the count before pushing anything else.
   */
  bodySpace?(min: number): Buffer | null;
  /** `n` bytes were written at the start of the last bodySpace(): count them, and emit the body once complete. */
  bodyFilled?(n: number, sink: FrameSink): void;
  /**
   * Acknowledged framings only: the Channel is about to write the header of a `bodyLength`-byte
   * frame, so the next byte at a frame boundary is the peer's answer to it, reported via
   * `AckIO.acked`. While an answer is due the decoder is not at a boundary.
   */
  expectAck?(bodyLength: number): void;
}

/**
 * The per-frame step of acknowledged framings (tinyproto), given by the Channel to the decoder.
 * The decoder stays pure: it reports what it read and asks for bytes to be written; the Channel
 * does the I/O and holds the send until the answer comes.
 */
export interface AckIO {
  /** Write these bytes to the peer now: the decoder's answer to a header it has just read. */
  reply(bytes: Buffer): void;
  /** The peer answered the header we wrote: `undefined` to write the body, or why the send fails. */
  acked(error: Error | undefined): void;
}

/** Raw byte access to the connection for a framing's handshake, before framed traffic starts. */
export interface HandshakeIO {
  /** Write raw bytes. */
  write(bytes: Uint8Array): void;
  /** Read exactly `n` raw bytes; rejects if the connection ends first or the handshake times out. */
  read(n: number): Promise<Buffer>;
  /** True on the side that accepted the connection (listen), false on the side that connected. */
  readonly isServer: boolean;
}

export interface Framing {
  /** Short name, for errors and the CLI (`msg`, `ltprotocol`, ...). */
  readonly name: string;
  /** Upper bound of the bytes `writeHeader` writes. */
  readonly maxHeaderLength: number;
  /** True when frames carry a type field (send `{ type }`, recvFrame().type). */
  readonly hasType: boolean;
  /** Largest type value the type field holds (0 without one). */
  readonly maxType: number;
  /**
   * Write the header of a frame whose body is `bodyLength` bytes into `target` at `offset`;
   * return the offset after the header. Throws RangeError if the length or type cannot be
   * represented by this framing.
   */
  writeHeader(target: Buffer, offset: number, bodyLength: number, type: number): number;
  /** Largest body this framing can represent on the wire. */
  readonly maxEncodableSize: number;
  /** A fresh decoder for one connection; acknowledged framings get the per-frame step `ack`. */
  createDecoder(limits: DecoderLimits, ack?: AckIO): Decoder;
  /**
   * True when the sender must wait for the peer's answer to each header before writing the body
   * (tinyproto). The Channel then sends one frame at a time through its send mutex: header,
   * `decoder.expectAck()`, wait for `AckIO.acked`, body. Such a protocol is half-duplex.
   */
  readonly acknowledged?: boolean;
  /** Optional conversation run once per connection before the first message. */
  handshake?(io: HandshakeIO): Promise<void>;
  /**
   * Bytes a server writes instead of its handshake to refuse a connection at its connection
   * limit (tinyproto: `FE`); the client's handshake then fails with ConnectionRefusedError.
   * Framings without one refuse with a TCP reset.
   */
  readonly refusal?: Uint8Array;
}

/**
 * Why `type` cannot go out on `framing` (a RangeError), or undefined when it can. The one check of
 * a send's type, for the Channel and the browser build's Channel alike.
 */
export function checkSendType(
  framing: Pick<Framing, 'name' | 'hasType' | 'maxType'>,
  type: number,
): RangeError | undefined {
  if (!framing.hasType && type !== 0) {
    return new RangeError(
      `framing ${framing.name} has no type field: send without \`type\`, or use a framing with one (ltprotocol(), lengthPrefixed({ typeSize }))`,
    );
  }
  if (!Number.isInteger(type) || type < 0 || type > framing.maxType) {
    return new RangeError(
      `Expected \`type\` to be an integer from 0 to ${framing.maxType} for framing ${framing.name}, got ${String(type)}`,
    );
  }
  return undefined;
}
