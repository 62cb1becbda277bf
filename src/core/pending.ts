/** The records of a recv() or send() waiting its turn in a Channel. */
import type { Frame } from './options.js';

/** A recv() waiting for the next frame. */
export interface Waiter {
  resolve(value: Buffer | Frame): void;
  reject(error: unknown): void;
  frame: boolean;
  cancel: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** A send() queued behind others (backpressure, a handshake, tinyproto's answers). */
export interface PendingSend {
  body: Buffer;
  type: number;
  resolve(): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
}
