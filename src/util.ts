/** Small helpers shared by every layer. */

/** Does nothing: a `.catch(noop)` marks a promise's rejection as handled. */
export const noop = (): void => {};

/** A promise rejected with `error` and already marked handled, for an API whose caller may not await it. */
export function handledRejection<T = void>(error: unknown): Promise<T> {
  const p = Promise.reject(error);
  p.catch(noop);
  return p as Promise<T>;
}
