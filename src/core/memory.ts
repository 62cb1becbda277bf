/**
 * An in-memory byte stream pair, the transport of Channel.pair(): what one end writes, the other
 * reads. Backpressure is real: a write completes only once the other end's readable buffer has
 * room, so a fast writer and a slow reader stay bounded exactly as over TCP. As a socket copies
 * what it is given into the kernel, each write is copied on its way to the peer: the peer's
 * messages never share memory with the writer's buffers, so a writer whose write has called back
 * (whose send() has resolved) may reuse its buffer.
 */
import { Duplex } from 'node:stream';
import { MemoryPeerResetError, MemoryPipeClosedError } from '../errors.js';

class MemoryEnd extends Duplex {
  peer: MemoryEnd | undefined;
  /** The peer's write callback, held while our readable buffer is full. */
  blockedWrite: ((error?: Error | null) => void) | null = null;

  constructor(highWaterMark: number) {
    super({ allowHalfOpen: false, highWaterMark, decodeStrings: true });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    if (!peer || peer.destroyed || peer.readableEnded) {
      callback(new MemoryPipeClosedError('write to a closed in-memory channel'));
      return;
    }
    if (peer.push(Buffer.from(chunk))) callback();
    else peer.blockedWrite = callback;
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    // The chunks joined into one copy; as with one write, the callback waits while the peer's
    // readable buffer is over its mark.
    const peer = this.peer;
    if (!peer || peer.destroyed || peer.readableEnded) {
      callback(new MemoryPipeClosedError('write to a closed in-memory channel'));
      return;
    }
    let length = 0;
    for (const c of chunks) length += c.chunk.length;
    const joined = Buffer.allocUnsafe(length);
    let at = 0;
    for (const c of chunks) at += c.chunk.copy(joined, at);
    if (peer.push(joined)) callback();
    else peer.blockedWrite = callback;
  }

  override _read(): void {
    const cb = this.blockedWrite;
    if (cb) {
      this.blockedWrite = null;
      cb();
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    if (peer && !peer.destroyed) peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    const cb = this.blockedWrite;
    this.blockedWrite = null;
    // The peer's pending write can never be read now.
    if (cb) cb(new MemoryPipeClosedError('in-memory peer was destroyed'));
    if (peer && !peer.destroyed) {
      // Like a TCP peer whose other end vanished: it reads end of stream (or a reset, on error).
      if (error) peer.destroy(new MemoryPeerResetError());
      else if (!peer.readableEnded) peer.push(null);
    }
    callback(error);
  }
}

/** Two connected in-memory byte streams. */
export function memoryPair(highWaterMark = 64 * 1024): [Duplex, Duplex] {
  const a = new MemoryEnd(highWaterMark);
  const b = new MemoryEnd(highWaterMark);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
