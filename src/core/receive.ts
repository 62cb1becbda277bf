/**
 * The receive queue: messages received and not yet taken, and the recv() calls waiting for one.
 * One queue serves the Channel (its frames) and RequestChannel (its one-way messages), with the
 * same semantics: concurrent recv() calls resolve in call order with messages in arrival order; a
 * call that is aborted or times out takes no message (it goes to the next caller); once the queue
 * has ended, recv() returns what is buffered, then rejects with the end's error.
 *
 * Each buffered message counts its body plus MESSAGE_OVERHEAD bytes, so a flood of empty
 * messages counts too; the owner compares `bytes` with its high-water mark. `onTake` is told of
 * every message that leaves (taken from the buffer or handed straight to a waiting recv()).
 *
 * A caller's signal passed to recv() without a timeout is listened to once, by the queue, for as
 * long as it is used: a loop that passes the same signal to every recv() (a Server's stop signal)
 * adds and removes no listener per message. EventTarget listeners are costly (adding and removing
 * one was about a sixth of a Server's CPU per message under many clients, bench/README.md).
 */
import { recvDeadline, type Frame, type RecvOptions } from './options.js';
import { Deque } from './deque.js';
import { noop } from '../util.js';

/** Bookkeeping bytes counted per buffered message on top of its body (its objects), so empty messages count too. */
export const MESSAGE_OVERHEAD = 64;

/** One recv() waiting for a message. Aborted ones stay queued, marked `done`, until passed over. */
interface Waiter {
  resolve(value: Buffer | Frame): void;
  reject(error: unknown): void;
  /** Resolve with `{ type, data }` rather than the body. */
  frame: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  dispose: () => void;
  done: boolean;
}

export class ReceiveQueue {
  readonly #bodies = new Deque<Buffer>();
  /** Type fields of the buffered messages, for owners whose messages have them. */
  readonly #types: Deque<number> | null;
  #bytes = 0;
  readonly #waiters = new Deque<Waiter>();
  /** Waiters still waiting (not aborted): 0 = uncontended. */
  #live = 0;
  #endError: Error | undefined;
  readonly #onTake: (body: Buffer) => void;
  /** The caller's signal the queue listens to (#onKeptAbort), for waiters that carry no listener of their own. */
  #kept: AbortSignal | undefined;

  constructor(withTypes: boolean, onTake: (body: Buffer) => void) {
    this.#types = withTypes ? new Deque<number>() : null;
    this.#onTake = onTake;
  }

  /** Messages buffered. */
  get length(): number {
    return this.#bodies.length;
  }

  /** Bytes buffered: bodies plus MESSAGE_OVERHEAD each. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Waiter records held, aborted ones not yet dropped included (bounded: see #compact). */
  get records(): number {
    return this.#waiters.length;
  }

  /** Why the queue ended (recv() rejects with it once the buffer is empty), or undefined. */
  get endError(): Error | undefined {
    return this.#endError;
  }

  /** The next message; with `frame`, as `{ type, data }`. */
  recv(options: RecvOptions | undefined, frame: boolean): Promise<Buffer | Frame> {
    let signal: AbortSignal | undefined;
    let dispose = noop;
    if (options === undefined) {
      // Nothing to check first.
    } else if (options.signal !== undefined && options.signal === this.#kept && options.timeout === undefined) {
      // The signal the queue already listens to, and no timeout: not aborted (the listener would
      // have let it go), no deadline to set up. (A Server's serve loop passes its stop signal each time.)
      signal = options.signal;
    } else {
      const limit = recvDeadline(options);
      if ('error' in limit) return Promise.reject(limit.error);
      ({ signal, dispose } = limit);
    }
    if (this.#live === 0) {
      // Uncontended with a message buffered: one resolved promise.
      if (this.#bodies.length > 0) {
        dispose();
        return Promise.resolve(this.#take(frame));
      }
      if (this.#endError !== undefined) {
        dispose();
        return Promise.reject(this.#endError);
      }
    }
    // The caller's own signal (no timeout wrapped it) can be the one the queue keeps a listener on.
    return this.#wait(signal, dispose, frame, signal !== undefined && signal === options?.signal);
  }

  /** The next message if one is buffered and no recv() waits, without a promise; undefined otherwise. */
  tryRecv(): Buffer | undefined {
    return this.#live === 0 && this.#bodies.length > 0 ? (this.#take(false) as Buffer) : undefined;
  }

  #wait(
    signal: AbortSignal | undefined,
    dispose: () => void,
    frame: boolean,
    keepable: boolean,
  ): Promise<Buffer | Frame> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, frame, signal, onAbort: undefined, dispose, done: false };
      if (signal !== undefined && !(keepable && this.#keep(signal))) {
        waiter.onAbort = () => {
          if (waiter.done) return;
          this.#abandon(waiter);
          this.#compact();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
      this.#live++;
    });
  }

  /**
   * Whether the queue's own listener covers waiters with this signal: it does if the signal is the
   * one kept, or becomes it when no live waiter needs the one kept before.
   */
  #keep(signal: AbortSignal): boolean {
    const kept = this.#kept;
    if (signal === kept) return true;
    if (kept !== undefined) {
      if (this.#waiters.some((w) => !w.done && w.signal === kept)) return false;
      kept.removeEventListener('abort', this.#onKeptAbort);
    }
    this.#kept = signal;
    signal.addEventListener('abort', this.#onKeptAbort, { once: true });
    return true;
  }

  /** The kept signal aborted: every waiter with it takes no message. */
  readonly #onKeptAbort = (): void => {
    const signal = this.#kept;
    this.#kept = undefined;
    const waiters = this.#waiters;
    for (let n = waiters.length; n > 0; n--) {
      const w = waiters.shift()!;
      if (w.done) continue;
      if (w.signal === signal) this.#abandon(w);
      else waiters.push(w);
    }
  };

  /** Finish a waiter whose signal aborted: it rejects with the signal's reason and takes no message. */
  #abandon(w: Waiter): void {
    w.done = true;
    this.#live--;
    w.dispose();
    w.reject(w.signal!.reason);
  }

  /** Drop aborted waiters once they outnumber the live ones, so a loop of timed-out recv()s holds nothing. */
  #compact(): void {
    const waiters = this.#waiters;
    while (waiters.peek()?.done === true) waiters.shift();
    const dead = waiters.length - this.#live;
    if (dead < 16 || dead < this.#live) return;
    for (let n = waiters.length; n > 0; n--) {
      const w = waiters.shift()!;
      if (!w.done) waiters.push(w);
    }
  }

  /** Take the first buffered message (there is one). */
  #take(frame: boolean): Buffer | Frame {
    const body = this.#bodies.shift()!;
    const type = this.#types === null ? 0 : this.#types.shift()!;
    this.#bytes -= body.length + MESSAGE_OVERHEAD;
    this.#onTake(body);
    return frame ? { type, data: body } : body;
  }

  /** The first live waiter, finished (its listener and timer gone), or undefined. */
  #nextWaiter(): Waiter | undefined {
    for (let w = this.#waiters.shift(); w !== undefined; w = this.#waiters.shift()) {
      if (w.done) continue;
      w.done = true;
      this.#live--;
      if (w.onAbort !== undefined) w.signal!.removeEventListener('abort', w.onAbort);
      w.dispose();
      return w;
    }
    return undefined;
  }

  /** A message arrived: to the first waiting recv() (true), or buffered (false). */
  push(body: Buffer, type: number): boolean {
    if (this.#live > 0) {
      const w = this.#nextWaiter()!;
      this.#onTake(body);
      w.resolve(w.frame ? { type, data: body } : body);
      return true;
    }
    this.#bodies.push(body);
    this.#types?.push(type);
    this.#bytes += body.length + MESSAGE_OVERHEAD;
    return false;
  }

  /**
   * No more messages will come, for this reason: waiting recv()s reject with it (they wait only
   * when nothing is buffered); later ones get what is buffered, then it. A later end() replaces
   * the reason (a local close after the peer's end reports the close).
   */
  end(error: Error): void {
    this.#endError = error;
    for (let w = this.#nextWaiter(); w !== undefined; w = this.#nextWaiter()) w.reject(error);
    // No recv() waits from now on: let go of the caller's signal.
    this.#kept?.removeEventListener('abort', this.#onKeptAbort);
    this.#kept = undefined;
  }

  /** Discard what is buffered (a local close); returns the bodies, for the owner's bookkeeping. */
  clear(): Buffer[] {
    this.#types?.drain();
    this.#bytes = 0;
    return this.#bodies.drain();
  }
}
