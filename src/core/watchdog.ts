/**
 * Liveness of a channel's inbound side: `headerTimeout` (a frame's header must arrive in time once
 * it has started), `bodyTimeout` (a frame in progress must make 1 MiB of progress, or end, in
 * time) and `idleTimeout` (some byte must arrive in time). One unref'd interval per
 * channel samples the decoder's offset and the bytes read; nothing runs per message or per chunk.
 *
 * What the channel's own flow control excuses: while it holds decoding for a reason of its own
 * (unread messages, unread tinyproto answers), the frame timeouts wait; while it has also stopped
 * reading (its read-ahead is full), the peer cannot reach us and idleTimeout waits too. Waiting
 * for the memory budget excuses nothing: the peer caused it by announcing the body.
 */
import { TimeoutError } from '../errors.js';
import type { Decoder } from '../framing/types.js';
import { MAX_TIMER_DELAY } from '../util.js';

/** What the watchdog asks of its channel. */
export interface Watched {
  readonly decoder: Pick<Decoder, 'offset' | 'atBoundary'>;
  /** The framing's longest header: at least this many bytes must arrive per `headerTimeout`. */
  readonly maxHeaderLength: number;
  /** False once the channel is no longer open: the watchdog stops. */
  active(): boolean;
  /** Raw bytes read from the transport so far (read-ahead included): what idleTimeout watches. */
  bytesRead(): number;
  /** True while the channel holds decoding for a reason of its own: header and body timeouts wait. */
  holding(): boolean;
  /** True while the channel, for a reason of its own, does not even read: idleTimeout waits too. */
  blocking(): boolean;
  /** True while this connection holds memory budget that others wait for: bodyTimeout is CONTENDED_SPEEDUP times shorter. */
  contended(): boolean;
  /** A timeout: the channel fails with this error. */
  fail(error: TimeoutError): void;
}

/** Bytes a frame in progress must receive per `bodyTimeout` (or be complete): 1 MiB. */
export const BODY_PROGRESS = 1024 * 1024;
/** While other connections wait for the memory budget, a body holding some must progress this many times faster. */
export const CONTENDED_SPEEDUP = 4;

export class Watchdog {
  readonly #watched: Watched;
  readonly #headerTimeout: number;
  readonly #idleTimeout: number;
  #timer: NodeJS.Timeout | undefined;
  /** Bytes read at the last sample, and when that last moved. */
  #seenRead = 0;
  #lastByteAt = 0;
  /** When a sample first saw the current incomplete frame (0: at a boundary), and the offset then. */
  #frameSince = 0;
  #frameOffset = 0;
  readonly #bodyTimeout: number;
  /** When the current incomplete frame last made BODY_PROGRESS bytes of progress (0: at a boundary), and the offset then. */
  #bodySince = 0;
  #bodyOffset = 0;

  constructor(watched: Watched, headerTimeout: number, idleTimeout: number, bodyTimeout = 0) {
    this.#watched = watched;
    this.#headerTimeout = headerTimeout;
    this.#idleTimeout = idleTimeout;
    this.#bodyTimeout = bodyTimeout;
  }

  /** Start sampling (once the channel is open); does nothing when all three timeouts are off. */
  start(): void {
    const header = this.#headerTimeout;
    const idle = this.#idleTimeout;
    const body = this.#bodyTimeout;
    if ((header === 0 && idle === 0 && body === 0) || this.#timer !== undefined) return;
    const period = Math.min(
      MAX_TIMER_DELAY,
      Math.max(5, Math.min(header || Infinity, idle || Infinity, body || Infinity) / 8),
    );
    this.#seenRead = this.#watched.bytesRead();
    this.#lastByteAt = Date.now();
    this.#timer = setInterval(this.#sample, period);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  readonly #sample = (): void => {
    const w = this.#watched;
    if (!w.active()) {
      this.stop();
      return;
    }
    const now = Date.now();
    const read = w.bytesRead();
    if (read !== this.#seenRead || w.blocking()) {
      // Bytes arrived, or we stopped reading: whatever the peer sent waits in the kernel, not its fault.
      this.#seenRead = read;
      this.#lastByteAt = now;
    } else if (this.#idleTimeout > 0 && now - this.#lastByteAt >= this.#idleTimeout) {
      w.fail(
        new TimeoutError(`nothing received for ${now - this.#lastByteAt} ms (idleTimeout ${this.#idleTimeout} ms)`),
      );
      return;
    }
    if (w.holding()) {
      // We hold decoding: the frame in progress waits for us, not for the peer.
      this.#frameSince = 0;
      this.#bodySince = 0;
      return;
    }
    const offset = w.decoder.offset;
    if (this.#bodyTimeout > 0) {
      // A frame in progress must make BODY_PROGRESS bytes of progress (or end) every bodyTimeout:
      // a body trickled or stalled cannot hold its memory (a listener's budget) for ever.
      if (w.decoder.atBoundary) this.#bodySince = 0;
      else if (this.#bodySince === 0 || offset - this.#bodyOffset >= BODY_PROGRESS) {
        this.#bodySince = now;
        this.#bodyOffset = offset;
      } else {
        // Holding budget others wait for: give it up sooner if the body does not come.
        const contended = w.contended();
        const limit = contended ? this.#bodyTimeout / CONTENDED_SPEEDUP : this.#bodyTimeout;
        if (now - this.#bodySince >= limit) {
          const why = contended ? ` while other connections wait for the memory budget` : '';
          w.fail(
            new TimeoutError(
              `message incomplete: ${offset - this.#bodyOffset} bytes of it arrived in ${now - this.#bodySince} ms, less than ${BODY_PROGRESS} per ${limit} ms (bodyTimeout ${this.#bodyTimeout} ms${why})`,
            ),
          );
          return;
        }
      }
    }
    if (this.#headerTimeout === 0) return;
    if (w.decoder.atBoundary) {
      this.#frameSince = 0;
    } else if (this.#frameSince === 0 || offset - this.#frameOffset >= w.maxHeaderLength) {
      // A new frame, or the last one's header is surely complete: start counting from here.
      this.#frameSince = now;
      this.#frameOffset = offset;
    } else if (now - this.#frameSince >= this.#headerTimeout) {
      w.fail(
        new TimeoutError(
          `frame header incomplete ${now - this.#frameSince} ms after it started (headerTimeout ${this.#headerTimeout} ms)`,
        ),
      );
    }
  };
}
