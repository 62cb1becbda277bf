/**
 * What a request handler returns or throws, taken without trusting it: a handler may return a
 * Proxy, a thenable whose `then` getter throws, a Uint8Array subclass whose getters throw, or
 * throw any of these. Nothing here lets such a value throw into the read loop, leave a rejection
 * unhandled, or settle a request twice; every failure becomes an error reply.
 */
import { types } from 'node:util';
import { BodyView } from '../framing/body.js';
import { describe } from '../validate.js';

// The typed arrays' own accessors, which read the internal slots: a subclass cannot override them.
const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
const accessor = (name: string): ((this: Uint8Array) => unknown) =>
  Object.getOwnPropertyDescriptor(typedArrayPrototype, name)!.get! as (this: Uint8Array) => unknown;
const bufferOf = accessor('buffer');
const byteOffsetOf = accessor('byteOffset');
const byteLengthOf = accessor('byteLength');

/** What an error reply carries. */
export interface ErrorReply {
  message: string;
  code: string | undefined;
}

/**
 * The reply body a handler's value stands for: a string as it is, any Uint8Array as a plain Buffer
 * view of its bytes (read through the intrinsic accessors, never its own getters); undefined for
 * anything else. Calls no user code.
 */
export function replyBody(value: unknown): Buffer | string | undefined {
  if (typeof value === 'string') return value;
  if (!types.isUint8Array(value)) return undefined; // a Proxy is not one: it has no typed-array slots
  const buffer = bufferOf.call(value) as ArrayBuffer;
  return new BodyView(
    buffer,
    byteOffsetOf.call(value) as number,
    byteLengthOf.call(value) as number,
  ) as unknown as Buffer;
}

/** Whether a handler's value must be awaited: any object or function other than bytes. Calls no user code. */
export function mustAdopt(value: unknown): boolean {
  const type = typeof value;
  return (type === 'object' && value !== null && !types.isUint8Array(value)) || type === 'function';
}

/** A native promise nobody has tampered with: its `then` can be called directly. Calls no user code. */
function isPlainPromise(value: unknown): value is Promise<unknown> {
  return (
    types.isPromise(value) && // a Proxy is not one
    Object.getPrototypeOf(value) === Promise.prototype &&
    !Object.hasOwn(value, 'then') &&
    !Object.hasOwn(value, 'constructor')
  );
}

/**
 * Call `onValue` with what `value` resolves to, or `onError` with why it failed: exactly one of
 * them, once, never synchronously for a thenable. Anything else is resolved the way `await` would
 * (a `then` that throws, or a getter that does, rejects), through a promise of our own.
 */
export function adopt(value: unknown, onValue: (value: unknown) => void, onError: (error: unknown) => void): void {
  const promise = isPlainPromise(value) ? value : new Promise<unknown>((resolve) => resolve(value));
  promise.then(onValue, onError);
}

/** The message and code of whatever a handler threw; never throws itself. */
export function describeThrown(error: unknown): ErrorReply {
  try {
    if (error instanceof Error) {
      const code = (error as { code?: unknown }).code;
      return { message: String(error.message), code: typeof code === 'string' ? code : undefined };
    }
    return { message: String(error), code: undefined };
  } catch {
    return { message: 'the request handler failed', code: undefined };
  }
}

/** The error reply for a value that is neither bytes nor a string; never throws. */
export function invalidReply(value: unknown): ErrorReply {
  let what: string;
  try {
    what = describe(value);
  } catch {
    what = 'an object';
  }
  return {
    message: `the request handler returned ${what}, expected a Uint8Array or a string`,
    code: 'ERR_INVALID_REPLY',
  };
}
