/**
 * `msgchannel send`: send the messages given as arguments, print the first --expect replies and
 * exit; for scripts (exit 124 when the replies do not come within --timeout).
 */
import type { Framing } from '../../../channel.js';
import { parseHex } from '../args.js';
import { CliError, EXIT_TIMEOUT, codeOf, fail, note, writeReceived } from '../output.js';
import { showTarget, transportOf, type Target, type TransportFlags } from '../transport.js';
import {
  Exchange,
  TIMED_OUT,
  connectOrExit,
  framingMismatch,
  peerEnded,
  sameFraming,
  settleWithin,
} from './connect.js';

export interface SendFlags extends TransportFlags {
  framing: Framing;
  expect: number;
  timeout: number;
  hex?: boolean;
}

export async function sendCommand(target: Target, messages: string[], flags: SendFlags): Promise<void> {
  const where = showTarget(target);
  const bodies = messages.map((m) => (flags.hex ? parseHex(m) : Buffer.from(m, 'utf8')));
  const transport = transportOf(flags, 'client', target);
  const deadline = Date.now() + flags.timeout * 1000;
  const ch = await connectOrExit(target, transport, flags.framing, flags.timeout);
  const exchange = new Exchange();
  try {
    for (const [i, body] of bodies.entries()) {
      exchange.sending();
      // A send can wait for ever (a tinyproto peer that never answers our header, a peer that
      // stops reading): --timeout bounds it too.
      if ((await settleWithin(ch.send(body), deadline - Date.now(), TIMED_OUT)) === TIMED_OUT) {
        throw new CliError(
          `timed out after ${flags.timeout} s sending message ${i + 1} of ${bodies.length} to ${where}: the peer did not take it (ERR_TIMEOUT)`,
          EXIT_TIMEOUT,
        );
      }
    }
    for (let i = 1; i <= flags.expect; i++) {
      const left = deadline - Date.now();
      let data: Buffer;
      try {
        data = await ch.recv({ timeout: Math.max(1, left) });
      } catch (e) {
        if (codeOf(e) === 'ERR_TIMEOUT') {
          if (i === 1) {
            throw new CliError(
              `no reply from ${where} within ${flags.timeout} s (ERR_TIMEOUT): ${sameFraming(flags.framing)}`,
              EXIT_TIMEOUT,
            );
          }
          throw new CliError(
            `timed out after ${flags.timeout} s waiting for reply ${i} of ${flags.expect} from ${where} (ERR_TIMEOUT)`,
            EXIT_TIMEOUT,
          );
        }
        if (peerEnded(e) && exchange.endedRightAfterFirst())
          throw framingMismatch(where, flags.framing, (await ch.closed) ?? e);
        if (codeOf(e) === 'ERR_CHANNEL_CLOSED') {
          throw new CliError(
            `${where} closed the connection after ${i - 1} of ${flags.expect} replies (ERR_CHANNEL_CLOSED)`,
          );
        }
        throw e;
      }
      exchange.received++;
      writeReceived(data, flags);
    }
    await ch.close({ timeout: Math.max(1000, deadline - Date.now()) });
    if (flags.expect === 0) {
      // Exit 0 and nothing printed would look the same as a server that never answers.
      const sent = bodies.length === 1 ? '1 message' : `${bodies.length} messages`;
      note(`sent ${sent} to ${where}; no reply expected (--expect 0; --expect N waits for N replies and prints them)`);
    }
  } catch (e) {
    ch.destroy();
    fail(peerEnded(e) && exchange.endedRightAfterFirst() ? framingMismatch(where, flags.framing, e) : e, {
      address: where,
    });
  }
  process.exit(0);
}
