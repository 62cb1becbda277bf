/**
 * The browser build's framings (what its Channel's `framing` option takes): the MSG framing, the
 * default (./msg.ts), and the length-prefixed ones (./lengthPrefixed.ts), whose header layout is
 * Node's too (src/framing/layout.ts). A framing writes a frame's header and makes a decoder for
 * one connection; a decoder takes chunks cut anywhere and hands out whole frames, refusing a body
 * above maxMessageSize from its header, before allocating. BodyAssembler is the body part that
 * both decoders share.
 */

/** Receives each decoded frame; `type` is 0 for framings without a type field. */
export type FrameSink = (body: Uint8Array, type: number) => void;

/** An incremental decoder for one connection's inbound bytes. */
export interface BrowserDecoder {
  /** Decode `chunk`, calling `sink` with each whole frame; throws a typed error on bad bytes (the decoder is then unusable). */
  push(chunk: Uint8Array, sink: FrameSink): void;
  /** True between frames (the peer may end here). */
  readonly atBoundary: boolean;
  /** Bytes consumed so far (for error offsets). */
  readonly offset: number;
}

/** A wire format of the browser's Channel. */
export interface BrowserFraming {
  /** Short name, for errors (`msg`, `ltprotocol`, ...). */
  readonly name: string;
  /** True when frames carry a type field (send `{ type }`, recvFrame().type; TypedChannel needs one). */
  readonly hasType: boolean;
  /** Largest type value the type field holds (0 without one). */
  readonly maxType: number;
  /** Largest body the framing can describe. */
  readonly maxEncodableSize: number;
  /** The header of a frame of a `bodyLength`-byte body of `type`; throws RangeError for what it cannot describe. */
  header(bodyLength: number, type: number): Uint8Array;
  /** A fresh decoder for one connection. */
  createDecoder(maxMessageSize: number): BrowserDecoder;
}

/**
 * One frame's body after its header: a body wholly within the chunk is a view of it (no copy);
 * one spread over chunks is gathered into one allocation of its announced length.
 */
export class BodyAssembler {
  #body: Uint8Array | undefined;
  #type = 0;
  #filled = 0;

  /** True while a body is being gathered. */
  get active(): boolean {
    return this.#body !== undefined;
  }

  /** A `length`-byte body of `type` starts at `chunk[i]`: take what of it is there; returns the index after that. */
  start(chunk: Uint8Array, i: number, length: number, type: number, sink: FrameSink): number {
    if (chunk.length - i >= length) {
      sink(chunk.subarray(i, i + length), type);
      return i + length;
    }
    this.#body = new Uint8Array(length);
    this.#type = type;
    this.#filled = 0;
    return this.fill(chunk, i, sink);
  }

  /** More of the body being gathered, from `chunk[i]`; returns the index after what it took. */
  fill(chunk: Uint8Array, i: number, sink: FrameSink): number {
    const body = this.#body!;
    const take = Math.min(chunk.length - i, body.length - this.#filled);
    body.set(chunk.subarray(i, i + take), this.#filled);
    this.#filled += take;
    if (this.#filled === body.length) {
      this.#body = undefined;
      sink(body, this.#type);
    }
    return i + take;
  }
}
