/**
 * A RequestChannel's liveness check, by ping and pong: every `interval` it looks whether anything
 * was read since the last look. After an `interval` with nothing, it pings; if nothing at all is
 * read within `timeout` after the ping, the peer is gone. A busy channel sends no pings.
 *
 * The RequestChannel keeps reading pings, pongs and replies while its handlers are all busy, so a
 * peer that vanishes then is found within 2 x `interval` + `timeout`. Only while the RequestChannel
 * has stopped reading (requests held beyond its bound, or one-way messages unread) can nothing be
 * learned from the peer: the check then sends a pong each `interval` (so a peer with a heartbeat
 * knows this side is alive and busy) and blames no one; it starts again when reading resumes.
 */
import { TimeoutError } from '../errors.js';

/** What the heartbeat needs of its RequestChannel. */
export interface HeartbeatHost {
  /** Messages read from the channel so far, of any kind. */
  received(): number;
  /** The RequestChannel has stopped reading (the peer's silence then means nothing). */
  readingPaused(): boolean;
  ping(): void;
  pong(): void;
  /** The peer is gone: end the channel with this error. */
  fail(error: Error): void;
}

export class Heartbeat {
  readonly #interval: number;
  readonly #timeout: number;
  readonly #host: HeartbeatHost;
  #timer: NodeJS.Timeout | undefined;
  /** `host.received` at the last look. */
  #seen = 0;
  /** A ping went out at the last look and nothing was read since. */
  #pinged = false;

  constructor(settings: { interval: number; timeout: number }, host: HeartbeatHost) {
    this.#interval = settings.interval;
    this.#timeout = settings.timeout;
    this.#host = host;
    this.#arm(this.#interval);
  }

  /** Stop for good (the channel ended). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(delay: number): void {
    this.#timer = setTimeout(this.#look, delay);
    this.#timer.unref();
  }

  readonly #look = (): void => {
    const host = this.#host;
    const received = host.received();
    const paused = host.readingPaused();
    if (paused || received !== this.#seen) {
      // Paused: nothing can be learned, say we are alive. Or something was read: the peer is.
      if (paused) host.pong();
      this.#seen = received;
      this.#pinged = false;
      this.#arm(this.#interval);
      return;
    }
    if (!this.#pinged) {
      this.#pinged = true;
      host.ping();
      this.#arm(this.#timeout);
      return;
    }
    this.#timer = undefined;
    host.fail(
      new TimeoutError(
        `heartbeat: nothing received for ${this.#timeout} ms after a ping (interval ${this.#interval} ms)`,
      ),
    );
  };
}
