// msgchannel's Channel over TCP, the receiver giving each message back with ch.release() once it
// has counted it, so the next large body is read into the same (hot) memory, as the seed gist's
// Python receiver gets from refcounting. For (d): big messages.
import { receiver as channelReceiver } from './channel.mjs';

export { sender } from './channel.mjs';

export function receiver(ctx) {
  return channelReceiver(ctx, false, true);
}
