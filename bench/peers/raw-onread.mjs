// The hand-rolled onread baseline, the practical limit of a Node receiver: a plain net.Socket
// reading with Node's `onread` option (the accepted socket re-wrapped, as Node offers onread only
// to sockets it creates), a large body read straight into the message, everything else into one
// reused 64 KiB buffer out of which each small message is copied (the buffer is read again). The
// sender is the hand-rolled one of raw.mjs.
import * as net from 'node:net';
import { now } from '../lib.mjs';

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
    let body = null;
    let filled = 0;
    let rest = null;
    const parse = (chunk) => {
      if (rest !== null) {
        chunk = Buffer.concat([rest, chunk]);
        rest = null;
      }
      const end = chunk.length;
      let i = 0;
      while (i < end && n < ctx.count) {
        if (body !== null) {
          const take = Math.min(end - i, body.length - filled);
          chunk.copy(body, filled, i, i + take);
          filled += take;
          i += take;
          if (filled === body.length) {
            const b = body;
            body = null;
            onMessage(b);
          }
          continue;
        }
        const lf = chunk.indexOf(0x0a, i + 6);
        if (lf < 0) {
          rest = Buffer.from(chunk.subarray(i)); // the slab is read again: keep a copy
          return;
        }
        let len = 0;
        for (let j = i + 6; j < lf - 1; j++) len = len * 10 + (chunk[j] - 0x30);
        i = lf + 1;
        if (end - i >= len) {
          onMessage(Buffer.from(chunk.subarray(i, i + len))); // copied out of the reused slab
          i += len;
        } else {
          body = Buffer.allocUnsafe(len);
          filled = 0;
        }
      }
    };
    const onread = {
      buffer: () => (body !== null && body.length - filled >= SLAB ? body.subarray(filled) : slab),
      callback: (nread, buf) => {
        if (n >= ctx.count) return false;
        if (buf !== slab) {
          filled += nread; // read straight into the body
          if (filled === body.length) {
            const b = body;
            body = null;
            onMessage(b);
          }
          return true;
        }
        parse(slab.subarray(0, nread));
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
