/**
 * The load models. Closed loop: a connection sends its next message as soon as a slot of its window
 * is free, so a slow server slows the generator down with it. Open loop (`--rate N`): every message
 * has an intended send time on a fixed schedule, N per second in all, spread evenly over the
 * connections and staggered between them; latency is counted from that intended time, so a server
 * stall is charged to every message the stall delayed (the coordinated-omission correction).
 */

/** A send that starts more than this many ms after its intended time is late (timers alone are often 1-4 ms late). */
export const LATE_MS = 10;

export interface Schedule {
  /** When message `k` (0, 1, ...) of this connection is meant to start, in performance.now() ms; closed loop: now. */
  intended(k: number, now: number): number;
  /** Open loop: how many of this connection's messages are meant to start before `time` (closed loop: 0). */
  dueBefore(time: number): number;
  readonly open: boolean;
}

/** Closed loop: every message is due now. */
export const closedLoop: Schedule = { intended: (_k, now) => now, dueBefore: () => 0, open: false };

/**
 * Open loop for connection `index` of `connections`, `rate` messages/s in all from `start`: this
 * connection's messages are `connections / rate` s apart, shifted by `index / rate` s so that the
 * connections take turns rather than send at once.
 */
export function openLoop(rate: number, index: number, connections: number, start: number): Schedule {
  const intervalMs = (connections / rate) * 1000;
  const offsetMs = (index / rate) * 1000;
  const first = start + offsetMs;
  return {
    intended: (k) => first + k * intervalMs,
    dueBefore: (time) => Math.max(0, Math.ceil((time - first) / intervalMs)),
    open: true,
  };
}
