/**
 * A byte stream the test drives by hand, for `new Channel(stream)` (the constructor wraps any
 * connected Duplex): `feed()` delivers bytes as if the peer sent them, `hold` keeps every write
 * pending (in the stream's writableLength, as a socket whose peer does not read) until
 * `release()`, and `written` records what the channel wrote. No socket and no timer: a channel on
 * it is fully deterministic, so backpressure thresholds can be checked to the byte.
 */
import { Duplex } from 'node:stream';
import { Channel, tinyproto, type ChannelOptions } from '../../channel.js';

export class ManualStream extends Duplex {
  /** Every chunk handed to the transport, in order (the chunks themselves, not copies). */
  readonly written: Buffer[] = [];
  /** While true, writes stay pending until release(). */
  hold: boolean;
  #held: (() => void)[] = [];

  constructor(options: { hold?: boolean; writableHighWaterMark?: number; allowHalfOpen?: boolean } = {}) {
    // allowHalfOpen false: the peer's end ends our side too, as on a net.Socket by default.
    super({
      writableHighWaterMark: options.writableHighWaterMark ?? 16 * 1024,
      allowHalfOpen: options.allowHalfOpen ?? true,
    });
    this.hold = options.hold ?? false;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.written.push(chunk);
    if (this.hold) this.#held.push(() => callback());
    else callback();
  }

  /** The peer sends `bytes`. */
  feed(bytes: Uint8Array): void {
    this.push(bytes);
  }

  /** The peer reads everything written so far (and what was queued behind it): 'drain' follows. */
  release(): void {
    while (this.#held.length > 0) this.#held.shift()!();
  }

  /** Every byte written so far, as one buffer. */
  wire(): Buffer {
    return Buffer.concat(this.written);
  }
}

/** Let the stream machinery and the channel run: a macrotask turn (every nextTick and microtask first). */
export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** `p`, or a rejection after `ms` (so a test that would wait for ever fails instead). */
export async function within<T>(p: Promise<T>, ms = 2000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `p` has settled by now (after a turn), and how. */
export async function state(p: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  let result: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(
    () => (result = 'resolved'),
    () => (result = 'rejected'),
  );
  await turn();
  return result;
}

/** A tinyproto Channel over `s` with its handshake done (the peer's init byte fed). */
export async function tinyprotoOver(s: ManualStream, options: ChannelOptions = {}): Promise<Channel> {
  const ch = new Channel(s, { ...options, framing: tinyproto });
  s.feed(Buffer.from([0xff])); // the peer's init byte
  await ch.ready;
  return ch;
}
