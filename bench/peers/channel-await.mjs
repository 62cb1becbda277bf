// msgchannel's Channel over TCP, the receiver awaiting recv() once per message (no tryRecv()):
// the plain loop most code writes, beside the `channel` peer's tryRecv() drain.
import { receiver as channelReceiver } from './channel.mjs';

export { sender } from './channel.mjs';

export function receiver(ctx) {
  return channelReceiver(ctx, true);
}
