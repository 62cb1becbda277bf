// The chaos row: a resumable Channel through a proxy that resets the connection every 100 ms.
import { sender as resumeSender } from './channel-resume.mjs';

export { receiver } from './channel-resume.mjs';
export const sender = (ctx, port) => resumeSender(ctx, port, 100);
