/** Helpers of the request/reply suites: a connected pair of Channels over TCP on 127.0.0.1. */
import { Channel, type ChannelOptions } from '../../channel.js';

/** Two channels joined over a real TCP connection on 127.0.0.1 (port 0); `server` is the accepted end. */
export async function tcpPair(
  options: ChannelOptions = {},
  serverOptions: ChannelOptions = options,
): Promise<{ client: Channel; server: Channel }> {
  const listener = Channel.listen('127.0.0.1', 0, serverOptions);
  try {
    const { port } = await listener.listening;
    const [client, server] = await Promise.all([Channel.connect('127.0.0.1', port, options), listener.accept()]);
    return { client, server: server! };
  } finally {
    await listener.close();
  }
}

/** A promise and its resolve, for handlers the test releases by hand. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** Wait until `cond()` holds (polling every 2 ms), or fail after `ms`. */
export async function until(cond: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
