/**
 * The direct receive path of plain TCP and Unix sockets in Node: the socket reads with `onread`
 * into memory the Channel chooses instead of pushing a freshly allocated chunk per read through
 * the stream machinery. A large body in progress is read straight into (its unfilled tail is the
 * read buffer: no copy at all); everything else lands in a 64 KiB slab.
 *
 * A slab is reused only while nothing refers to it: a short read (up to half a slab) is copied
 * out into a chunk of its own size and the slab read again; a longer read is handed over as it is
 * (small bodies are views of it) and the next read gets a new slab. So a held message keeps at
 * most twice the bytes of the read it came in, like Node's own chunks (which copy short reads).
 *
 * Relies on Node's `onread: { buffer: () => Uint8Array, callback }` socket option (Node >= 15.8
 * and 14.18; msgchannel needs 20) and, for accepted sockets, on re-wrapping the accepted handle
 * in a new net.Socket (`socket._handle`, the pattern Node's own cluster and http2 use). Used only
 * where those exist and behave as in Node: not under Bun or Deno, not for TLS, not for a stream
 * the user wraps; those take the `'data'` path, with the same semantics.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { view } from '../framing/body.js';
import { writesDoneAtCallback } from './writer.js';

/** Size of the read buffer between bodies (and the read Node itself would allocate per read). */
export const SLAB_SIZE = 64 * 1024;
/** Reads up to this many bytes are copied out so the slab is read again. */
const COPY_MAX = SLAB_SIZE / 2;
/** A body in progress with at least this much still due is read straight into. */
const DIRECT_MIN = SLAB_SIZE;

/** True where the direct path is used: Node itself (Bun and Deno emulate net differently). */
export const DIRECT_READS: boolean =
  typeof process === 'object' &&
  process.release?.name === 'node' &&
  typeof process.versions.bun !== 'string' &&
  typeof process.versions.deno !== 'string';

/** What consumes the reads: the Channel. */
export interface ReadTarget {
  /** Consume a chunk of the stream; the target may keep it (or views of it). */
  data(chunk: Buffer): void;
  /** The unfilled rest of the body in progress when at least `min` bytes of it are due, else null. */
  space(min: number): Buffer | null;
  /** `n` bytes were read into the start of the last space() given. */
  filled(n: number): void;
}

/** Where a Channel's reads come from without 'data' events: a socket's DirectReader, or a session's stream. */
export interface ReadSource {
  /** Deliver the reads to `target` from now on. */
  attach(target: ReadTarget): void;
  /** Bytes read straight into bodies (for tests and diagnostics). */
  readonly directBytes: number;
}

/** The `onread` option of one socket, and the bridge to what consumes it (a Channel, or a session's parser). */
export class DirectReader implements ReadSource {
  #target: ReadTarget | null = null;
  /** What the reads go to now (null: none; reading pauses). */
  get target(): ReadTarget | null {
    return this.#target;
  }
  /** The slab to read into next (null: allocate one when needed). */
  #slab: Buffer | null = null;
  /** The body tail handed out as the current read buffer, if it is one. */
  #space: Buffer | null = null;
  /** Reads that arrived before the Channel attached (reading is paused meanwhile). */
  #early: Buffer[] = [];
  /** Bytes read straight into bodies (for tests and diagnostics). */
  directBytes = 0;

  readonly onread = {
    buffer: (): Buffer => this.#next(),
    callback: (n: number, buf: Uint8Array): boolean => this.#read(n, buf),
  };

  /**
   * Deliver reads to `target` from now on, those that came while none was attached first; null
   * detaches (reading pauses at the next read, which is kept for the next target).
   */
  attach(target: ReadTarget | null): void {
    this.#target = target;
    while (this.#target === target && target !== null && this.#early.length > 0) target.data(this.#early.shift()!);
  }

  #next(): Buffer {
    const space = this.#target === null ? null : this.#target.space(DIRECT_MIN);
    this.#space = space;
    if (space !== null) return space;
    return (this.#slab ??= Buffer.allocUnsafeSlow(SLAB_SIZE));
  }

  #read(n: number, buf: Uint8Array): boolean {
    const target = this.#target;
    if (buf === this.#space && target !== null) {
      this.#space = null;
      this.directBytes += n;
      target.filled(n);
      return true;
    }
    let chunk: Buffer;
    if (n <= COPY_MAX) {
      chunk = Buffer.allocUnsafe(n);
      (buf as Buffer).copy(chunk, 0, 0, n);
    } else {
      chunk = view(buf as Buffer, 0, n); // handed over: the next read gets a new slab
      if (buf === this.#slab) this.#slab = null;
    }
    if (target === null) {
      this.#early.push(chunk);
      return false; // pause until a Channel takes over
    }
    target.data(chunk);
    return true;
  }
}

/** The DirectReader of each socket made with one (other transports read through 'data'). */
const directReaders = new WeakMap<Duplex, DirectReader>();

/** Record that `socket` reads through `reader` (it was made with `reader.onread`), for readFrom(). */
export function readsThrough(socket: Duplex, reader: DirectReader): void {
  directReaders.set(socket, reader);
}

/**
 * Read `stream` into `target` from now on (it resumes), whichever path it reads by: its
 * DirectReader (the target's space() may then be read straight into), or 'data' events. Returns
 * the function that stops the delivery (once: later calls, or calls after another readFrom took
 * over, change nothing); what is read after it waits for the next readFrom().
 */
export function readFrom(stream: Duplex, target: ReadTarget): () => void {
  const reader = directReaders.get(stream);
  let stop: () => void;
  if (reader !== undefined) {
    reader.attach(target); // a read that came while detached stopped reading: resume() restarts it
    stop = () => {
      if (reader.target === target) reader.attach(null);
    };
  } else {
    const onData = (chunk: Buffer): void => target.data(chunk);
    stream.on('data', onData);
    stop = () => {
      if (stream.listeners('data').includes(onData)) {
        stream.removeListener('data', onData);
        stream.pause();
      }
    };
  }
  stream.resume();
  return stop;
}

const DISCARD: ReadTarget = { data: () => {}, space: () => null, filled: () => {} };

/** Read and drop whatever `stream` still receives (until its end), whichever path it reads by. */
export function discardReads(stream: Duplex): void {
  readFrom(stream, DISCARD);
}

type StreamHandle = { useUserBuffer?: unknown; readStart?: unknown; reading?: boolean };

/**
 * Re-wrap a socket accepted with `pauseOnConnect` (not read from yet) in a net.Socket that reads
 * through a DirectReader. The old wrapper lets go of the handle and is destroyed (which only ends
 * its bookkeeping: it has no handle to close). Returns undefined, leaving the socket as it is,
 * where that can't be done soundly: the socket then goes the `'data'` path.
 */
export function adoptAccepted(accepted: net.Socket): { socket: net.Socket; reader: DirectReader } | undefined {
  if (!DIRECT_READS || accepted.destroyed) return undefined;
  const old = accepted as net.Socket & { _handle?: StreamHandle | null };
  const handle = old._handle;
  if (
    handle == null ||
    typeof handle.useUserBuffer !== 'function' ||
    typeof handle.readStart !== 'function' ||
    handle.reading === true
  ) {
    return undefined;
  }
  const reader = new DirectReader();
  let socket: net.Socket;
  try {
    // manualStart: reading starts when the Channel resumes the socket, not before.
    socket = new net.Socket({
      handle,
      onread: reader.onread,
      readable: true,
      writable: true,
      manualStart: true,
    } as net.SocketConstructorOpts);
  } catch {
    return undefined;
  }
  old._handle = null;
  old.destroy();
  writesDoneAtCallback(socket); // a plain Node socket
  return { socket, reader };
}
