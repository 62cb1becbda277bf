/**
 * The send side's frame writer. Bodies up to 16 KiB are copied with their header into a shared
 * slab, and the slab is written once per tick (or when full), so many small frames leave in one
 * write: the caller's buffer is free at once. Bigger bodies go out with their header under cork,
 * never copied (as ws's sender does): the caller's buffer is free once the transport calls back
 * for the body's write (Node's write(chunk, callback) contract), and the write returns a promise
 * of that moment.
 */
import type { Duplex } from 'node:stream';
import type { Framing } from '../framing/types.js';
import { Deque } from './deque.js';
import { SendPromise, SendTally } from './sends.js';

/** Bodies up to this size are copied into a shared write slab, so many small frames leave in one write. */
const COPY_LIMIT = 16 * 1024;
const SLAB_SIZE = 64 * 1024;
/**
 * Transports whose write is done with its chunk when it calls back, or at once when nothing is
 * left queued after it (the kernel took every byte; a session copied it; `ws` handed it to its
 * socket): a plain Node socket, a session, a WebSocket. Each declares itself where it is made.
 * Never a stream that may keep the chunk (Channel.pair hands it to the peer) or transform it
 * later (TLS), nor one the user wraps: its writes leave their slabs to the collector.
 */
const doneAtCallback = new WeakSet<Duplex>();

/** Declare that `stream`'s writes are done with their chunks once they call back (see doneAtCallback). */
export function writesDoneAtCallback(stream: Duplex): void {
  doneAtCallback.add(stream);
}

/**
 * Write slabs whose writes called back, shared by every channel of the process, kept to fill again
 * instead of allocating: a transport that backs up holds up to a send high-water mark of slabs and
 * frees them in bursts, and each new one would be fresh memory and garbage (a slow consumer's
 * sender allocated a slab per 64 KiB sent). At most this many (4 MiB) are kept.
 */
const MAX_SPARE_SLABS = 64;
const spareSlabs: Buffer[] = [];

export class FrameWriter {
  readonly #stream: Duplex;
  readonly #framing: Framing;
  #slab: Buffer | null = null;
  #slabStart = 0;
  #slabEnd = 0;
  #flushScheduled = false;
  /** The sends of bodies handed to the transport uncopied whose write has not called back. */
  readonly #inFlight = new Set<SendPromise>();
  /** Counts the sends that fail (the channel's). */
  readonly #tally: SendTally;
  /** The error a large body's send rejects with when its write fails (the write's own error as cause). */
  readonly #failure: (cause: Error) => Error;
  /** Frames written and their body bytes, for the channel's stats (plain counters, no object per frame). */
  sent = 0;
  sentBytes = 0;
  /** Runs once per tick with small frames batched. */
  readonly #flushTick = (): void => {
    this.#flushScheduled = false;
    this.flush();
  };

  /**
   * The stream is done with a written chunk when its write calls back (doneAtCallback): a slab
   * nothing refers to any more is filled again instead of becoming garbage.
   */
  readonly #reuse: boolean;
  /** With #reuse: the slab of each write that has not called back, in write order (a slab's writes are adjacent). */
  readonly #writing = new Deque<Buffer>();
  /** With #reuse: writes of the current slab that have not called back. */
  #slabWrites = 0;
  /**
   * A write of a slab called back (in write order). A retired slab whose last write it was is
   * free; so is the current one when nothing is batched in it since, and an idle channel gives it
   * back rather than hold 64 KiB (a server's many quiet connections share a few). A write that
   * failed leaves its slab to the collector: the transport is going away.
   */
  readonly #onSlabWritten = (error?: Error | null): void => {
    const slab = this.#writing.shift();
    if (slab === undefined || error) return;
    if (slab === this.#slab) {
      if (--this.#slabWrites > 0 || this.#slabEnd !== this.#slabStart) return;
      this.#slab = null;
      this.#slabStart = this.#slabEnd = 0;
    } else if (this.#writing.peek() === slab) return; // more of its writes to come
    if (slab.length === SLAB_SIZE && spareSlabs.length < MAX_SPARE_SLABS) spareSlabs.push(slab);
  };

  constructor(
    stream: Duplex,
    framing: Framing,
    tally = new SendTally(),
    failure: (cause: Error) => Error = (cause) => cause,
  ) {
    this.#stream = stream;
    this.#framing = framing;
    this.#reuse = doneAtCallback.has(stream);
    this.#tally = tally;
    this.#failure = failure;
  }

  /** Bytes batched and not yet handed to the stream. */
  get buffered(): number {
    return this.#slabEnd - this.#slabStart;
  }

  /**
   * The stream is gone: drop the slab, and fail the bodies whose write never called back (a
   * transport that drops its pending writes on destroy without calling them back must not leave
   * their sends pending for ever).
   */
  release(): void {
    this.#slab = null;
    const cause = new Error('the transport closed before the write completed');
    for (const sent of this.#inFlight) sent.fail(this.#failure(cause));
    this.#inFlight.clear();
  }

  /**
   * Write one frame (the caller has checked its size and type). Returns undefined when the body
   * was copied (the caller's buffer is free now), otherwise the send's promise (`sent`, or a new
   * one), which resolves once the transport no longer needs the body, or fails if its write fails.
   */
  write(body: Buffer, type: number, sent?: SendPromise): SendPromise | undefined {
    const len = body.length;
    if (len <= COPY_LIMIT) {
      const at = this.#slabFrame(len, type);
      if (len > 0) this.#slab!.set(body, at);
      return undefined;
    }
    return this.#writeLarge(undefined, body, type, sent);
  }

  /** Write one frame whose body is `head[0, headLength)` then `body`, without joining them first; returns as write() does. */
  writeJoined(head: Buffer, headLength: number, body: Buffer): SendPromise | undefined {
    const len = headLength + body.length;
    if (len <= COPY_LIMIT) {
      let at = this.#slabFrame(len, 0);
      const slab = this.#slab!;
      for (let i = 0; i < headLength; i++) slab[at++] = head[i]!;
      if (body.length > 0) slab.set(body, at);
      return undefined;
    }
    return this.#writeLarge(Buffer.from(head.subarray(0, headLength)), body, 0, undefined);
  }

  /** Room for a frame of `len` body bytes in the slab, its header written: the body's offset. */
  #slabFrame(len: number, type: number): number {
    const framing = this.#framing;
    this.sent++;
    this.sentBytes += len;
    let slab = this.#slab;
    if (slab === null || this.#slabEnd + framing.maxHeaderLength + len > slab.length) slab = this.#freshSlab(0);
    const at = framing.writeHeader(slab, this.#slabEnd, len, type);
    this.#slabEnd = at + len;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flushTick);
    }
    return at;
  }

  /** Large body: header (and head) and body go out together under cork, the body is never copied. */
  #writeLarge(head: Buffer | undefined, body: Buffer, type: number, sent: SendPromise | undefined): SendPromise {
    const framing = this.#framing;
    const len = (head?.length ?? 0) + body.length;
    this.sent++;
    this.sentBytes += len;
    this.flush();
    const header = Buffer.allocUnsafe(framing.maxHeaderLength);
    const end = framing.writeHeader(header, 0, len, type);
    const stream = this.#stream;
    const [written, callback] = this.#untilWritten(sent);
    if (stream.destroyed || stream.writableEnded) {
      callback(new Error('the transport has ended'));
      return written;
    }
    stream.cork();
    stream.write(header.subarray(0, end));
    if (head !== undefined) stream.write(head);
    stream.write(body, callback);
    stream.uncork();
    return written;
  }

  /** The send's promise (`sent`, or a new one) for a body handed to the transport, and the write callback that settles it. */
  #untilWritten(sent: SendPromise | undefined): [SendPromise, (error?: Error | null) => void] {
    const written = sent ?? SendPromise.pending(this.#tally);
    this.#inFlight.add(written);
    const callback = (error?: Error | null): void => {
      if (!this.#inFlight.delete(written)) return;
      if (error) written.fail(this.#failure(error));
      else written.settle();
    };
    return [written, callback];
  }

  /**
   * The body of an acknowledged frame (tinyproto), its header already written and answered: it
   * goes out after everything before it. Returns as write() does (bodies up to 16 KiB are copied).
   */
  writeAcknowledgedBody(body: Buffer, sent: SendPromise): SendPromise | undefined {
    this.sent++;
    this.sentBytes += body.length;
    if (body.length <= COPY_LIMIT) {
      if (body.length > 0) this.writeBytes(body);
      return undefined;
    }
    this.flush();
    const [written, callback] = this.#untilWritten(sent);
    const stream = this.#stream;
    if (stream.destroyed || stream.writableEnded) callback(new Error('the transport has ended'));
    else stream.write(body, callback);
    return written;
  }

  /**
   * Queue raw bytes (a tinyproto answer) in the slab, in order with the frames around them: many
   * answers leave in one write instead of one write (and its bookkeeping) each.
   */
  writeBytes(bytes: Uint8Array): void {
    let slab = this.#slab;
    if (slab === null || this.#slabEnd + bytes.length > slab.length) slab = this.#freshSlab(bytes.length);
    slab.set(bytes, this.#slabEnd);
    this.#slabEnd += bytes.length;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flushTick);
    }
  }

  /**
   * Flush, and give the slab to fill next, with room for `need` bytes: the same one when the flush
   * left it free (its write left at once, see #reuse), else a spare one whose writes called back
   * (a slab whose writes all called back goes there, #onSlabWritten), else a new one.
   */
  #freshSlab(need: number): Buffer {
    this.flush();
    const slab = this.#slab;
    if (slab !== null && need <= slab.length && this.#slabEnd === 0) {
      this.#slabStart = this.#slabEnd = 0;
      return slab;
    }
    this.#slabStart = this.#slabEnd = 0;
    this.#slabWrites = 0;
    const spare = need <= SLAB_SIZE ? spareSlabs.pop() : undefined;
    return (this.#slab = spare ?? Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, need)));
  }

  /** Hand the batched small frames to the stream now. */
  flush(): void {
    if (this.#slabEnd === this.#slabStart) return;
    const chunk = this.#slab!.subarray(this.#slabStart, this.#slabEnd);
    this.#slabStart = this.#slabEnd;
    const stream = this.#stream;
    if (stream.destroyed || stream.writableEnded) return;
    if (!this.#reuse) {
      stream.write(chunk);
      return;
    }
    stream.write(chunk, this.#onSlabWritten);
    this.#writing.push(this.#slab!);
    this.#slabWrites++;
    if (stream.writableLength === 0) this.#slabStart = this.#slabEnd = 0;
  }
}
