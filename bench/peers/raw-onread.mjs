// The hand-rolled onread baseline, the practical limit of a Node receiver: a plain net.Socket
// reading with Node's `onread` option (the accepted socket re-wrapped, as Node offers onread only
// to sockets it creates), a large body read straight into the message, everything else into one
// reused 64 KiB buffer out of which each small message is copied (the buffer is read again). The
// sender is the hand-rolled one of raw.mjs.
import * as net from 'node:net';
import { MiniParser, now } from '../lib.mjs';

export { sender } from './raw.mjs';

const SLAB = 64 * 1024;

export function receiver(ctx) {
  return new Promise((resolve) => {
    let n = 0;
    let bytes = 0;
    let socket;
    const done = () => {
      resolve({ t1: now(), n, bytes });
      socket.destroy();
    };
    const onMessage = (m) => {
      n++;
      bytes += m.length;
      if (n === ctx.count) done();
    };
    const slab = Buffer.allocUnsafeSlow(SLAB);
    const parser = new MiniParser(onMessage, { copy: true });
    const onread = {
      buffer: () =>
        parser.body !== null && parser.body.length - parser.filled >= SLAB ? parser.body.subarray(parser.filled) : slab,
      callback: (nread, buf) => {
        if (n >= ctx.count) return false;
        if (buf !== slab)
          parser.bodyFilled(nread); // read straight into the body
        else parser.push(slab.subarray(0, nread));
        return n < ctx.count;
      },
    };
    const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
      server.close();
      const handle = accepted._handle;
      accepted._handle = null;
      accepted.destroy();
      socket = new net.Socket({ handle, onread, readable: true, writable: true });
      socket.setNoDelay(true);
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1', () => ctx.ready(server.address().port));
  });
}
