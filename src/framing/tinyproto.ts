/**
 * tinyproto 2.0: on connect each side writes `FF` and reads one byte (anything else is an
 * initialisation error). Each message: the sender writes `[u32 BE body size]`; the receiver answers
 * one byte, `FF` (go ahead) or `00` (refused: above its maxMessageSize or the protocol's F0FFFFFF);
 * on `FF` the sender writes the body. `FE` (connection limit) and `FD` (conflict) are refusals too.
 *
 * This is the one acknowledged framing: the decoder answers every header it reads through
 * `AckIO.reply`, and reports the peer's answer to ours through `AckIO.acked`; the Channel sends one
 * frame at a time and holds each body until its answer arrives (send() resolves after the body is
 * written, or rejects with MessageRefusedError).
 *
 * HALF-DUPLEX. Nothing on the wire tells an answer byte from the first byte of a header, so the two
 * sides must not start a message at the same time. The decoder takes the first byte at a frame
 * boundary after we wrote a header as the answer to it. If both sides write a header at once, each
 * reads the first byte of the other's size as its answer: for messages under 16 MiB that byte is
 * `00`, so BOTH sends reject with ERR_MESSAGE_REFUSED (other values: ProtocolError, which closes
 * the channel), and the remaining three size bytes are then read as the start of a new header:
 * the stream is out of step and the channel must be closed. Our own side never overlaps itself
 * (sends are serialised and each waits for its answer), and a send issued while a peer's message is
 * arriving is safe, because its header follows our answer to the peer's header on the wire. So
 * use a request/response discipline (or let one side speak at a time), as tinyproto itself does.
 */
import { ConnectionRefusedError, MessageRefusedError, MessageTooLargeError, ProtocolError } from '../errors.js';
import { FrameDecoder } from './decoder.js';
import type { AckIO, Decoder, DecoderLimits, FrameSink, Framing, HandshakeIO } from './types.js';

/** Largest message the protocol carries (a tinyproto receiver refuses bigger ones). */
export const TINYPROTO_MAX_SIZE = 0xf0ffffff;
const OK = 0xff;
const ACCEPT = Buffer.from([OK]);
const REFUSE = Buffer.from([0x00]);
const STATUS: Record<number, string> = { 0x00: 'error', 0xfe: 'connection limit', 0xfd: 'conflict' };

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

class TinyprotoDecoder extends FrameDecoder {
  readonly #ack: AckIO | undefined;
  readonly #size = Buffer.alloc(4);
  #sizeFilled = 0;
  /** Body lengths of our headers whose answer has not arrived (at most one with the Channel). */
  readonly #unanswered: number[] = [];

  constructor(limits: DecoderLimits, ack: AckIO | undefined) {
    super(limits, Math.min(limits.maxMessageSize, TINYPROTO_MAX_SIZE));
    this.#ack = ack;
  }

  protected betweenHeaders(): boolean {
    return this.#sizeFilled === 0 && this.#unanswered.length === 0;
  }

  expectAck(bodyLength: number): void {
    this.#unanswered.push(bodyLength);
  }

  protected readHeader(chunk: Buffer, i: number, sink: FrameSink): number {
    if (this.#sizeFilled === 0 && this.#unanswered.length > 0) return this.#answer(chunk[i]!, i);
    const take = Math.min(4 - this.#sizeFilled, chunk.length - i);
    chunk.copy(this.#size, this.#sizeFilled, i, i + take);
    this.#sizeFilled += take;
    i += take;
    if (this.#sizeFilled < 4) return i;
    this.#sizeFilled = 0;
    const len = this.#size.readUInt32BE(0);
    if (len > this.max) {
      // Refused from the header: the sender will not write the body, the stream stays in step.
      if (this.#ack === undefined) throw new MessageTooLargeError(len, this.max, 'recv');
      this.#ack.reply(REFUSE);
      return i;
    }
    this.#ack?.reply(ACCEPT);
    return this.body.start(chunk, i, len, 0, sink);
  }

  /** At a boundary with a header of ours unanswered, the byte `status` at `i` is the answer. */
  #answer(status: number, i: number): number {
    const size = this.#unanswered.shift()!;
    if (status === OK) this.#ack?.acked(undefined);
    else if (status in STATUS) {
      this.#ack?.acked(
        new MessageRefusedError(
          size,
          status,
          `peer refused a ${size}-byte message (${hex(status)}: ${STATUS[status]})`,
        ),
      );
    } else {
      throw new ProtocolError(
        `tinyproto: expected FF or 00 answering our message header, got ${hex(status)} (did both sides send at once? tinyproto is half-duplex)`,
        { offset: this.base + i },
      );
    }
    return i + 1;
  }
}

/**
 * tinyproto's framing: init byte exchange, then `[u32 BE size]`, a one-byte answer, the body.
 * Half-duplex: see the comment at the top of this file.
 * @example
 * const ch = await Channel.connect('127.0.0.1', 9123, { framing: tinyproto });
 * await ch.send('hello'); // resolves once the server said FF and the body is written
 * console.log(String(await ch.recv()));
 */
export const tinyproto: Framing = Object.freeze({
  name: 'tinyproto',
  maxHeaderLength: 4,
  hasType: false,
  maxType: 0,
  maxEncodableSize: TINYPROTO_MAX_SIZE,
  acknowledged: true,
  refusal: Buffer.from([0xfe]),
  writeHeader(target: Buffer, offset: number, bodyLength: number): number {
    if (!(bodyLength >= 0 && bodyLength <= TINYPROTO_MAX_SIZE)) {
      const why = bodyLength < 0 ? 'is negative' : `is above the protocol's maximum ${TINYPROTO_MAX_SIZE}`;
      throw new RangeError(`tinyproto: a ${bodyLength}-byte body ${why}`);
    }
    target.writeUInt32BE(bodyLength, offset);
    return offset + 4;
  },
  createDecoder(limits: DecoderLimits, ack?: AckIO): Decoder {
    return new TinyprotoDecoder(limits, ack);
  },
  async handshake(io: HandshakeIO): Promise<void> {
    io.write(ACCEPT);
    const [b] = await io.read(1);
    if (b === 0xfe) {
      throw new ConnectionRefusedError(
        'tinyproto initialisation failed: the peer sent 0xfe instead of FF (connection limit)',
        { offset: 0 },
      );
    }
    if (b === 0x00) {
      // The real tinyproto 2.0 server refuses a connection over its limit with bytearray(SC_CONLIMIT):
      // 254 zero bytes, then it closes.
      throw new ConnectionRefusedError(
        'tinyproto initialisation failed: the peer sent 0x00 instead of FF (a tinyproto 2.0 server at its connection limit sends 254 zero bytes)',
        { offset: 0 },
      );
    }
    if (b !== OK) {
      throw new ProtocolError(
        `tinyproto initialisation failed: the peer sent ${hex(b!)} instead of FF${STATUS[b!] ? ` (${STATUS[b!]})` : ''}`,
        { offset: 0 },
      );
    }
  },
});
