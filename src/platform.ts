/**
 * What differs between Node and the browser, for the code both run (the typed layer, the
 * framings' header layouts, the errors and checks): this module is Node's. The browser build
 * (msgchannel/browser) puts src/platform.browser.ts, with the same exports, in its place
 * (scripts/browser.mjs); test/browser/bundle.test.ts checks that the two export the same names
 * with the same types. Everything else that the browser build carries imports no Node module.
 */
import type * as MsgpackModule from '@msgpack/msgpack';
import { lazyModule } from './util.js';

/** What the msgpack codec uses of @msgpack/msgpack. */
export type MsgpackLib = Pick<typeof MsgpackModule, 'encode' | 'Decoder'>;

/**
 * @msgpack/msgpack, loaded at the first msgpack pack or unpack: a process that never uses the
 * codec (most Channel users) does not pay for loading it, about 5 MiB of RSS under Node 20.
 */
export const msgpackLib: () => MsgpackLib = lazyModule<typeof MsgpackModule>('@msgpack/msgpack');

/** A warning nobody else can receive: a process warning (`process.on('warning')`, stderr by default). */
export function emitWarning(warning: Error | string, options?: { type?: string; code?: string }): void {
  process.emitWarning(warning, options);
}

/** Run `fn` on a later turn of the event loop, after what is already queued (setImmediate). */
export function nextTurn(fn: () => void): void {
  setImmediate(fn);
}

/** `text` as UTF-8 bytes (a Buffer). */
export function utf8Encode(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}

/** UTF-8 bytes as a string (invalid sequences become U+FFFD). */
export function utf8Decode(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('utf8');
}

/** `length` bytes whose content is unspecified (Buffer.allocUnsafe: small ones come from Node's pool). */
export function allocBytes(length: number): Uint8Array {
  return Buffer.allocUnsafe(length);
}

/**
 * The platform's own kind of bytes for `bytes`, without copying: in Node a Buffer view (so a
 * message packed once for many channels is not wrapped again by each Channel.send()).
 */
export function nativeBytes(bytes: Uint8Array): Uint8Array {
  return asBuffer(bytes);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
