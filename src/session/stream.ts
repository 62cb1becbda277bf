/**
 * SessionStream: a resumable byte stream, the Duplex a Channel wraps when `resume` is on. It
 * runs over one transport connection at a time (TCP, TLS, a Unix socket), replaced when one
 * drops: each side keeps a copy of what it sent until the peer acknowledges it, and after a
 * reconnect each side says how much it received and the other sends the rest, so every byte
 * arrives once and in order, and every message above with it. Offsets count bytes per direction;
 * nothing is added per message. See docs/sessions.md for the wire format and the guarantees.
 */
import { Duplex } from 'node:stream';
import type { PeerCertificate } from 'node:tls';
import { ChannelClosedError, ProtocolError, SessionLostError, TimeoutError } from '../errors.js';
import { noop } from '../util.js';
import { readFrom, discardReads, type ReadSource, type ReadTarget } from '../core/reader.js';
import { writesDoneAtCallback } from '../core/writer.js';
import { PendingBytes } from './pending.js';
import { ReplayBuffer } from './replay.js';
import {
  ABORT_SEGMENT,
  DATA_HEADER_LENGTH,
  FIN_SEGMENT,
  MAX_OFFSET,
  PING_SEGMENT,
  SegmentParser,
  encodeAck,
  encodeDataHeader,
  type Hello,
  type SegmentSink,
} from './wire.js';

/** Delivered bytes are acknowledged at the latest this long after they arrive (at once when a quarter window is due). */
export const ACK_DELAY = 50;
/** Heartbeat ticks (each heartbeat / 2) without a byte received after which a connection is dead. */
const DEAD_TICKS = 4;

/**
 * The transport holds a write's worth of bytes the kernel has not taken: stop writing until
 * 'drain'. Not `writableNeedDrain`: that stays set from a write that returned false (any piece
 * over 16 KiB) until the 'drain' emitted a tick later, even when the kernel took every byte at
 * once, so a sender whose loop never yields (sends that resolve at once) wrote nothing more until
 * the window was full. A write that leaves this true returned false, so 'drain' follows.
 */
function backedUp(transport: Duplex): boolean {
  return transport.writableLength >= transport.writableHighWaterMark;
}

/** What a session's side needs from the Channel above it: its message counts, for acks and SessionLostError. */
export interface MessageCounts {
  sent(): number;
  received(): number;
}

/** The side that made the stream: the connecting side reconnects, the listening side keeps it `keep` ms. */
export interface SessionOwner {
  /** The transport was lost (the stream lives on); `error` says why. */
  detached(stream: SessionStream, error: Error): void;
  /** The stream ended (closed, destroyed, lost). */
  ended(stream: SessionStream): void;
}

/**
 * Bytes held in replay buffers by all sessions of a listener, against `replayBudget`. While at
 * most half of it is used, any session may hold more; past half, only a session holding less
 * than its share of that half (half the budget / sessions) may, so a few sessions that never
 * acknowledge cannot stall the sends of every other session, and the sum stays within the budget
 * (each session may pass it by the one write it was given before it had to wait).
 */
export class ReplayBudget {
  used = 0;
  readonly #limit: number;
  /** Sessions sharing the budget. */
  #members = 0;
  readonly #waiting = new Set<() => void>();
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Whether a session holding `held` bytes may take more. */
  allows(held: number): boolean {
    const half = this.#limit / 2;
    return this.used <= half || held < half / Math.max(1, this.#members);
  }

  join(): void {
    this.#members++;
  }

  /** A session ended (its bytes already released): the others' shares grow. */
  leave(): void {
    this.#members--;
    this.#wake();
  }

  add(n: number): void {
    this.used += n;
  }

  release(n: number): void {
    this.used -= n;
    if (n > 0 && this.used <= this.#limit / 2) this.#wake();
  }

  #wake(): void {
    if (this.#waiting.size === 0) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const wake of waiting) wake();
  }

  wait(wake: () => void): void {
    this.#waiting.add(wake);
  }

  cancel(wake: () => void): void {
    this.#waiting.delete(wake);
  }
}

/** Counters of a session (`sessionStats(channel)`). */
export interface SessionStats {
  /** Times a connection was replaced and the session went on. */
  resumes: number;
  /** Bytes sent again after a reconnect (they had been sent on a connection that dropped). */
  bytesReplayed: number;
  /** Messages the peer had not received when a connection resumed: they were sent (again) on the new one. */
  messagesReplayed: number;
  /** Bytes sent that the peer has not acknowledged yet (the replay buffer). */
  unacknowledgedBytes: number;
  /** True while a transport connection is attached. */
  connected: boolean;
}

export interface SessionStreamOptions {
  token: Buffer;
  window: number;
  peerWindow: number;
  heartbeat: number;
  owner: SessionOwner;
  budget?: ReplayBudget;
}

export class SessionStream extends Duplex {
  /** The session's 128-bit token (a bearer secret: whoever holds it may resume the session). */
  readonly token: Buffer;
  /** The Channel above's message counts, once it is made (it sets them): they go into acks and SessionLostError. */
  messageCounts: MessageCounts | undefined;
  /** The first transport's peer address, for Channel.ip/port. */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** The listening side's record of the first connection's peer certificate (its SHA-256 fingerprint), if any. */
  identity: string | undefined;
  /** TLS: the first connection's peer certificate (every resume has the same one on a mutual-TLS listener). */
  peerCertificate: PeerCertificate | undefined;

  readonly #window: number;
  #sendWindow: number;
  readonly #heartbeat: number;
  readonly #owner: SessionOwner;
  readonly #budget: ReplayBudget | undefined;

  // Sending. Offsets count bytes of this direction since the session began; the FIN takes one.
  readonly #replay: ReplayBuffer;
  /** Offset after the last byte written on the current transport (or the one before). */
  #transmitted = 0;
  /** Highest offset ever transmitted, to count what a resume sends again. */
  #transmittedMax = 0;
  /** The peer's cumulative acknowledgement, and its Channel's decoded message count with it. */
  #acked = 0;
  #ackedMessages = 0;
  /** end() was called: the FIN is due after the data. */
  #finQueued = false;
  /**
   * The write being copied into the replay buffer, from `#writingAt` on, while it has no room for
   * all of it: the caller's buffer is ours until its callback, which runs once the last byte is in.
   */
  #writing: Buffer | null = null;
  #writingAt = 0;
  #writeDone: ((error?: Error | null) => void) | null = null;
  #heldFinal: ((error?: Error | null) => void) | null = null;

  // Receiving. What arrives goes to the Channel above through `reader` (its ReadTarget), not
  // through this Duplex's readable side, which only carries the end: large bodies are read from a
  // plain socket straight into the Channel's memory; what it does not take waits in #pending.
  /** The Channel's read target, once it attached. */
  #consumer: ReadTarget | null = null;
  /** The Channel paused reading (it holds what it read ahead): what arrives waits in #pending. */
  #consumerPaused = false;
  readonly #pending = new PendingBytes();
  /** #pending is being handed over (the Channel may resume or pause from inside). */
  #delivering = false;
  #endPushed = false;
  /** Offset after the last byte received (the FIN included). */
  #received = 0;
  #finReceived = false;
  /** The last acknowledgement sent. */
  #ackSent = 0;
  #ackTimer: NodeJS.Timeout | undefined;
  /** A PING arrived in the chunk being read: one ACK answers it (and any others in the chunk). */
  #pinged = false;
  /** An ACK was due while the transport's buffer was full (its peer not reading): it goes out on 'drain'. */
  #ackOwed = false;

  // The transport.
  #transport: Duplex | null = null;
  #parser: SegmentParser | null = null;
  /** A segment header read on its own, after a large DATA segment, so the DATA after it lands in the body too. */
  readonly #headerBytes = Buffer.allocUnsafe(DATA_HEADER_LENGTH);
  /** A large DATA segment read straight into the body ended: the next read may take just the header. */
  #headerReadDue = false;
  /** The last space given was #headerBytes. */
  #headerRead = false;
  /** Stops reading the transport into #transportTarget. */
  #stopReading: (() => void) | null = null;
  #tick: NodeJS.Timeout | undefined;
  #heard = false;
  #silentTicks = 0;
  #ended = false;

  readonly #stats = { resumes: 0, bytesReplayed: 0, messagesReplayed: 0 };
  #attachedOnce = false;

  constructor(options: SessionStreamOptions, first: { remoteAddress?: string; remotePort?: number }) {
    // Half-open is off, as for a socket: once the peer's FIN is read, this side ends too.
    super({ allowHalfOpen: false, decodeStrings: true });
    writesDoneAtCallback(this); // a write calls back once copied into the replay buffer
    this.token = options.token;
    this.#window = options.window;
    this.#replay = new ReplayBuffer(options.window);
    this.#sendWindow = Math.min(options.window, options.peerWindow);
    this.#heartbeat = options.heartbeat;
    this.#owner = options.owner;
    this.#budget = options.budget;
    this.#budget?.join();
    this.remoteAddress = first.remoteAddress;
    this.remotePort = first.remotePort;
  }

  get stats(): SessionStats {
    return {
      ...this.#stats,
      unacknowledgedBytes: this.#dataEnd() - Math.min(this.#acked, this.#dataEnd()),
      connected: this.#transport !== null,
    };
  }

  get attached(): boolean {
    return this.#transport !== null;
  }

  /** The hello this side sends on a new connection of this session. */
  hello(): Hello {
    return {
      token: this.token,
      received: this.#received,
      messages: this.messageCounts?.received() ?? 0,
      window: this.#window,
    };
  }

  /** Offset after the last data byte accepted (the FIN excluded). */
  #dataEnd(): number {
    return this.#replay.end;
  }

  /** Offset after everything accepted, the FIN included once end() was called. */
  #writtenEnd(): number {
    return this.#replay.end + (this.#finQueued ? 1 : 0);
  }

  /** Bytes the Channel above has taken: what is acknowledged, so a slow reader holds at most a window. */
  #delivered(): number {
    return this.#received - this.#pending.length;
  }

  /** The Channel's read source: what arrives goes to its target, in order, while it reads. */
  readonly reader: ReadSource & { directBytes: number } = {
    attach: (target) => {
      this.#consumer = target;
      this.#deliverPending();
    },
    directBytes: 0,
  };

  /** The Channel stops reading (it holds what it read ahead): what arrives waits, unacknowledged. */
  override pause(): this {
    this.#consumerPaused = true;
    return super.pause();
  }

  override resume(): this {
    this.#consumerPaused = false;
    super.resume();
    this.#deliverPending();
    return this;
  }

  /** Whether bytes that arrive now may go straight to the Channel. */
  #consumerReading(): boolean {
    return this.#consumer !== null && !this.#consumerPaused && this.#pending.length === 0;
  }

  #deliver(bytes: Buffer): void {
    if (this.#consumerReading()) this.#consumer!.data(bytes);
    else this.#pending.push(bytes);
  }

  /** Hand over what waits, while the Channel reads; then the end, once everything before it is taken. */
  #deliverPending(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      while (this.#pending.length > 0 && this.#consumer !== null && !this.#consumerPaused) {
        this.#consumer.data(this.#pending.shift()!);
      }
    } finally {
      this.#delivering = false;
    }
    this.#endIfDelivered();
    this.#ackIfDue();
  }

  #endIfDelivered(): void {
    if (this.#finReceived && this.#pending.length === 0 && !this.#endPushed) {
      this.#endPushed = true;
      this.push(null);
    }
  }

  // ---------------------------------------------------------------- transport

  /**
   * Go on over `transport`, whose hello exchange is done: `peer` is the other side's hello,
   * `rest` what came after it. `hello` (the listening side's answer) is written first. Throws
   * ProtocolError (and attaches nothing) when the peer's offsets do not fit this session.
   */
  attach(transport: Duplex, peer: Hello, rest: Buffer, hello?: Buffer): void {
    if (this.destroyed) throw new ChannelClosedError('session is closed');
    if (peer.received < this.#acked || peer.received > this.#transmittedMax) {
      throw new ProtocolError(
        `session resume claims ${peer.received} bytes received; ${this.#acked} were acknowledged and ${this.#transmittedMax} sent`,
      );
    }
    if (peer.messages < this.#ackedMessages) {
      throw new ProtocolError(
        `session resume claims ${peer.messages} messages received; ${this.#ackedMessages} were acknowledged`,
      );
    }
    if (this.#transport !== null) this.#dropTransport(); // superseded: the newest connection wins
    if (this.#attachedOnce) {
      this.#stats.resumes++;
      this.#stats.bytesReplayed += Math.max(0, Math.min(this.#transmittedMax, this.#dataEnd()) - peer.received);
      this.#stats.messagesReplayed += Math.max(0, (this.messageCounts?.sent() ?? 0) - peer.messages);
    }
    this.#attachedOnce = true;
    this.#sendWindow = Math.min(this.#window, peer.window);
    this.#transmitted = peer.received;
    this.#replay.seek(Math.min(peer.received, this.#dataEnd()));
    this.#transport = transport;
    const parser = (this.#parser = new SegmentParser());
    this.#headerReadDue = false;
    this.#heard = true;
    this.#silentTicks = 0;
    transport.on('drain', this.#pump);
    transport.on('error', this.#onTransportError);
    transport.on('close', this.#onTransportClose);
    transport.on('end', this.#onTransportEnd);
    this.#tick = setInterval(this.#onTick, Math.max(5, this.#heartbeat >>> 1));
    this.#tick.unref();
    if (hello !== undefined) transport.write(hello);
    this.#sendAck();
    if (rest.length > 0) this.#onTransportData(rest);
    // Then what the transport reads (what came after `rest` first): unless `rest` dropped it.
    if (this.#parser !== parser) return;
    const stop = readFrom(transport, this.#transportTarget);
    if (this.#parser !== parser) stop();
    else {
      this.#stopReading = stop;
      this.#pump();
    }
  }

  /** The transport's reads: parsed as segments; a DATA segment's bytes may be read straight into the Channel's body. */
  readonly #transportTarget: ReadTarget = {
    data: (chunk) => this.#onTransportData(chunk),
    space: (min) => this.#dataSpace(min),
    filled: (n) => this.#dataFilled(n),
  };

  /**
   * Room to read the DATA segment in progress straight into: the unfilled rest of the Channel's
   * body in progress, cut to what the segment and the window still allow (so what lands there was
   * checked as the sink checks DATA bytes), when at least `min` bytes of the body are due and the
   * segment is at least `min` long. Between segments, after such a segment, the next header alone
   * (#headerBytes), so the DATA after it is read straight in too instead of with the header into a
   * slab and copied. Only segments of `min` bytes and up earn reads of their own: a peer sending
   * small segments gets one slab read for many, never a read per segment.
   */
  #dataSpace(min: number): Buffer | null {
    this.#headerRead = false;
    const parser = this.#parser;
    if (parser === null || this.#finReceived || !this.#consumerReading()) return null;
    const dataDue = parser.dataDue;
    if (dataDue === 0 ? !this.#headerReadDue : parser.dataLength < min) return null;
    const space = this.#consumer!.space(min);
    if (space === null) return null;
    if (dataDue === 0) {
      this.#headerReadDue = false;
      this.#headerRead = true;
      return this.#headerBytes;
    }
    const due = Math.min(dataDue, this.#window - (this.#received - this.#ackSent), MAX_OFFSET - this.#received);
    if (due <= 0) return null; // past the window: the sink's check throws on these bytes
    return space.length > due ? space.subarray(0, due) : space;
  }

  /** `n` bytes were read into the space #dataSpace() gave: the DATA segment's, or a header (parsed from a copy). */
  #dataFilled(n: number): void {
    if (this.#headerRead) {
      this.#headerRead = false;
      this.#onTransportData(Buffer.from(this.#headerBytes.subarray(0, n)));
      return;
    }
    this.#heard = true;
    const parser = this.#parser!;
    parser.dataFilled(n);
    this.#received += n;
    this.reader.directBytes += n;
    this.#consumer!.filled(n);
    if (parser.dataDue === 0) this.#headerReadDue = true;
    this.#ackIfDue();
  }

  readonly #onTransportData = (chunk: Buffer): void => {
    const parser = this.#parser;
    if (parser === null) return;
    this.#heard = true;
    try {
      parser.push(chunk, this.#sink);
    } catch (error) {
      // Bad bytes from the peer: the session ends with that error, as a Channel does on a bad frame.
      parser.stop();
      this.destroy(error as Error);
      return;
    }
    if (this.#parser !== parser) return;
    if (this.#pinged) {
      this.#pinged = false;
      this.#sendAck();
    } else this.#ackIfDue();
  };

  readonly #onTransportError = (error: Error): void => this.#lost(error);
  /**
   * A clean end of the transport. The peer ends its connection cleanly only once its session is
   * over: it had every byte and our FIN, so our FIN counts as acknowledged even if its last ACK
   * did not come first. Any other end is a dropped connection.
   */
  readonly #onTransportEnd = (): void => {
    if (this.#finReceived && this.#finQueued && this.#transmitted === this.#writtenEnd()) {
      // The session is over: no reconnection; the stream finishes and closes.
      this.#dropTransport();
      this.#acked = this.#writtenEnd();
      this.#releaseHeld();
      return;
    }
    this.#lost(new ChannelClosedError('session connection ended'));
  };
  readonly #onTransportClose = (): void => this.#lost(new ChannelClosedError('session connection closed'));

  /** The transport is gone (error, close, dead): the session lives on, detached, and its owner is told. */
  #lost(error: Error): void {
    if (this.#transport === null) return;
    this.#dropTransport();
    if (!this.destroyed) this.#owner.detached(this, error);
  }

  #dropTransport(): void {
    const transport = this.#transport!;
    this.#release(transport);
    transport.destroy();
  }

  /** Let go of `transport`: no more of its events reach the session (its late errors are swallowed). */
  #release(transport: Duplex): void {
    this.#transport = null;
    this.#parser?.stop();
    this.#parser = null;
    this.#stopReading?.();
    this.#stopReading = null;
    clearInterval(this.#tick);
    transport.removeListener('drain', this.#pump);
    transport.removeListener('error', this.#onTransportError);
    transport.removeListener('close', this.#onTransportClose);
    transport.removeListener('end', this.#onTransportEnd);
    transport.on('error', noop);
  }

  /** Every heartbeat / 2: probe a silent connection; drop it once silent for DEAD_TICKS ticks. */
  readonly #onTick = (): void => {
    const transport = this.#transport;
    if (transport === null) return;
    if (this.#heard) {
      this.#heard = false;
      this.#silentTicks = 0;
      return;
    }
    if (++this.#silentTicks >= DEAD_TICKS) {
      this.#lost(new TimeoutError(`session connection silent for ${2 * this.#heartbeat} ms (heartbeat)`));
      return;
    }
    transport.write(PING_SEGMENT);
  };

  // ---------------------------------------------------------------- receiving

  readonly #sink: SegmentSink = {
    data: (bytes) => {
      if (this.#finReceived) throw new ProtocolError('session data after the FIN');
      const received = this.#received + bytes.length;
      if (received - this.#ackSent > this.#window) {
        throw new ProtocolError(
          `peer sent ${received - this.#ackSent} bytes unacknowledged; the session window is ${this.#window}`,
        );
      }
      if (received > MAX_OFFSET) throw new ProtocolError('session offset overflow');
      this.#received = received;
      this.#deliver(bytes);
    },
    ack: (received, messages) => this.#onAck(received, messages),
    ping: () => {
      this.#pinged = true; // answered once per chunk read: a PING flood cannot make us write 13 bytes per byte
    },
    fin: () => {
      if (this.#finReceived) throw new ProtocolError('session FIN twice');
      this.#finReceived = true;
      this.#received++;
      this.#endIfDelivered();
      this.#sendAck();
    },
    abort: () => {
      this.#parser?.stop();
      this.destroy(new ChannelClosedError('the peer aborted the session'));
    },
  };

  override _read(): void {
    this.#ackIfDue();
  }

  /**
   * Acknowledge at once when a quarter window is delivered and unacknowledged, so the peer, which
   * may have the whole window in flight, gets room back while the rest is still arriving (an ACK
   * left to the end of the event loop's turn came only after a turn had read the whole window,
   * and the peer stalled on every window); else within ACK_DELAY. A quarter window per ACK at
   * most, whatever the peer sends: bytes delivered are what it pays for each one.
   */
  #ackIfDue(): void {
    const due = this.#delivered() - this.#ackSent;
    if (due <= 0 || this.#transport === null) return;
    if (due >= this.#sendWindow >>> 2) this.#sendAck();
    else this.#ackTimer ??= setTimeout(this.#onAckTimer, ACK_DELAY);
  }

  readonly #onAckTimer = (): void => {
    if (this.#delivered() > this.#ackSent) this.#sendAck();
    else this.#stopAckTimers();
  };

  #stopAckTimers(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  #sendAck(): void {
    const transport = this.#transport;
    if (transport === null) return;
    this.#stopAckTimers();
    if (backedUp(transport)) {
      // A peer that sends PINGs (or data) and does not read would make each answer wait in our
      // memory: one ACK, cumulative, answers them all once it reads.
      this.#ackOwed = true;
      return;
    }
    this.#ackOwed = false;
    const delivered = this.#delivered();
    this.#ackSent = Math.max(this.#ackSent, delivered);
    transport.write(encodeAck(delivered, this.messageCounts?.received() ?? 0));
  }

  #onAck(received: number, messages: number): void {
    if (received < this.#acked || received > this.#transmitted) {
      throw new ProtocolError(
        `session ack of ${received} bytes; ${this.#acked} were acknowledged and ${this.#transmitted} sent`,
      );
    }
    const sentMessages = this.messageCounts?.sent() ?? 0;
    if (messages < this.#ackedMessages || messages > sentMessages) {
      throw new ProtocolError(`session ack of ${messages} messages; ${sentMessages} were sent`);
    }
    this.#acked = received;
    this.#ackedMessages = messages;
    const freed = this.#replay.trim(Math.min(received, this.#dataEnd()));
    if (freed > 0) this.#budget?.release(freed);
    this.#releaseHeld();
    this.#pump();
  }

  // ---------------------------------------------------------------- sending

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#dataEnd() + chunk.length > MAX_OFFSET) {
      callback(new ProtocolError('session offset overflow'));
      return;
    }
    this.#writing = chunk;
    this.#writingAt = 0;
    this.#writeDone = callback;
    this.#takeWrite();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finQueued = true;
    this.#heldFinal = callback;
    this.#pump();
    this.#releaseHeld();
  }

  /**
   * Copy as much of the current write into the replay buffer as the window (and the listener's
   * replay budget) has room for, and transmit it; once all of it is in, the write calls back (the
   * caller's buffer is free). Runs again whenever acknowledgements make room.
   */
  #takeWrite(): void {
    const chunk = this.#writing;
    if (chunk === null) return;
    if (this.#budgetRefuses()) {
      this.#budget!.wait(this.#releaseHeld);
      return;
    }
    const taken = this.#replay.append(chunk, this.#writingAt, chunk.length);
    if (taken > 0) {
      this.#writingAt += taken;
      this.#budget?.add(taken);
      this.#pump();
    }
    if (this.#writingAt < chunk.length) return;
    const done = this.#writeDone!;
    this.#writing = this.#writeDone = null;
    done();
  }

  /** The listener's replay budget has no room for this session's next write. */
  #budgetRefuses(): boolean {
    return this.#budget !== undefined && !this.#budget.allows(this.#replay.bytes);
  }

  /** Room was made (acknowledgements, the budget): the write in progress and the end go on. */
  readonly #releaseHeld = (): void => {
    this.#budget?.cancel(this.#releaseHeld);
    this.#takeWrite();
    const final = this.#heldFinal;
    if (final !== null && this.#acked === this.#writtenEnd()) {
      this.#heldFinal = null;
      final();
    }
  };

  /** Transmit what the window allows on the current transport, then the FIN when it is due. */
  readonly #pump = (): void => {
    const transport = this.#transport;
    if (transport === null) return;
    if (this.#ackOwed) this.#sendAck();
    const dataEnd = this.#dataEnd();
    while (this.#transmitted < dataEnd && !backedUp(transport)) {
      const room = Math.min(dataEnd, this.#acked + this.#sendWindow) - this.#transmitted;
      const piece = this.#replay.next(room);
      if (piece === undefined) break;
      const delivered = this.#delivered();
      transport.cork();
      if (delivered > this.#ackSent) this.#sendAck(); // rides on the data
      transport.write(encodeDataHeader(piece.length));
      transport.write(piece);
      transport.uncork();
      this.#transmitted += piece.length;
    }
    if (this.#finQueued && this.#transmitted === dataEnd) {
      transport.write(FIN_SEGMENT);
      this.#transmitted++;
    }
    if (this.#transmitted > this.#transmittedMax) this.#transmittedMax = this.#transmitted;
  };

  // ---------------------------------------------------------------- ending

  /** End the session with SessionLostError: its peer is gone for good. */
  lose(reason: string): void {
    if (this.destroyed) return;
    if (this.#dataEnd() <= this.#acked && this.#finReceived && this.#heldFinal !== null) {
      // Both sides had closed and every byte was acknowledged: only the last ack of our FIN was lost.
      const final = this.#heldFinal;
      this.#heldFinal = null;
      final();
      return;
    }
    const sent = this.messageCounts?.sent() ?? 0;
    this.destroy(
      new SessionLostError(`session lost: ${reason}`, {
        unacknowledged: sent - this.#ackedMessages,
        firstUnacknowledged: this.#ackedMessages,
        unacknowledgedBytes: this.#dataEnd() - Math.min(this.#acked, this.#dataEnd()),
      }),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#stopAckTimers();
    const transport = this.#transport;
    if (transport !== null) {
      const clean = error === null && this.writableFinished && this.#finReceived;
      this.#dropTransportGently(transport, clean);
    }
    this.#budget?.cancel(this.#releaseHeld);
    const freed = this.#replay.clear();
    if (freed > 0) this.#budget?.release(freed);
    this.#budget?.leave();
    this.#writing = this.#writeDone = null;
    this.#heldFinal = null;
    if (!this.#ended) {
      this.#ended = true;
      this.#owner.ended(this);
    }
    callback(error);
  }

  /** The session ends: the last ack goes out (clean) or the peer is told to drop the session (ABORT). */
  #dropTransportGently(transport: Duplex, clean: boolean): void {
    this.#release(transport);
    if (!clean) transport.write(ABORT_SEGMENT);
    transport.end();
    discardReads(transport); // until the peer's end
    const timer = setTimeout(() => transport.destroy(), this.#heartbeat);
    timer.unref();
    transport.once('close', () => clearTimeout(timer));
  }
}
