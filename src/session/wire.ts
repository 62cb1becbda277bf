/**
 * The wire format of a resumable session (docs/sessions.md has it byte by byte, with golden
 * vectors): a hello in each direction on every transport connection, then segments. Pure: no
 * socket, no timer. Offsets count bytes per direction from the start of the session; the FIN
 * takes one offset, as in TCP, so its acknowledgement is counted like a byte's.
 */
import { ProtocolError } from '../errors.js';

/** "MCSR": msgchannel session, resumable. */
export const MAGIC = 0x4d435352;
export const VERSION = 1;
export const TOKEN_LENGTH = 16;
/** magic(4) version(1) token(16) received(6) messages(6) window(4) */
export const CLIENT_HELLO_LENGTH = 37;
/** magic(4) version(1) status(1) token(16) received(6) messages(6) window(4) */
export const SERVER_HELLO_LENGTH = 38;

/** The server's answer in its hello. */
export const Status = {
  /** The session is new (the token is its new one) or resumed. */
  OK: 0,
  /** No session with that token: never was, expired (`keep`), or the server restarted. */
  UNKNOWN: 1,
  /** The server holds as many sessions as it may (`maxSessions`). */
  BUSY: 2,
  /** The resume did not come with the peer certificate of the session's first connection. */
  IDENTITY: 3,
} as const;

// Segment types.
export const DATA = 1;
export const ACK = 2;
export const PING = 3;
export const FIN = 4;
export const ABORT = 5;
/** type(1) length(4) */
export const DATA_HEADER_LENGTH = 5;
/** type(1) received(6) messages(6) */
export const ACK_LENGTH = 13;

/** Largest offset or count on the wire (48 bits): a session ends with a ProtocolError before it wraps. */
export const MAX_OFFSET = 2 ** 48 - 1;
/**
 * Smallest window a hello may advertise: a tiny one would make the peer send (and acknowledge)
 * a few bytes at a time, a cheap way to make it work hard.
 */
export const MIN_WINDOW = 1024;
/** Largest window a hello may advertise. */
export const MAX_WINDOW = 2 ** 32 - 1;

export interface Hello {
  token: Buffer;
  /** Bytes (FIN included) of the peer's stream the sender of the hello has received. */
  received: number;
  /** Messages the sender's Channel decoded from those bytes. */
  messages: number;
  /** Most bytes the sender of the hello accepts unacknowledged. */
  window: number;
  /** Server hello only. */
  status?: number;
}

function writeCommon(out: Buffer, at: number, hello: Hello): void {
  hello.token.copy(out, at);
  out.writeUIntBE(hello.received, at + 16, 6);
  out.writeUIntBE(hello.messages, at + 22, 6);
  out.writeUInt32BE(hello.window, at + 28);
}

export function encodeClientHello(hello: Hello): Buffer {
  const out = Buffer.alloc(CLIENT_HELLO_LENGTH);
  out.writeUInt32BE(MAGIC, 0);
  out[4] = VERSION;
  writeCommon(out, 5, hello);
  return out;
}

export function encodeServerHello(hello: Hello & { status: number }): Buffer {
  const out = Buffer.alloc(SERVER_HELLO_LENGTH);
  out.writeUInt32BE(MAGIC, 0);
  out[4] = VERSION;
  out[5] = hello.status;
  writeCommon(out, 6, hello);
  return out;
}

function checkMagic(bytes: Buffer): void {
  if (bytes.readUInt32BE(0) !== MAGIC) throw new ProtocolError('not a msgchannel session hello', { offset: 0 });
  if (bytes[4] !== VERSION) throw new ProtocolError(`unsupported session version ${bytes[4]}`, { offset: 4 });
}

function readCommon(bytes: Buffer, at: number, checkWindow: boolean): Hello {
  const window = bytes.readUInt32BE(at + 28);
  if (checkWindow && window < MIN_WINDOW) {
    throw new ProtocolError(`session hello advertises a window of ${window} (at least ${MIN_WINDOW})`, {
      offset: at + 28,
    });
  }
  return {
    token: Buffer.from(bytes.subarray(at, at + TOKEN_LENGTH)),
    received: bytes.readUIntBE(at + 16, 6),
    messages: bytes.readUIntBE(at + 22, 6),
    window,
  };
}

export function decodeClientHello(bytes: Buffer): Hello {
  checkMagic(bytes);
  return readCommon(bytes, 5, true);
}

export function decodeServerHello(bytes: Buffer): Hello & { status: number } {
  checkMagic(bytes);
  const status = bytes[5]!;
  if (status > Status.IDENTITY) throw new ProtocolError(`unknown session status ${status}`, { offset: 5 });
  return { ...readCommon(bytes, 6, status === Status.OK), status }; // a refusal's window means nothing
}

/** A token of all zeros asks for a new session. */
export function isNewSessionToken(token: Buffer): boolean {
  for (let i = 0; i < token.length; i++) if (token[i] !== 0) return false;
  return true;
}

export function encodeDataHeader(length: number): Buffer {
  const out = Buffer.allocUnsafe(DATA_HEADER_LENGTH);
  out[0] = DATA;
  out.writeUInt32BE(length, 1);
  return out;
}

export function encodeAck(received: number, messages: number): Buffer {
  const out = Buffer.allocUnsafe(ACK_LENGTH);
  out[0] = ACK;
  out.writeUIntBE(received, 1, 6);
  out.writeUIntBE(messages, 7, 6);
  return out;
}

export const PING_SEGMENT: Buffer = Buffer.from([PING]);
export const FIN_SEGMENT: Buffer = Buffer.from([FIN]);
export const ABORT_SEGMENT: Buffer = Buffer.from([ABORT]);

/** What the segment parser reports. */
export interface SegmentSink {
  /** Bytes of a DATA segment, as they arrive (a view of the chunk: no copy). */
  data(bytes: Buffer): void;
  ack(received: number, messages: number): void;
  ping(): void;
  fin(): void;
  abort(): void;
}

// Parser states.
const TYPE = 0;
const HEADER = 1;
const BODY = 2;
const STOPPED = 3;

/**
 * The incremental segment parser of one transport connection. A DATA segment's bytes are passed
 * on as they arrive, so nothing is allocated per segment; fixed headers are gathered in 12 bytes.
 * Limits (how much data may arrive) are the sink's to check: it sees every byte first.
 */
export class SegmentParser {
  #state = TYPE;
  #type = 0;
  readonly #header = Buffer.alloc(12);
  #have = 0;
  #need = 0;
  /** DATA bytes still due of the current segment. */
  #remaining = 0;
  /** Length of the DATA segment being read, or of the last one. */
  #dataLength = 0;
  /** Bytes consumed, for error offsets. */
  offset = 0;

  /** DATA bytes still due of the segment being read (0 between segments): a direct read may take up to this many. */
  get dataDue(): number {
    return this.#state === BODY ? this.#remaining : 0;
  }

  /** Length of the DATA segment being read, or of the last one read (0 before any). */
  get dataLength(): number {
    return this.#dataLength;
  }

  /** `n` (at most dataDue) bytes of the DATA segment were read elsewhere (straight into the consumer's memory). */
  dataFilled(n: number): void {
    this.#remaining -= n;
    this.offset += n;
    if (this.#remaining === 0) this.#state = TYPE;
  }

  /** Parse nothing more (the connection was dropped by what a segment did). */
  stop(): void {
    this.#state = STOPPED;
  }

  push(chunk: Buffer, sink: SegmentSink): void {
    let i = 0;
    while (i < chunk.length && this.#state !== STOPPED) {
      if (this.#state === TYPE) {
        const type = chunk[i++]!;
        this.offset++;
        if (type === DATA || type === ACK) {
          this.#type = type;
          this.#state = HEADER;
          this.#have = 0;
          this.#need = type === DATA ? DATA_HEADER_LENGTH - 1 : ACK_LENGTH - 1;
        } else if (type === PING) sink.ping();
        else if (type === FIN) sink.fin();
        else if (type === ABORT) sink.abort();
        else throw new ProtocolError(`unknown session segment type ${type}`, { offset: this.offset - 1 });
      } else if (this.#state === HEADER) {
        const n = Math.min(this.#need - this.#have, chunk.length - i);
        chunk.copy(this.#header, this.#have, i, i + n);
        this.#have += n;
        i += n;
        this.offset += n;
        if (this.#have < this.#need) continue;
        if (this.#type === ACK) {
          this.#state = TYPE;
          sink.ack(this.#header.readUIntBE(0, 6), this.#header.readUIntBE(6, 6));
        } else {
          const length = this.#header.readUInt32BE(0);
          if (length === 0) throw new ProtocolError('empty session DATA segment', { offset: this.offset - 4 });
          this.#remaining = this.#dataLength = length;
          this.#state = BODY;
        }
      } else if (this.#state === BODY) {
        const n = Math.min(this.#remaining, chunk.length - i);
        const bytes = i === 0 && n === chunk.length ? chunk : chunk.subarray(i, i + n);
        this.#remaining -= n;
        i += n;
        this.offset += n;
        if (this.#remaining === 0) this.#state = TYPE;
        sink.data(bytes);
      }
    }
  }
}
