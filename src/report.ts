/** Where errors no caller can receive go: a user's onError handler, else a process warning (the console's in the browser). */
import { emitWarning } from './platform.js';

/** A handler's own failure (thrown or rejected) becomes a process warning. */
export function warn(error: unknown): void {
  emitWarning(error instanceof Error ? error : String(error));
}

/** Errors a peer can cause at will, each tied to the limiter of the connection it came from (see WarningLimiter.tag). */
const limiters = new WeakMap<Error, WarningLimiter>();

/**
 * Rate limit for the process warnings of one connection's peer-caused errors (unknown message
 * types, undecodable bodies), which a peer can send by the million: the first becomes a warning,
 * the next ones are counted, and the count is emitted at most every `interval` ms and by flush()
 * (when the connection's reading ends), as one warning "N more errors like this...". No timer.
 */
export class WarningLimiter {
  /** Milliseconds between two warnings of one connection. */
  static readonly interval = 5000;
  #lastShown: number | undefined;
  #hidden = 0;
  #latest: (Error & { code?: string }) | undefined;

  /** Tie `error` to this limiter: reportError() without a handler then warns through it. Returns `error`. */
  tag<E extends Error>(error: E): E {
    limiters.set(error, this);
    return error;
  }

  warn(error: Error): void {
    const now = Date.now();
    if (this.#lastShown === undefined) {
      this.#lastShown = now;
      emitWarning(error);
      return;
    }
    this.#hidden++;
    this.#latest = error;
    if (now - this.#lastShown >= WarningLimiter.interval) this.flush();
  }

  /** Emit the count of the errors not shown yet, if any. */
  flush(): void {
    const latest = this.#latest;
    if (this.#hidden === 0 || latest === undefined) return;
    const n = this.#hidden;
    this.#hidden = 0;
    this.#lastShown = Date.now();
    emitWarning(
      `${n} more ${n === 1 ? 'error' : 'errors'} like this from the same connection (latest: ${latest.message})`,
      {
        type: latest.name,
        ...(typeof latest.code === 'string' ? { code: latest.code } : {}),
      },
    );
  }
}

/**
 * Hand `error` to `handler` (sync or async), with `extra` arguments after it; with no handler it
 * becomes a process warning (rate-limited per connection for errors a WarningLimiter tagged).
 * Never throws.
 */
export function reportError<A extends unknown[]>(
  handler: ((error: Error, ...extra: A) => unknown) | undefined,
  error: unknown,
  ...extra: A
): void {
  const e = error instanceof Error ? error : new Error(String(error));
  if (handler === undefined) {
    const limiter = limiters.get(e);
    if (limiter !== undefined) limiter.warn(e);
    else emitWarning(e);
    return;
  }
  try {
    const r = handler(e, ...extra);
    if (r instanceof Promise) r.catch(warn);
  } catch (inner) {
    warn(inner);
  }
}
