/** Small helpers shared by every layer. */
import { createRequire } from 'node:module';
import { MAX_TIMER_DELAY } from './validate.js';

/**
 * require() for what is loaded at first use rather than at import (a dependency or built-in only
 * some users need). The CommonJS bundle gets `import.meta.url` from a banner (scripts/build.mjs).
 */
const lazyRequire = createRequire(import.meta.url);

/** `specifier`'s module, required at the first call and kept. */
export function lazyModule<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= lazyRequire(specifier) as T);
}

/** node:tls, loaded by the first TLS connect or listen (or a check for a peer certificate): ~2 MiB a plain-TCP process does not pay. */
export const tlsLib = lazyModule<typeof import('node:tls')>('node:tls');

/** Does nothing: a `.catch(noop)` marks a promise's rejection as handled. */
export const noop = (): void => {};

/** A promise rejected with `error` and already marked handled, for an API whose caller may not await it. */
export function handledRejection<T = void>(error: unknown): Promise<T> {
  const p = Promise.reject(error);
  p.catch(noop);
  return p as Promise<T>;
}

/** Longest delay setTimeout honours (defined with the checks that use it as a bound, in validate.ts). */
export { MAX_TIMER_DELAY };

/** A timer started by after() or afterTimeout(); clear() cancels it (idempotent). */
export interface Timer {
  clear(): void;
}

const NO_TIMER: Timer = Object.freeze({ clear: noop });

/**
 * Call `fn` once `ms` milliseconds have passed (a delay: 0 is at once, on the next turn of the
 * event loop), for any length; Infinity never calls it and holds no timer. setTimeout honours at
 * most MAX_TIMER_DELAY and fires a longer delay after 1 ms, so a longer one is waited in steps
 * of at most MAX_TIMER_DELAY: it neither fires early nor wakes more than once per step.
 * `unref`: the timer does not keep the process alive.
 */
export function after(ms: number, fn: () => void, unref = false): Timer {
  if (ms === Infinity) return NO_TIMER;
  let rest = ms;
  let handle: NodeJS.Timeout;
  const arm = (): void => {
    const step = Math.min(rest, MAX_TIMER_DELAY);
    rest -= step;
    handle = setTimeout(rest > 0 ? arm : fn, step);
    if (unref) handle.unref();
  };
  arm();
  return { clear: () => clearTimeout(handle) };
}

/** A timeout (checkTimeout's meaning: 0 and Infinity are no limit, and hold no timer): `fn` once `timeout` ms have passed. */
export function afterTimeout(timeout: number, fn: () => void, unref = false): Timer {
  return timeout === 0 ? NO_TIMER : after(timeout, fn, unref);
}

/**
 * `p`'s outcome, unless `timeout` ms (0 and Infinity: no limit) pass first: then what `onTimeout`
 * returns (or throws). The timer is cleared either way; a later rejection of `p` is handled.
 */
export function raceTimeout<T, U>(p: PromiseLike<T>, timeout: number, onTimeout: () => U): Promise<T | U> {
  if (timeout === 0) return Promise.resolve(p);
  return new Promise<T | U>((resolve, reject) => {
    const timer = after(timeout, () => {
      try {
        resolve(onTimeout());
      } catch (error) {
        reject(error as Error);
      }
    });
    p.then(
      (value) => {
        timer.clear();
        resolve(value);
      },
      (error: unknown) => {
        timer.clear();
        reject(error as Error);
      },
    );
  });
}

/** Wait for `p` at most `timeout` ms (0 and Infinity: no limit): true once it fulfils, false if the time runs out first (a rejection passes through). */
export function settlesWithin(p: Promise<unknown>, timeout: number): Promise<boolean> {
  return raceTimeout(
    p.then(() => true),
    timeout,
    () => false,
  );
}

/** Resolves after `ms` ms (a delay, any length; see after()), or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      timer.clear();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = after(ms, done);
    signal?.addEventListener('abort', done, { once: true });
  });
}
