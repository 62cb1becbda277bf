// msgchannel's Channel over TCP, the receiver reading with a plain `for await (const m of ch)`
// (no tryRecv()): the loop most code writes, beside the `channel` peer's tryRecv() drain.
import { receiver as channelReceiver } from './channel.mjs';

export { sender } from './channel.mjs';

export function receiver(ctx) {
  return channelReceiver(ctx, true);
}
