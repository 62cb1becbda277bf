/**
 * A Duplex over a `ws` WebSocket, so a Channel runs over WebSocket exactly as over a socket: the
 * same framing decoder, limits, handshakes and backpressure. WebSocket binary messages carry the
 * framing's bytes as a stream (docs/websocket.md): their boundaries mean nothing to the receiver,
 * and the sender cuts what it writes into messages of at most WS_CHUNK bytes, so a receiver's
 * `maxPayload` (what `ws` buffers whole before handing a message over, outside the memory
 * budget) stays the size of one socket read, and large bodies are assembled by the decoder,
 * which asks the memory budget first, as over TCP.
 */
import { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { ChannelClosedError, MessageTooLargeError, ProtocolError } from '../errors.js';
import { MESSAGE_OVERHEAD } from '../core/receive.js';
import type { ReadSource, ReadTarget } from '../core/reader.js';
import { writesDoneAtCallback } from '../core/writer.js';

/** While nobody reads, messages up to this size are copied together into slabs of SMALL_SLAB bytes. */
const COALESCE_MAX = 1024;
const SMALL_SLAB = 16 * 1024;

/** The most bytes one WebSocket message carries from us, and the default `maxPayload` we accept. */
export const WS_CHUNK = 64 * 1024;

/** WebSocket close codes that end a connection normally: 1000 (normal), 1001 (going away), 1005 (no code), 1006 (no close frame). */
export const NORMAL_CLOSE: ReadonlySet<number> = new Set([1000, 1001, 1005, 1006]);

/** The peer closed its WebSocket with an error code (1002 protocol error, 1009 too big, 1011, ...). */
export function peerClosedWith(code: number, reason: string): ChannelClosedError {
  return new ChannelClosedError(
    `the peer closed the WebSocket with code ${code}${reason === '' ? '' : ` (${reason})`}`,
    {
      reason: String(code),
    },
  );
}

/** A ws error as a typed one: an oversized message is MessageTooLargeError, anything else malformed a ProtocolError. */
function typedError(error: Error & { code?: string }, maxPayload: number): Error {
  if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
    const tooLarge = new MessageTooLargeError(maxPayload + 1, maxPayload, 'recv');
    tooLarge.message = `a WebSocket message above maxPayload ${maxPayload} bytes (${error.message})`;
    return tooLarge;
  }
  if (typeof error.code === 'string' && error.code.startsWith('WS_ERR_')) {
    return new ProtocolError(`malformed WebSocket frame: ${error.message}`, { cause: error });
  }
  return error;
}

/**
 * The bytes of a WebSocket, as a Duplex. Reading, for a Channel: through `reader` (a ReadSource),
 * each binary message handed to the Channel as it arrives, without the Readable machinery in
 * between; the Channel's pause() pauses the WebSocket (and its socket), and what `ws` still emits
 * from the socket read it was in is held until resume(); the readable side then carries only the
 * end. Reading as a stream (a session's transport, anything else): each message is pushed as a
 * chunk; when the readable buffer is full the WebSocket pauses, and resumes when it is read.
 * Writing: each chunk goes out as binary messages of at most WS_CHUNK bytes; a write calls back
 * once `ws` has handed its last byte to the socket, so the chunk is the caller's again and
 * `writableLength` counts what the WebSocket has not written yet (its `bufferedAmount`).
 * Ending sends a close frame (1000); WebSocket has no half-close, so the peer's side ends too.
 */
export class WebSocketStream extends Duplex {
  readonly #ws: WebSocket;
  readonly #maxPayload: number;
  /** Bytes held while the reader was paused, plus MESSAGE_OVERHEAD per chunk. */
  #held = 0;
  /** Small messages that arrived while nobody read, copied together (pushed as one chunk). */
  #small: Buffer | null = null;
  #smallLength = 0;
  /** The Channel reading through `reader`, once attached (null: the readable side carries the bytes). */
  #target: ReadTarget | null = null;
  /** Through `reader`: the Channel paused; what arrives is held in #heldChunks until it resumes. */
  #targetPaused = false;
  #heldChunks: Buffer[] = [];
  /** The Channel's read source: messages go to its target as they arrive, while it reads. */
  readonly reader: ReadSource = {
    attach: (target) => this.#attach(target),
    directBytes: 0,
  };
  /** The peer's address and port, as a net.Socket has them (the Channel reads them). */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** @internal The socket under the WebSocket (a TLSSocket for wss), when known: its peer certificate is the client's. */
  readonly socket: Duplex | undefined;

  /** @internal */
  constructor(
    ws: WebSocket,
    remote: { remoteAddress?: string | undefined; remotePort?: number | undefined },
    maxPayload: number,
  ) {
    super({ allowHalfOpen: false, decodeStrings: true });
    writesDoneAtCallback(this); // a write calls back once `ws` handed its last byte to the socket
    this.#ws = ws;
    this.#maxPayload = maxPayload;
    this.remoteAddress = remote.remoteAddress;
    this.remotePort = remote.remotePort;
    this.socket = remote instanceof Duplex ? remote : undefined;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        ws.close(1003, 'binary messages only');
        this.destroy(new ProtocolError('a WebSocket text message (msgchannel takes binary messages only)'));
        return;
      }
      if (this.#target !== null) {
        if (!this.#targetPaused && this.#heldChunks.length === 0 && this.#smallLength === 0) {
          this.#target.data(data);
          return;
        }
      } else if (this.readableFlowing === true && this.#smallLength === 0) {
        if (!this.push(data)) ws.pause();
        return;
      }
      // Nobody reads: what arrives is held. `ws` still emits every message of the socket read it
      // is in, even paused, and a read of one-byte messages would be thousands of objects: small
      // messages are copied together, so what is held is counted in bytes, plus MESSAGE_OVERHEAD
      // per chunk held, and the WebSocket pauses once that reaches the high-water mark.
      if (data.length <= COALESCE_MAX) this.#hold(data);
      else {
        this.#pushSmall();
        this.#held += data.length + MESSAGE_OVERHEAD;
        this.#keep(data);
      }
      if (this.#held >= this.readableHighWaterMark) ws.pause();
    });
    // Reading again (as a stream): what was held flows out now, in order.
    this.on('resume', () => {
      if (this.#target !== null) return; // resume() below
      this.#pushSmall();
      this.#held = 0;
      if (ws.isPaused) ws.resume();
    });
    ws.on('error', (error: Error) => this.destroy(typedError(error, this.#maxPayload)));
    // The socket is gone. After a normal close (1000, 1001, none given) or none at all (1006, the
    // socket just ended): the peer's end, like a FIN, and whether it came at a frame boundary is
    // the Channel's decoder's call. Any other code is the peer reporting an error: the channel fails.
    ws.on('close', (code: number, reason: Buffer) => {
      if (this.destroyed) return;
      this.#pushSmall();
      // Through `reader` the end comes after what is held: the readable side is paused while the
      // Channel is, and resume() hands the held messages over before it lets the end flow.
      if (NORMAL_CLOSE.has(code)) this.push(null);
      else this.destroy(peerClosedWith(code, reason.toString()));
    });
  }

  /**
   * The Channel reads through `reader` from now on: what the readable side buffered before it
   * came (a listener's accept queue holds a stream a while) is handed over first, all of it, as
   * a DirectReader hands over its early reads: the readable side's end may follow it at once.
   */
  #attach(target: ReadTarget): void {
    this.#pushSmall();
    const early: Buffer[] = [];
    while (this.readableLength > 0) early.push(super.read() as Buffer);
    this.#target = target;
    for (const chunk of early) target.data(chunk);
  }

  /** A message held while nobody read: to the readable side, or until the Channel reads again. */
  #keep(chunk: Buffer): void {
    if (this.#target !== null) this.#heldChunks.push(chunk);
    else this.push(chunk);
  }

  /** Hand what is held to the Channel, while it reads. */
  #deliverHeld(): void {
    this.#pushSmall();
    const target = this.#target!;
    while (this.#heldChunks.length > 0 && !this.#targetPaused) target.data(this.#heldChunks.shift()!);
    if (this.#heldChunks.length === 0) this.#held = 0;
  }

  override pause(): this {
    if (this.#target !== null) {
      this.#targetPaused = true;
      this.#ws.pause();
    }
    return super.pause();
  }

  override resume(): this {
    if (this.#target === null) return super.resume();
    this.#targetPaused = false;
    this.#deliverHeld();
    if (this.#targetPaused) return this; // paused again by what it was handed
    super.resume(); // lets the end flow, if it came
    if (this.#ws.isPaused) this.#ws.resume();
    return this;
  }

  /** Copy a small message held while nobody reads into the slab of small ones. */
  #hold(data: Buffer): void {
    if (this.#small === null || this.#smallLength + data.length > SMALL_SLAB) {
      this.#pushSmall();
      this.#small = Buffer.allocUnsafe(SMALL_SLAB);
      this.#held += MESSAGE_OVERHEAD;
    }
    data.copy(this.#small, this.#smallLength);
    this.#smallLength += data.length;
    this.#held += data.length;
  }

  /** Hand on the small messages copied together so far, as one chunk. */
  #pushSmall(): void {
    if (this.#smallLength === 0) return;
    const chunk = this.#small!.subarray(0, this.#smallLength);
    this.#small = null;
    this.#smallLength = 0;
    this.#keep(chunk);
  }

  override _read(): void {
    if (this.#target !== null) return; // the Channel's resume() resumes the WebSocket
    if (this.#ws.isPaused && this.#held < this.readableHighWaterMark) this.#ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(chunk, callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    // A frame's header and its body, written under cork: one message when they fit one, since a
    // message per header would double the messages of a stream of mid-sized frames.
    let total = 0;
    for (const c of chunks) total += c.chunk.length;
    if (total <= WS_CHUNK) {
      this.#send(
        Buffer.concat(
          chunks.map((c) => c.chunk),
          total,
        ),
        callback,
      );
      return;
    }
    const last = chunks.length - 1;
    chunks.forEach((c, i) => this.#send(c.chunk, i === last ? callback : undefined));
  }

  /** Send `bytes` as binary messages of at most WS_CHUNK bytes; `callback` once the last is written. */
  #send(bytes: Buffer, callback: ((error?: Error | null) => void) | undefined): void {
    const ws = this.#ws;
    if (ws.readyState !== ws.OPEN) {
      callback?.(new Error('the WebSocket is not open'));
      return;
    }
    for (let at = 0; at < bytes.length; at += WS_CHUNK) {
      const end = Math.min(bytes.length, at + WS_CHUNK);
      const piece = at === 0 && end === bytes.length ? bytes : bytes.subarray(at, end);
      ws.send(piece, { binary: true, compress: false, fin: true }, end === bytes.length ? callback : undefined);
    }
    if (bytes.length === 0) callback?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.close(1000);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const ws = this.#ws;
    if (ws.readyState !== ws.CLOSED) ws.terminate();
    callback(error);
  }
}
