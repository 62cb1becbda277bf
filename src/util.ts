/** Small helpers shared by every layer. */
import { createRequire } from 'node:module';

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

/** Wait for `p` at most `ms` milliseconds: true once it fulfils, false if the time runs out first (a rejection passes through). The timer is cleared either way. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([p.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
