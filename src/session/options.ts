/**
 * The `resume` option of Channel.connect() and Channel.listen(): its type, named defaults and
 * check. Every default is explained in docs/sessions.md.
 */
import { checkInt, checkNumber } from '../validate.js';
import { MAX_WINDOW, MIN_WINDOW } from './wire.js';

/**
 * Default `window`: 1 MiB unacknowledged per direction. It covers the bandwidth-delay product of
 * 1 Gbit/s at 8 ms and 100 Mbit/s at 80 ms, and it matches the send and receive high-water marks
 * (1 MiB each), so resuming at most doubles what a slow or absent peer makes a channel hold.
 */
export const DEFAULT_WINDOW = 1024 * 1024;
/** Default `keep`: a session outlives its connection by 30 s, longer than a dead connection takes to be noticed. */
export const DEFAULT_KEEP = 30_000;
/** Default `heartbeat`: a silent connection is probed after 2.5 s and declared dead after 10 s. */
export const DEFAULT_HEARTBEAT = 5_000;
/** Default `maxDetached` of a listener: sessions waiting for their client to come back. */
export const DEFAULT_MAX_DETACHED = 1_000;
/** Default `replayBudget` of a listener: bytes held in all its sessions' replay buffers. */
export const DEFAULT_REPLAY_BUDGET = 256 * 1024 * 1024;

/** `resume: { ... }`: how a session survives dropped connections (docs/sessions.md). */
export interface ResumeOptions {
  /**
   * Most bytes sent and not yet acknowledged by the peer, per direction. A copy of them is kept
   * to send again after a reconnect; send() waits while the window is full. The smaller of the
   * two ends' windows applies.
   * @default 1 MiB
   */
  window?: number;
  /**
   * Milliseconds a session outlives its connection: the connecting side retries (with backoff)
   * this long, the listening side keeps the session this long. Past it the session ends with
   * SessionLostError.
   * @default 30000
   */
  keep?: number;
  /**
   * Liveness, in milliseconds: a connection that has received nothing for heartbeat / 2 sends a
   * probe (answered at once), and one that has received nothing for 2 x heartbeat is dropped and
   * resumed (noticed within 2 x to 2.5 x heartbeat).
   * @default 5000
   */
  heartbeat?: number;
  /**
   * Listening side: most sessions open at once, attached or not. A new one past it is refused.
   * @default the listener's maxConnections (10000)
   */
  maxSessions?: number;
  /** Listening side: most sessions kept without a connection; past it the oldest is lost. @default 1000 */
  maxDetached?: number;
  /**
   * Listening side: most bytes all sessions may hold in their replay buffers together; past it a
   * session's send() waits for its peer's acknowledgements, as when its window is full.
   * @default 256 MiB
   */
  replayBudget?: number;
}

export interface ResumeSettings {
  window: number;
  keep: number;
  heartbeat: number;
  maxSessions: number | undefined;
  maxDetached: number;
  replayBudget: number;
}

function intOr(name: string, value: unknown, min: number, max: number, fallback: number): number {
  return value === undefined ? fallback : checkInt(name, value, min, max);
}

/** The settings of `resume`, or undefined when it is off; throws RangeError/TypeError on a bad value. */
export function checkResume(resume: boolean | ResumeOptions | undefined): ResumeSettings | undefined {
  if (resume === undefined || resume === false) return undefined;
  if (resume !== true && (typeof resume !== 'object' || resume === null)) {
    throw new TypeError(`Expected \`resume\` to be a boolean or an object, got ${typeof resume}`);
  }
  const o: ResumeOptions = resume === true ? {} : resume;
  return {
    window: intOr('resume.window', o.window, MIN_WINDOW, MAX_WINDOW, DEFAULT_WINDOW),
    keep: intOr('resume.keep', o.keep, 0, 2 ** 31 - 1, DEFAULT_KEEP),
    heartbeat: intOr('resume.heartbeat', o.heartbeat, 10, 2 ** 30, DEFAULT_HEARTBEAT),
    maxSessions: checkNumber('resume.maxSessions', o.maxSessions, 0, true),
    maxDetached: checkNumber('resume.maxDetached', o.maxDetached, 0, true) ?? DEFAULT_MAX_DETACHED,
    replayBudget: checkNumber('resume.replayBudget', o.replayBudget, 0, true) ?? DEFAULT_REPLAY_BUDGET,
  };
}
