// The chaos row's reference: a resumable Channel through the proxy of channel-resume.mjs, no cuts.
import { sender as resumeSender } from './channel-resume.mjs';

export { receiver } from './channel-resume.mjs';
export const sender = (ctx, port) => resumeSender(ctx, port, 0);
