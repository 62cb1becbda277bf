/**
 * The decoder skeleton every framing plugs its header parser into. What differs between the wire
 * formats is only the header: how it is read (whole in the chunk or gathered across chunks), what
 * makes it malformed, and the length and type it announces. The rest is the same for all: the
 * stream offset, the body (a BodyAssembler: a view when it lies in the chunk, else one allocation
 * filled from the following chunks or read into directly), and the memory budget's refusal.
 *
 * A refused body (`DecoderLimits.reserve` said no) stops push() right after its header: the header
 * is consumed and remembered (its body's length and type wait in the BodyAssembler), so the next
 * push(), with the rest of the stream, asks `reserve` again for that body without parsing anything
 * again. Within one push() it is asked once.
 */
import { BodyAssembler } from './body.js';
import type { Decoder, DecoderLimits, FrameSink } from './types.js';

export abstract class FrameDecoder implements Decoder {
  /** The body in progress, or none. */
  protected readonly body: BodyAssembler;
  /** Largest body accepted (`DecoderLimits.maxMessageSize`, or less where the protocol says so). */
  protected readonly max: number;
  /** Stream offset of the first byte of the current chunk. */
  protected base = 0;

  constructor(limits: DecoderLimits, max = limits.maxMessageSize) {
    this.body = new BodyAssembler(limits);
    this.max = max;
  }

  /**
   * Read from `chunk[i]` (there is at least one byte) up to the end of one header. A complete
   * header, once checked against `this.max`, starts its body: return `this.body.start(chunk, end,
   * length, type, sink)`. A header cut by the chunk's end is gathered: return `chunk.length`. A
   * framing may also consume bytes that are not a header (tinyproto's answer byte) and return the
   * index after them. Throws ProtocolError or MessageTooLargeError on bad bytes.
   */
  protected abstract readHeader(chunk: Buffer, i: number, sink: FrameSink): number;

  /** True when no header bytes are gathered or due: with no body in progress, a frame boundary. */
  protected abstract betweenHeaders(): boolean;

  get atBoundary(): boolean {
    return !this.body.inProgress && this.betweenHeaders();
  }

  get offset(): number {
    return this.base;
  }

  push(chunk: Buffer, sink: FrameSink): void {
    const body = this.body;
    const n = chunk.length;
    let i = 0;
    try {
      while (i < n) {
        i = body.inProgress ? body.fill(chunk, i, sink) : this.readHeader(chunk, i, sink);
        // No memory for the body yet: stop before it. The Channel holds the rest and pushes it again.
        if (body.awaitingMemory) break;
      }
    } finally {
      this.base += i;
    }
  }

  bodySpace(min: number): Buffer | null {
    return this.body.space(min);
  }

  bodyFilled(n: number, sink: FrameSink): void {
    this.base += n;
    this.body.filled(n, sink);
  }
}
