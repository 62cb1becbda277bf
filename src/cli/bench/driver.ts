/**
 * The connection driver: one sender and one reader per connection, for each mode. The sender waits
 * for its message's turn (the schedule) and for a free slot of the window, then starts it; the
 * reader (or the send's or request's own promise) completes it. The two never wait for each other:
 * a sender that awaited its own echo before reading would stop reading while its sends wait for the
 * server, and a server that stops reading while its echoes wait for us would then wait forever.
 */
import type { RecordableHistogram } from 'node:perf_hooks';
import { Channel, RequestChannel } from '../../../channel.js';
import { codeOf } from '../output.js';
import { recordMs } from './histogram.js';
import { LATE_MS, type Schedule } from './schedule.js';

/** echo: round trips; send: one-way messages; request: RequestChannel requests and their replies. */
export type Mode = 'echo' | 'send' | 'request';
export const MODES: readonly Mode[] = ['echo', 'send', 'request'];

/** What one completed message of each mode is called in reports. */
export const UNIT: Record<Mode, string> = { echo: 'round trips', send: 'messages', request: 'requests' };

/** One message on its way: when it was meant to start, when it did, and whether it counts (after the warmup). */
interface Op {
  intended: number;
  sentAt: number;
  measured: boolean;
}

/** How a run ended: the messages asked for are done, the deadline passed, or a failure. */
export type Outcome = { ok: true } | { ok: false; error: unknown };

/** The counts and histograms every connection of a run adds to, and the run's end. */
export class Tally {
  finished = false;
  /** performance.now() at the end of the warmup: messages meant to start from then on are measured. */
  measureStart = 0;
  /** Measured messages to start in all (--count), else Infinity. */
  limit = Infinity;
  startedMeasured = 0;
  doneMeasured = 0;
  inFlight = 0;
  lastDoneAt = performance.now();
  /** Open loop: measured sends that started over LATE_MS late with a free window slot (the generator was behind). */
  lateGenerator = 0;
  /** Open loop: measured sends that started over LATE_MS late because the window was full (the server was behind). */
  lateWindow = 0;
  /** Connections whose first message got its answer (echo, request): a close before that hints at another framing. */
  firstSentAt: number | undefined;
  answered = 0;
  readonly #end: (o: Outcome) => void;
  readonly outcome: Promise<Outcome>;

  constructor(
    readonly corrected: RecordableHistogram,
    readonly uncorrected: RecordableHistogram,
    /** Measured messages completed by each connection (the spread between connections). */
    readonly perConnection: number[],
  ) {
    let end!: (o: Outcome) => void;
    this.outcome = new Promise<Outcome>((resolve) => (end = resolve));
    this.#end = end;
  }

  finish(o: Outcome): void {
    if (this.finished) return;
    this.finished = true;
    this.#end(o);
  }

  complete(op: Op, now: number, connection: number): void {
    this.inFlight--;
    this.lastDoneAt = now;
    this.answered++;
    if (!op.measured || this.finished) return;
    recordMs(this.corrected, now - op.intended);
    recordMs(this.uncorrected, now - op.sentAt);
    this.doneMeasured++;
    this.perConnection[connection]!++;
    if (this.doneMeasured >= this.limit) this.finish({ ok: true });
  }
}

export interface Connection {
  ch: Channel;
  /** request mode: the RequestChannel over ch. */
  rc?: RequestChannel;
}

export interface DriveOptions {
  mode: Mode;
  /** This connection's index in the tally's perConnection. */
  index: number;
  schedule: Schedule;
  window: number;
  body: Buffer;
  /** A send (sending: true) or a receive failed on this connection. */
  failed: (e: unknown, sending: boolean) => void;
  /** The peer sent something that is not an answer to us (echo mode): why the run must stop. */
  unexpected: () => Error;
}

/** One connection under way. */
export interface Driven {
  /**
   * Open loop: the measured messages meant to start over LATE_MS before `end` that had not started
   * by then (the window stayed full): as late as a send can be, and in no histogram.
   */
  neverStarted(end: number): number;
}

/** Starts the sender and the reader of one connection; they stop when the tally is finished. */
export function drive(conn: Connection, tally: Tally, o: DriveOptions): Driven {
  const { ch, rc } = conn;
  /** Echo: the messages in flight, oldest first (echoes come back in order). */
  const fifo: Op[] = [];
  /** Messages started and not yet done. */
  let pending = 0;
  /** The next message's number on this connection (its place in the schedule). */
  let k = 0;
  /** The last start waited for a window slot (an open loop's late send is then the server's doing). */
  let waitedForSlot = false;
  /** Open loop: the timer of the next message's intended time, while one is set. */
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** Messages the send queue refused while full (maxQueuedBytes), to start again, oldest first. */
  const refused: Op[] = [];

  const done = (op: Op): void => {
    pending--;
    tally.complete(op, performance.now(), o.index);
    pump();
  };

  const start = (op: Op): void => {
    pending++;
    if (o.mode === 'request') {
      rc!.request(o.body).then(
        () => done(op),
        (e: unknown) => o.failed(e, false),
      );
      return;
    }
    if (o.mode === 'echo') fifo.push(op); // the reader completes it when its echo comes
    // Send mode: done once the message has left the send queue (sends resolve in order): the
    // sender's drain.
    ch.send(o.body).then(o.mode === 'send' ? () => done(op) : undefined, (e: unknown) => {
      // A full queue while earlier messages still drain: start this one again once one of them is
      // done (still charged from its intended time).
      if (codeOf(e) !== 'ERR_SEND_QUEUE_FULL' || pending < 2) return o.failed(e, true);
      const at = fifo.indexOf(op); // no echo can come for it: it never left
      if (at >= 0) fifo.splice(at, 1);
      pending--;
      refused.push(op);
    });
  };

  /**
   * The sender: starts messages while the window has a free slot and the schedule says they are
   * due. Called at the start, whenever a message is done, and at an open loop's next intended time,
   * so a free slot is taken at once, without a promise to wake a waiting loop.
   */
  const send = (): void => {
    while (!tally.finished) {
      if (pending >= o.window || (refused.length > 0 && pending > 0)) {
        waitedForSlot = true;
        return;
      }
      const again = refused.shift();
      if (again !== undefined) {
        start(again);
        continue;
      }
      const now = performance.now();
      const intended = o.schedule.intended(k, now);
      if (intended > now) {
        // Unref'd: the connections keep the process alive, not a wait.
        timer ??= setTimeout(() => {
          timer = undefined;
          pump();
        }, intended - now).unref();
        return;
      }
      const measured = intended >= tally.measureStart;
      if (measured) {
        if (tally.startedMeasured >= tally.limit) return;
        tally.startedMeasured++;
        if (o.schedule.open && now - intended > LATE_MS) {
          if (waitedForSlot) tally.lateWindow++;
          else tally.lateGenerator++;
        }
      }
      waitedForSlot = false;
      k++;
      const op: Op = { intended, sentAt: now, measured };
      tally.inFlight++;
      tally.firstSentAt ??= now;
      start(op);
    }
  };
  const pump = (): void => {
    try {
      send();
    } catch (e) {
      o.failed(e, true);
    }
  };

  const reader = async (): Promise<void> => {
    while (!tally.finished) {
      // What is already buffered is taken without a promise each: the echoes of one read complete
      // together, so the sends they make room for leave together too.
      const message = ch.tryRecv() ?? (await ch.recv());
      ch.release(message); // its memory may hold a later echo
      if (o.mode === 'send') continue; // a server that answers one-way messages: read and drop
      const op = fifo.shift();
      if (op === undefined) throw o.unexpected();
      done(op);
    }
  };

  pump();
  if (o.mode !== 'request') reader().catch((e: unknown) => o.failed(e, false));
  return {
    neverStarted: (end) =>
      Math.max(0, o.schedule.dueBefore(end - LATE_MS) - Math.max(k, o.schedule.dueBefore(tally.measureStart))),
  };
}
