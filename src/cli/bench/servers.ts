/**
 * The in-process servers of a self-contained run (no address given), one per mode: an echo server,
 * a server that reads and discards and counts what it received (the receiving side's figure for
 * send mode), and a RequestChannel server whose onRequest answers with the request's body.
 */
import { Channel, RequestChannel, type Framing } from '../../../channel.js';
import type { Address } from '../args.js';
import type { Mode } from './driver.js';
import { listenOptions, type Transport } from '../transport.js';

export interface LocalServer {
  address: Address;
  /** Messages received in all (send mode's receiving side). */
  received(): number;
  close(): Promise<void>;
}

/** `transport`'s auth applies to the server too; TLS needs a certificate, which the bench does not have. */
export async function startLocalServer(mode: Mode, framing: Framing, transport: Transport): Promise<LocalServer> {
  const listener = Channel.listen(listenOptions({ host: '127.0.0.1', port: 0 }, { auth: transport.auth }, framing));
  const a = await listener.listening;
  let received = 0;
  const serve = async (ch: Channel): Promise<void> => {
    if (mode === 'request') {
      new RequestChannel(ch, { onRequest: (body) => body });
      await ch.closed;
      return;
    }
    for await (const m of ch) {
      received++;
      if (mode === 'echo') await ch.send(m); // once sent, m is ours again
      ch.release(m); // its memory may hold a later message
    }
  };
  void (async () => {
    for await (const ch of listener) {
      serve(ch)
        .catch(() => {}) // a client that vanished ends its loop
        .finally(() => ch.destroy());
    }
  })().catch(() => {
    // The listener failed (an accept without a file descriptor left): the bench's connections
    // fail with the reason, in one line.
  });
  return {
    address: { host: a.address, port: a.port },
    received: () => received,
    close: () => listener.close(),
  };
}
