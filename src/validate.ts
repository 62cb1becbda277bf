/**
 * The option validators every layer uses. Each throws a RangeError (or TypeError) that says what
 * was expected and what came, as p-queue does: ``Expected `port` to be an integer from 0 to 65535, got the string '5000'``.
 * Nothing of Node here: the browser build (msgchannel/browser) shares these checks.
 */

/** Longest delay setTimeout honours (2^31 - 1 ms, about 24.8 days); Node turns a longer one into 1 ms. */
export const MAX_TIMER_DELAY = 0x7fff_ffff;

/** A string quoted as util.inspect quotes it: single quotes, unless it holds some and no double ones. */
function quote(text: string): string {
  const escaped = JSON.stringify(text).slice(1, -1).replaceAll('\\"', '"');
  if (!text.includes("'")) return `'${escaped}'`;
  if (!text.includes('"')) return `"${escaped}"`;
  return `'${escaped.replaceAll("'", "\\'")}'`;
}

/** How an unexpected value is named in an error message: numbers as they are, other types by their type. */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'bigint':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'string':
      return `the string ${quote(value)}`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return 'an array';
      return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
  }
}

/** A required integer from `min` to `max`. */
export function checkInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Expected \`${name}\` to be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/**
 * An optional number >= `min` (undefined passes through). With `integer`, it must be an integer
 * or Infinity (a limit that can be lifted).
 */
export function checkNumber(name: string, value: unknown, min: number, integer = false): number | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== 'number' ||
    Number.isNaN(value) ||
    value < min ||
    (integer && value !== Infinity && !Number.isInteger(value))
  ) {
    throw new RangeError(
      `Expected \`${name}\` to be ${integer ? 'an integer' : 'a number'} >= ${min}${integer ? ' or Infinity' : ''}, got ${describe(value)}`,
    );
  }
  return value;
}

/**
 * An optional timeout in milliseconds (undefined passes through): how long something may take
 * before it fails. A number >= 0 of any length, or Infinity. `0` and `Infinity` both mean no
 * limit, everywhere (as Node's socket.setTimeout(0)); both are returned as 0, which the timer
 * helpers (util.ts afterTimeout, raceTimeout) take as no timer.
 */
export function checkTimeout(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= 0)) {
    throw new RangeError(
      `Expected \`${name}\` to be a number of milliseconds >= 0 (0 or Infinity: no limit), got ${describe(value)}`,
    );
  }
  return value === Infinity ? 0 : value;
}

/** A finite number >= `min` (undefined passes through). */
export function checkFinite(name: string, value: unknown, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new RangeError(`Expected \`${name}\` to be a finite number >= ${min}, got ${describe(value)}`);
  }
  return value;
}

/** A TCP port: an integer from 0 to 65535. */
export function checkPort(value: unknown): number {
  return checkInt('port', value, 0, 65535);
}

/** One of a fixed set of values. */
export function checkOneOf<T>(name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new RangeError(
      `Expected \`${name}\` to be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(value)}`,
    );
  }
  return value as T;
}

/**
 * An optional delay in milliseconds, how long to wait before doing something (undefined passes
 * through): a number from `min` to `max`; `0` is at once. util.ts after() waits any length, so
 * a delay it runs may have `max` Infinity (never). The default `max`, MAX_TIMER_DELAY, is for a
 * delay given to setTimeout itself.
 */
export function checkDelay(name: string, value: unknown, min: number, max = MAX_TIMER_DELAY): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= min) || !(value <= max)) {
    throw new RangeError(
      `Expected \`${name}\` to be a number of milliseconds from ${min} to ${max}, got ${describe(value)}`,
    );
  }
  return value;
}
