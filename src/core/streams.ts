/**
 * Web Streams over a Channel (`ch.readable`, `ch.writable`; docs/websocket.md "Web Streams"):
 * a ReadableStream of its messages and a WritableStream that sends, with backpressure mapped
 * both ways. The readable pulls: it takes a message only when its reader (or pipeTo's
 * destination) asks for one, so unread messages stay in the channel, whose highWaterMark pauses
 * the transport as it does for recv(). The writable's write() resolves when the channel's send()
 * does, which waits while the transport holds more than sendHighWaterMark, so pipeTo() goes at
 * the pace of the network, and the chunk is the writer's again once its write resolved. In Node,
 * `Duplex.fromWeb(ch, { objectMode: true })` makes a stream.Duplex of the two.
 */
import type { Channel } from './channel.js';
import { messages } from './iterator.js';

declare module './channel.js' {
  interface Channel {
    /**
     * The messages, as a Web ReadableStream (made at first use; one per channel). It ends when
     * the peer closes at a frame boundary (or on a local close) and errors with any other error
     * that ends the channel. Cancelling it (or breaking out of a `for await`) does not close the
     * channel: unread messages stay for recv().
     */
    readonly readable: ReadableStream<Buffer>;
    /**
     * A Web WritableStream whose writes are send()s (Uint8Array or string chunks, one message
     * each). close() closes the channel (gracefully: what was written is delivered first);
     * abort(reason) destroys it.
     */
    readonly writable: WritableStream<Uint8Array | string>;
  }
}

interface Streams {
  readable?: ReadableStream<Buffer>;
  writable?: WritableStream<Uint8Array | string>;
}

const made = new WeakMap<Channel, Streams>();

function streamsOf(channel: Channel): Streams {
  let s = made.get(channel);
  if (s === undefined) made.set(channel, (s = {}));
  return s;
}

/** A ReadableStream of `channel`'s messages: pulled one at a time, never read ahead of its reader. */
export function readableOf(channel: Channel): ReadableStream<Buffer> {
  const iterator = messages(channel);
  return new ReadableStream<Buffer>(
    {
      async pull(controller) {
        const next = await iterator.next(); // an error other than a clean end rejects: the stream errors with it
        if (next.done === true) controller.close();
        else controller.enqueue(next.value);
      },
      cancel() {
        void iterator.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}

/** A WritableStream whose writes are `channel.send()`s. */
export function writableOf(channel: Channel): WritableStream<Uint8Array | string> {
  return new WritableStream<Uint8Array | string>(
    {
      write: (chunk) => channel.send(chunk),
      close: () => channel.close(),
      abort: (reason) => channel.destroy(reason instanceof Error ? reason : undefined),
    },
    { highWaterMark: 1 },
  );
}

/** Give the Channel class its `readable` and `writable` getters (each made at first use, then the same object). */
export function defineStreams(cls: { prototype: Channel }): void {
  Object.defineProperties(cls.prototype, {
    readable: {
      get(this: Channel) {
        const s = streamsOf(this);
        return (s.readable ??= readableOf(this));
      },
      configurable: true,
    },
    writable: {
      get(this: Channel) {
        const s = streamsOf(this);
        return (s.writable ??= writableOf(this));
      },
      configurable: true,
    },
  });
}
