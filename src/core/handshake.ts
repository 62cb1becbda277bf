/**
 * The handshake byte reader: while a framing's handshake (tinyproto's init, multiprocessing's
 * authkey challenge) or `auth` runs, the channel's bytes go here and are served as exact-length
 * reads; what is left over goes to the frame decoder once the channel opens.
 */
import type { Duplex } from 'node:stream';
import { authHandshake } from '../auth.js';
import { TimeoutError } from '../errors.js';
import type { Framing, HandshakeIO } from '../framing/types.js';
import { raceTimeout } from '../util.js';

/** What runs before the first message: the framing's own handshake, then `auth`'s; undefined when neither. */
export function handshakeOf(
  framing: Framing,
  key: Buffer | undefined,
): ((io: HandshakeIO) => Promise<void>) | undefined {
  const own = framing.handshake?.bind(framing);
  if (key === undefined) return own;
  return async (io) => {
    if (own !== undefined) await own(io); // the framing's own first (tinyproto's init byte carries its refusal)
    await authHandshake(key, io.isServer, io);
  };
}

/** Run a handshake over the raw bytes of `stream` (read through `raw`) within `timeout` ms (0: no limit). */
export async function runHandshake(
  stream: Duplex,
  raw: RawReader,
  run: (io: HandshakeIO) => Promise<void>,
  isServer: boolean,
  timeout: number,
  name: string,
): Promise<void> {
  const io: HandshakeIO = {
    isServer,
    read: (n) => raw.read(n),
    write: (bytes) => {
      if (!stream.destroyed) stream.write(bytes);
    },
  };
  await raceTimeout(run(io), timeout, () => {
    throw new TimeoutError(`${name} handshake timed out after ${timeout} ms`);
  });
}

/** Buffers raw bytes during a framing's handshake and serves exact-length reads. */
export class RawReader {
  readonly #stream: Duplex;
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #length = 0;
  #pending: { n: number; resolve(b: Buffer): void; reject(e: unknown): void } | null = null;
  #error: Error | undefined;

  constructor(stream: Duplex, limit: number) {
    this.#stream = stream;
    this.#limit = limit;
  }

  feed(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    this.#serve();
    if (this.#length > this.#limit) this.#stream.pause();
  }

  read(n: number): Promise<Buffer> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#pending) return Promise.reject(new Error('RawReader: one read at a time'));
    return new Promise((resolve, reject) => {
      this.#pending = { n, resolve, reject };
      this.#serve();
      if (this.#pending && this.#stream.isPaused()) this.#stream.resume();
    });
  }

  fail(error: Error): void {
    this.#error = error;
    const p = this.#pending;
    this.#pending = null;
    p?.reject(error);
  }

  leftover(): Buffer {
    const all = Buffer.concat(this.#chunks, this.#length);
    this.#chunks = [];
    this.#length = 0;
    return all;
  }

  #serve(): void {
    const p = this.#pending;
    if (p === null || this.#length < p.n) return;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#length);
    this.#pending = null;
    const rest = all.subarray(p.n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#length = rest.length;
    p.resolve(all.subarray(0, p.n));
  }
}
