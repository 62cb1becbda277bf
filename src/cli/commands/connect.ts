/**
 * `msgchannel connect`: stdin lines (or hex, or raw delimited bytes) become messages and every
 * message received is printed. Also holds open(), the connect-or-fail step send and bench share.
 */
import { createInterface } from 'node:readline';
import { Channel, type Framing } from '../../../channel.js';
import { parseAddress, parseHex, showAddress, type Address } from '../args.js';
import { CliError, EXIT_TIMEOUT, codeOf, fail, writeReceived } from '../output.js';

export interface ConnectFlags {
  framing: Framing;
  hex?: boolean;
  raw?: boolean;
  delimiter: Buffer;
  wait: number;
  timeout: number;
}

/** Connects to `address`, or reports the failure in one line and exits (124 on timeout). */
export async function open(address: Address, framing: Framing, timeoutS: number): Promise<Channel> {
  try {
    return await Channel.connect(address.host, address.port, { framing, timeout: timeoutS * 1000 });
  } catch (e) {
    if (codeOf(e) === 'ERR_TIMEOUT') fail(new CliError(`cannot connect to ${showAddress(address)}: no answer within ${timeoutS} s (ERR_TIMEOUT)`, EXIT_TIMEOUT));
    fail(e, { action: 'connect', address: showAddress(address) });
  }
}

/** Messages from stdin: lines (text or hex), or raw bytes split on the delimiter. */
async function* stdinMessages(flags: ConnectFlags): AsyncGenerator<Buffer> {
  if (!flags.raw) {
    const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
    for await (const line of rl) yield flags.hex ? parseHex(line) : Buffer.from(line, 'utf8');
    return;
  }
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at: number;
    while ((at = pending.indexOf(flags.delimiter)) >= 0) {
      yield pending.subarray(0, at);
      pending = pending.subarray(at + flags.delimiter.length);
    }
  }
  if (pending.length) yield pending;
}

export async function connectCommand(addressText: string, flags: ConnectFlags): Promise<void> {
  const address = parseAddress(addressText);
  const where = showAddress(address);
  const ch = await open(address, flags.framing, flags.timeout);
  let sent = 0;
  let received = 0;
  let wake: (() => void) | undefined;
  const receiving = (async () => {
    try {
      for (;;) {
        const data = await ch.recv();
        received++;
        writeReceived(data, flags);
        wake?.();
      }
    } catch (e) {
      wake?.();
      if (codeOf(e) !== 'ERR_CHANNEL_CLOSED') fail(e, { address: where });
    }
  })();
  // The server closing ends the session, as with netcat, even while stdin is still open.
  void receiving.then(() => process.exit(0));
  try {
    for await (const message of stdinMessages(flags)) {
      await ch.send(message);
      sent++;
    }
  } catch (e) {
    if (e instanceof CliError) fail(e);
    fail((await ch.closed) ?? e, { address: where });
  }
  // End of stdin: wait for a reply to every message, or until the peer is quiet for --wait seconds.
  while (received < sent && ch.isOpen) {
    const before = received;
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, flags.wait * 1000).unref();
    });
    if (received === before) break;
  }
  await ch.close({ timeout: 2000 }).catch(() => ch.destroy());
  await receiving;
  process.exit(0);
}
