/** Where errors no caller can receive go: a user's onError handler, else a process warning. */

/** A handler's own failure (thrown or rejected) becomes a process warning. */
export function warn(error: unknown): void {
  process.emitWarning(error instanceof Error ? error : String(error));
}

/**
 * Hand `error` to `handler` (sync or async), with `extra` arguments after it; with no handler it
 * becomes a process warning. Never throws.
 */
export function reportError<A extends unknown[]>(handler: ((error: Error, ...extra: A) => unknown) | undefined, error: unknown, ...extra: A): void {
  const e = error instanceof Error ? error : new Error(String(error));
  if (handler === undefined) {
    process.emitWarning(e);
    return;
  }
  try {
    const r = handler(e, ...extra);
    if (r instanceof Promise) r.catch(warn);
  } catch (inner) {
    warn(inner);
  }
}
