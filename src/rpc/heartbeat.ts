/**
 * A RequestChannel's liveness check, by ping and pong: every `interval` it looks whether anything
 * was read since the last look. After an `interval` with nothing, it pings; if nothing at all is
 * read within `timeout` after the ping, the peer is gone. A busy channel sends no pings.
 *
 * The RequestChannel keeps reading pings, pongs and replies while its handlers are all busy, so a
 * peer that vanishes then is found within 2 x `interval` + `timeout`. When the RequestChannel stops
 * taking messages (requests held beyond its bound, or one-way messages unread), its Channel goes on
 * reading ahead (64 KiB): bytes arriving still show the peer alive, and silence still counts against
 * it. Only once the Channel's read-ahead is full too (`peerBlocked`) can nothing be learned: the
 * check then sends a pong each `interval` (so a peer with a heartbeat knows this side is alive and
 * busy) and blames no one; it starts again when reading resumes.
 */
import { TimeoutError } from '../errors.js';
import { after, type Timer } from '../util.js';

/** What the heartbeat needs of its RequestChannel. */
export interface HeartbeatHost {
  /** A count that moves whenever the peer reached us (messages taken, bytes read). */
  received(): number;
  /** The RequestChannel has stopped taking messages from its Channel (requests held at their bound). */
  notTaking(): boolean;
  /** Neither the RequestChannel nor its Channel is reading: the peer's silence then means nothing. */
  peerBlocked(): boolean;
  ping(): void;
  pong(): void;
  /** The peer is gone: end the channel with this error. */
  fail(error: Error): void;
}

export class Heartbeat {
  readonly #interval: number;
  readonly #timeout: number;
  readonly #host: HeartbeatHost;
  #timer: Timer | undefined;
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
    this.#timer?.clear();
    this.#timer = undefined;
  }

  #arm(delay: number): void {
    this.#timer = after(delay, this.#look, true);
  }

  readonly #look = (): void => {
    const host = this.#host;
    const received = host.received();
    // Not taking messages: the peer's pings wait unread, so answer them ahead, saying we are alive.
    if (host.notTaking()) host.pong();
    if (host.peerBlocked() || received !== this.#seen) {
      // Nothing can reach us, so nothing can be learned; or something arrived: the peer is alive.
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
