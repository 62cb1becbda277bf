/**
 * The option validators every layer uses. Each throws a RangeError (or TypeError) that says what
 * was expected and what came, as p-queue does: ``Expected `port` to be an integer from 0 to 65535, got the string '5000'``.
 */
import { inspect } from 'node:util';

/** How an unexpected value is named in an error message: numbers as they are, other types by their type. */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'bigint':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'string':
      return `the string ${inspect(value)}`;
    case 'function':
      return 'a function';
    default:
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

/** An optional timeout in milliseconds: a finite number >= 0 (undefined passes through). */
export function checkTimeout(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`Expected \`${name}\` to be a finite number >= 0, got ${describe(value)}`);
  }
  return value;
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

/** Longest delay setTimeout honours (2^31 - 1 ms, about 24.8 days); Node turns a longer one into 1 ms. */
export const MAX_TIMER_DELAY = 0x7fff_ffff;

/** An optional timer delay in milliseconds: a number from `min` to MAX_TIMER_DELAY (undefined passes through). */
export function checkDelay(name: string, value: unknown, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= min) || !(value <= MAX_TIMER_DELAY)) {
    throw new RangeError(
      `Expected \`${name}\` to be a number of milliseconds from ${min} to ${MAX_TIMER_DELAY}, got ${describe(value)}`,
    );
  }
  return value;
}
