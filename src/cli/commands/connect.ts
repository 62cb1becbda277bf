/**
 * `msgchannel connect`: stdin lines (or hex, or raw delimited bytes) become messages and every
 * message received is printed. Also holds what send and bench share with it: connectOrExit() (the
 * connect-or-fail step), Exchange and the framing question (how a silent or closing peer is
 * explained), and settleWithin() (a bounded wait).
 */
import { createInterface } from 'node:readline';
import { Channel, type Framing } from '../../../channel.js';
import { parseHex } from '../args.js';
import { CliError, EXIT_TIMEOUT, codeOf, describeError, fail, note, writeReceived } from '../output.js';
import {
  connectHint,
  connectOptions,
  showTarget,
  transportOf,
  type Target,
  type Transport,
  type TransportFlags,
} from '../transport.js';

export interface ConnectFlags extends TransportFlags {
  framing: Framing;
  hex?: boolean;
  raw?: boolean;
  delimiter: Buffer;
  wait: number;
  timeout: number;
}

/** Connects to `target`, or reports the failure in one line and exits (124 on timeout). */
export async function connectOrExit(
  target: Target,
  transport: Transport,
  framing: Framing,
  timeoutS: number,
): Promise<Channel> {
  try {
    return await Channel.connect(connectOptions(target, transport, framing, timeoutS));
  } catch (e) {
    const where = showTarget(target);
    const hint = connectHint(codeOf(e), transport, framing);
    if (codeOf(e) === 'ERR_TIMEOUT')
      fail(
        new CliError(`cannot connect to ${where}: no answer within ${timeoutS} s (ERR_TIMEOUT)${hint}`, EXIT_TIMEOUT),
      );
    fail(hint ? new CliError(describeError(e, { action: 'connect', address: where }) + hint) : e, {
      action: 'connect',
      address: where,
    });
  }
}

/** What settleWithin() gives for a promise that did not settle in time, when undefined is a value. */
export const TIMED_OUT = Symbol('timed out');

/** Resolves (or rejects) as `p` does, or with `late` after `ms` if `p` is still pending then. */
export function settleWithin<T, L>(p: Promise<T>, ms: number, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  const timeUp = new Promise<L>((resolve) => (timer = setTimeout(() => resolve(late), Math.max(1, ms))));
  return Promise.race([p, timeUp]).finally(() => clearTimeout(timer));
}

/** Within this many ms of our first message, a close before any reply points at a framing mismatch. */
const EARLY_CLOSE_MS = 1000;

/** What a connection of connect, send or bench sent and got, to explain how it ended. */
export class Exchange {
  #firstSentAt: number | undefined;
  received = 0;

  /** Call as a message is sent (the first one starts the clock). */
  sending(): void {
    this.#firstSentAt ??= performance.now();
  }

  /** True when nothing came back and it is still right after our first message. */
  endedRightAfterFirst(): boolean {
    return (
      this.received === 0 && this.#firstSentAt !== undefined && performance.now() - this.#firstSentAt < EARLY_CLOSE_MS
    );
  }
}

/** The peer closed (or reset) the connection, as opposed to a local failure or a timeout. */
export function peerEnded(e: unknown): boolean {
  const code = codeOf(e);
  return code === 'ERR_CHANNEL_CLOSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_UNEXPECTED_EOF';
}

/** The question to ask when no reply came at all: a peer of another framing may close, or wait for ever. */
export function sameFraming(framing: Framing): string {
  return `does it use the same framing? (--framing; this side uses ${framing.name})`;
}

/** The one line for a peer that closed right after our first message without a reply. */
export function framingMismatch(where: string, framing: Framing, e: unknown): CliError {
  return new CliError(
    `no reply from ${where} (${codeOf(e) ?? 'ERR_CHANNEL_CLOSED'}): the peer closed right after our first message: ${sameFraming(framing)}`,
  );
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

export async function connectCommand(target: Target, flags: ConnectFlags): Promise<void> {
  const where = showTarget(target);
  const transport = transportOf(flags, 'client', target);
  const ch = await connectOrExit(target, transport, flags.framing, flags.timeout);
  const exchange = new Exchange();
  let sent = 0;
  let closing = false;
  let wake: (() => void) | undefined;
  /** The connection ended under us: a failure unless the peer simply closed (as with netcat, exit 0). */
  const ended = (e: unknown): void => {
    if (peerEnded(e) && exchange.endedRightAfterFirst()) fail(framingMismatch(where, flags.framing, e));
    if (e instanceof CliError || codeOf(e) !== 'ERR_CHANNEL_CLOSED') fail(e, { address: where });
  };
  const receiving = (async () => {
    try {
      for (;;) {
        const data = await ch.recv();
        exchange.received++;
        writeReceived(data, flags);
        wake?.();
      }
    } catch (e) {
      wake?.();
      if (!closing) ended((await ch.closed) ?? e);
    }
  })();
  // The server closing ends the session, as with netcat, even while stdin is still open.
  void receiving.then(() => process.exit(0));
  try {
    for await (const message of stdinMessages(flags)) {
      exchange.sending();
      await ch.send(message);
      sent++;
    }
  } catch (e) {
    if (e instanceof CliError) fail(e);
    // A send refused here (too large for the framing) leaves the channel open: `closed` would never come.
    ended(ch.isOpen ? e : ((await ch.closed) ?? e));
    process.exit(0);
  }
  // End of stdin: wait for a reply to every message, or until the peer is quiet for --wait seconds.
  while (exchange.received < sent && ch.isOpen) {
    const before = exchange.received;
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, flags.wait * 1000).unref();
    });
    if (exchange.received === before) break;
  }
  if (sent > 0 && exchange.received === 0 && ch.isOpen) {
    // A server of another framing that does not close (it waits for the rest of a frame it misread)
    // looks like a server with nothing to say: ask, and still end as netcat would.
    const messages = sent === 1 ? '1 message' : `${sent} messages`;
    note(
      `no reply from ${where} to ${messages} (--wait ${flags.wait} s after the end of input); if one was due: ${sameFraming(flags.framing)}`,
    );
  }
  closing = ch.isOpen;
  if (!closing) {
    await receiving; // the peer ended it: the receiving loop reports how
    process.exit(0);
  }
  await ch.close({ timeout: 2000 }).catch(() => ch.destroy());
  await receiving;
  process.exit(0);
}
