/**
 * The request/reply envelope: what a RequestChannel puts at the front of every message body, so it
 * works over any framing (docs/request-reply.md has the bytes and golden vectors). Pure functions:
 * no socket, no timer. Every decode error is a ProtocolError (ERR_PROTOCOL) made without a stack
 * trace, since a peer can send them by the million.
 *
 *   oneway   00 payload
 *   request  01 id payload
 *   reply    02 id payload
 *   error    03 id codeLength(u8, 0..64) code message(UTF-8, 0..1024 bytes)
 *   ping     04                     (exactly one byte)
 *   pong     05                     (exactly one byte)
 *
 * `id` is an unsigned LEB128 varint in its shortest form, 1 to 8 bytes, 0 to 2^53 - 1.
 */
import { ProtocolError, withoutStack } from '../errors.js';

export const ONEWAY = 0x00;
export const REQUEST = 0x01;
export const REPLY = 0x02;
export const ERROR = 0x03;
export const PING = 0x04;
export const PONG = 0x05;

/** Largest id (2^53 - 1): a requester counting up from 1 never reuses one. */
export const MAX_ID = Number.MAX_SAFE_INTEGER;
/** Longest error message on the wire, in UTF-8 bytes: a sender cuts longer ones, a receiver refuses them. */
export const MAX_ERROR_MESSAGE = 1024;
/** Longest error code on the wire, in bytes: a sender leaves longer ones out, a receiver refuses them. */
export const MAX_ERROR_CODE = 64;

/** The kinds by name, as decodeEnvelope() reports them. */
export type EnvelopeKind = 'oneway' | 'request' | 'reply' | 'error' | 'ping' | 'pong';

/** One decoded envelope. `payload` is a view into the body (no copy). */
export type Envelope =
  | { kind: 'oneway'; payload: Buffer }
  | { kind: 'request'; id: number; payload: Buffer }
  | { kind: 'reply'; id: number; payload: Buffer }
  | { kind: 'error'; id: number; code: string | undefined; message: string }
  | { kind: 'ping' }
  | { kind: 'pong' };

/** What encodeEnvelope() takes: an Envelope, payloads as bytes or strings (UTF-8). */
export type EnvelopeInput =
  | { kind: 'oneway'; payload: Uint8Array | string }
  | { kind: 'request' | 'reply'; id: number; payload: Uint8Array | string }
  | { kind: 'error'; id: number; code?: string | undefined; message: string }
  | { kind: 'ping' | 'pong' };

/** A ProtocolError without a stack trace (a hostile peer can cause one per message). */
export function envelopeError(message: string): ProtocolError {
  return withoutStack(() => new ProtocolError(message));
}

/** Bytes the varint of `id` takes (ids are integers 0..MAX_ID). */
export function idLength(id: number): number {
  if (id < 0x80) return 1;
  if (id < 0x4000) return 2;
  if (id < 0x20_0000) return 3;
  if (id < 0x1000_0000) return 4;
  let n = 4;
  for (let rest = Math.floor(id / 0x1000_0000); rest > 0; rest = Math.floor(rest / 0x80)) n++;
  return n;
}

/** Write the varint of `id` at `offset`; returns the offset after it. */
export function writeId(buf: Buffer, offset: number, id: number): number {
  while (id >= 0x80) {
    buf[offset++] = (id % 0x80) | 0x80;
    id = Math.floor(id / 0x80);
  }
  buf[offset++] = id;
  return offset;
}

/**
 * Read the varint id at `offset` (the end is `offset + idLength(id)`, as only the shortest form is
 * accepted). Throws a ProtocolError for a truncated, over-long, non-shortest or too large id.
 */
export function readId(buf: Buffer, offset: number): number {
  const first = buf[offset];
  if (first === undefined) throw envelopeError('truncated envelope: the id is missing');
  if (first < 0x80) return first;
  let id = first & 0x7f;
  let scale = 0x80;
  for (let i = 1; i < 8; i++) {
    const b = buf[offset + i];
    if (b === undefined) throw envelopeError('truncated envelope: the id ends early');
    if (i === 7 && b > 0x0f) throw envelopeError('envelope id above 2^53 - 1');
    id += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (b === 0) throw envelopeError('envelope id not in its shortest form');
      return id;
    }
    scale *= 0x80;
  }
  /* c8 ignore next */
  throw envelopeError('envelope id above 2^53 - 1');
}

function checkId(id: unknown): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_ID) {
    throw new RangeError(`Expected an envelope id to be an integer from 0 to ${MAX_ID}, got ${String(id)}`);
  }
  return id;
}

/** `kind id payload`, or `00 payload` for a one-way message (id < 0): one allocation, the payload copied once. */
export function encodeMessage(kind: number, id: number, payload: Uint8Array | string): Buffer {
  const head = id < 0 ? 1 : id < 0x80 ? 2 : 1 + idLength(id);
  if (typeof payload === 'string') {
    const buf = Buffer.allocUnsafe(head + Buffer.byteLength(payload, 'utf8'));
    buf.write(payload, head, 'utf8');
    return writeHead(buf, kind, id);
  }
  const buf = Buffer.allocUnsafe(head + payload.byteLength);
  if (payload.byteLength > 0) buf.set(payload, head);
  return writeHead(buf, kind, id);
}

function writeHead(buf: Buffer, kind: number, id: number): Buffer {
  buf[0] = kind;
  if (id >= 0x80) writeId(buf, 1, id);
  else if (id >= 0) buf[1] = id;
  return buf;
}

/** The first `max` bytes of `text` as UTF-8, cut at a character boundary. */
export function utf8Prefix(text: string, max: number): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // do not split a character
  return bytes.subarray(0, end);
}

/** `03 id codeLength code message`: the message cut to MAX_ERROR_MESSAGE bytes, a code longer than MAX_ERROR_CODE left out. */
export function encodeError(id: number, code: string | undefined, message: string): Buffer {
  let codeBytes = code === undefined ? undefined : Buffer.from(code, 'utf8');
  if (codeBytes !== undefined && codeBytes.length > MAX_ERROR_CODE) codeBytes = undefined;
  const text = utf8Prefix(message, MAX_ERROR_MESSAGE);
  const codeLen = codeBytes?.length ?? 0;
  const at = 1 + idLength(id);
  const buf = Buffer.allocUnsafe(at + 1 + codeLen + text.length);
  buf[0] = ERROR;
  writeId(buf, 1, id);
  buf[at] = codeLen;
  if (codeBytes !== undefined) codeBytes.copy(buf, at + 1);
  text.copy(buf, at + 1 + codeLen);
  return buf;
}

/** The code and message of an error envelope whose id ends at `at`; throws a ProtocolError when they break the limits. */
export function readError(body: Buffer, at: number): { code: string | undefined; message: string } {
  const codeLen = body[at];
  if (codeLen === undefined) throw envelopeError('truncated error envelope: the code length is missing');
  if (codeLen > MAX_ERROR_CODE) throw envelopeError(`error envelope code of ${codeLen} bytes, above ${MAX_ERROR_CODE}`);
  const textAt = at + 1 + codeLen;
  if (textAt > body.length) throw envelopeError('truncated error envelope: the code ends early');
  const textLen = body.length - textAt;
  if (textLen > MAX_ERROR_MESSAGE)
    throw envelopeError(`error envelope message of ${textLen} bytes, above ${MAX_ERROR_MESSAGE}`);
  return {
    code: codeLen === 0 ? undefined : body.toString('utf8', at + 1, textAt),
    message: body.toString('utf8', textAt),
  };
}

/** Encode one envelope (for tests, tools and other implementations; RequestChannel uses the functions above). */
export function encodeEnvelope(e: EnvelopeInput): Buffer {
  switch (e.kind) {
    case 'oneway':
      return encodeMessage(ONEWAY, -1, e.payload);
    case 'request':
      return encodeMessage(REQUEST, checkId(e.id), e.payload);
    case 'reply':
      return encodeMessage(REPLY, checkId(e.id), e.payload);
    case 'error':
      return encodeError(checkId(e.id), e.code, e.message);
    case 'ping':
      return Buffer.from([PING]);
    case 'pong':
      return Buffer.from([PONG]);
    default:
      throw new TypeError(`Expected an envelope kind, got ${String((e as { kind?: unknown }).kind)}`);
  }
}

/**
 * Decode one message body. Throws a ProtocolError (ERR_PROTOCOL) for an empty body, an unknown kind,
 * a bad id, a ping or pong with extra bytes, or an error envelope over its limits.
 */
export function decodeEnvelope(body: Buffer): Envelope {
  const kind = body[0];
  switch (kind) {
    case ONEWAY:
      return { kind: 'oneway', payload: body.subarray(1) };
    case REQUEST:
    case REPLY: {
      const id = readId(body, 1);
      const payload = body.subarray(1 + idLength(id));
      return kind === REQUEST ? { kind: 'request', id, payload } : { kind: 'reply', id, payload };
    }
    case ERROR: {
      const id = readId(body, 1);
      return { kind: 'error', id, ...readError(body, 1 + idLength(id)) };
    }
    case PING:
    case PONG:
      if (body.length !== 1)
        throw envelopeError(`${kind === PING ? 'ping' : 'pong'} envelope of ${body.length} bytes, expected 1`);
      return kind === PING ? { kind: 'ping' } : { kind: 'pong' };
    case undefined:
      throw envelopeError('empty message: no envelope');
    default:
      throw envelopeError(`unknown envelope kind 0x${kind.toString(16).padStart(2, '0')}`);
  }
}
