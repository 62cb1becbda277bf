/**
 * The browser's platform.ts (see there): what the browser build (msgchannel/browser) uses in
 * place of Node's process warnings, setImmediate and Buffer. The build bundles @msgpack/msgpack in
 * (it has no Node dependency); in Node it loads at first use instead.
 */
import { Decoder, encode } from '@msgpack/msgpack';
import type { MsgpackLib } from './platform.js';

const msgpack: MsgpackLib = { encode, Decoder };

/** @msgpack/msgpack, bundled (what the codec uses of it). */
export const msgpackLib = (): MsgpackLib => msgpack;

/** A warning nobody else can receive: the console's. */
export function emitWarning(warning: Error | string, options?: { type?: string; code?: string }): void {
  const prefix =
    options?.type === undefined ? '' : `${options.type}${options.code === undefined ? '' : ` [${options.code}]`}: `;
  console.warn(typeof warning === 'string' ? prefix + warning : warning);
}

/** Run `fn` on a later turn of the event loop, after what is already queued. */
export function nextTurn(fn: () => void): void {
  setTimeout(fn, 0);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `text` as UTF-8 bytes. */
export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** UTF-8 bytes as a string (invalid sequences become U+FFFD). */
export function utf8Decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** `length` bytes (zeroed: the browser has no unsafe allocation). */
export function allocBytes(length: number): Uint8Array {
  return new Uint8Array(length);
}

/** The platform's own kind of bytes: in the browser, Uint8Array itself. */
export function nativeBytes(bytes: Uint8Array): Uint8Array {
  return bytes;
}
