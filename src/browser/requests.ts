/**
 * The browser's RequestChannel: requests and replies matched by id, and ordered one-way messages,
 * over a browser Channel, in the request envelope of src/rpc/envelope.ts (docs/request-reply.md)
 * so a Node Server's onRequest, Connection.request() and broadcast() talk to it unchanged. It
 * shares the envelope's pure varint functions and limits; bodies are Uint8Array. It answers the
 * peer's heartbeat pings.
 */
import { ChannelClosedError, NoHandlerError, RemoteError, TimeoutError } from '../errors.js';
import {
  ERROR,
  MAX_ERROR_CODE,
  MAX_ERROR_MESSAGE,
  ONEWAY,
  PING,
  PONG,
  REPLY,
  REQUEST,
  envelopeError,
  idLength,
  readId,
  writeId,
} from '../rpc/envelope.js';
import type { Channel } from './channel.js';

/** A request handler's answer: bytes, or a string (sent as UTF-8). */
export type BrowserRequestReply = Uint8Array | string;

export interface BrowserRequestOptions {
  /** Answers the peer's requests; a throw reaches the peer as RemoteError. Without one the peer gets ERR_NO_HANDLER. */
  onRequest?: (body: Uint8Array) => BrowserRequestReply | PromiseLike<BrowserRequestReply>;
  /** Milliseconds a request waits for its reply by default. @default no limit */
  timeout?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `kind [id] payload` as one body. */
function envelope(kind: number, id: number, payload: Uint8Array | string): Uint8Array {
  const bytes = typeof payload === 'string' ? encoder.encode(payload) : payload;
  const head = id < 0 ? 1 : 1 + idLength(id);
  const out = new Uint8Array(head + bytes.length);
  out[0] = kind;
  if (id >= 0) writeId(out as never, 1, id);
  out.set(bytes, head);
  return out;
}

/** The first `max` bytes of `text` as UTF-8, cut at a character boundary. */
function utf8Prefix(text: string, max: number): Uint8Array {
  const bytes = encoder.encode(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

function errorEnvelope(id: number, error: unknown): Uint8Array {
  const message = error instanceof Error ? error.message : String(error);
  const rawCode = (error as { code?: unknown } | null)?.code;
  let code = typeof rawCode === 'string' ? encoder.encode(rawCode) : new Uint8Array(0);
  if (code.length > MAX_ERROR_CODE) code = new Uint8Array(0);
  const text = utf8Prefix(message, MAX_ERROR_MESSAGE);
  const at = 1 + idLength(id);
  const out = new Uint8Array(at + 1 + code.length + text.length);
  out[0] = ERROR;
  writeId(out as never, 1, id);
  out[at] = code.length;
  out.set(code, at + 1);
  out.set(text, at + 1 + code.length);
  return out;
}

interface Pending {
  resolve(body: Uint8Array): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class RequestChannel implements AsyncIterable<Uint8Array> {
  readonly channel: Channel;
  readonly #options: BrowserRequestOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  readonly #inbox: Uint8Array[] = [];
  readonly #waiters: { resolve(m: Uint8Array): void; reject(e: Error): void }[] = [];
  #error: Error | undefined;

  constructor(channel: Channel, options: BrowserRequestOptions = {}) {
    this.channel = channel;
    this.#options = options;
    void this.#read();
  }

  /** Send a request; resolves with the reply's body, rejects with RemoteError when the handler threw. */
  request(data: Uint8Array | string, options: { timeout?: number; signal?: AbortSignal } = {}): Promise<Uint8Array> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const id = this.#nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      const timeout = options.timeout ?? this.#options.timeout;
      const settle = (): void => {
        const p = this.#pending.get(id);
        if (p !== undefined) clearTimeout(p.timer);
        this.#pending.delete(id);
        options.signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        settle();
        reject(options.signal!.reason);
      };
      const timer =
        timeout === undefined
          ? undefined
          : setTimeout(() => {
              settle();
              reject(new TimeoutError(`request timed out after ${timeout} ms`));
            }, timeout);
      this.#pending.set(id, {
        resolve: (body) => {
          settle();
          resolve(body);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
        timer,
      });
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.channel.send(envelope(REQUEST, id, data)).catch((error: Error) => this.#pending.get(id)?.reject(error));
    });
  }

  /** Send a one-way message (the peer's onMessage, or its recv()). */
  send(data: Uint8Array | string): Promise<void> {
    return this.channel.send(envelope(ONEWAY, -1, data));
  }

  /** The next one-way message. */
  recv(): Promise<Uint8Array> {
    const m = this.#inbox.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      try {
        yield await this.recv();
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
    }
  }

  close(): Promise<void> {
    return this.channel.close();
  }

  async #read(): Promise<void> {
    try {
      for await (const body of this.channel) this.#handle(body);
      this.#end(new ChannelClosedError('peer closed the connection'));
    } catch (error) {
      this.#end(error as Error);
      this.channel.destroy(error as Error);
    }
  }

  #handle(body: Uint8Array): void {
    const kind = body[0];
    switch (kind) {
      case ONEWAY: {
        const payload = body.subarray(1);
        const waiter = this.#waiters.shift();
        if (waiter !== undefined) waiter.resolve(payload);
        else this.#inbox.push(payload);
        return;
      }
      case REQUEST: {
        const id = readId(body as never, 1);
        void this.#answer(id, body.subarray(1 + idLength(id)));
        return;
      }
      case REPLY: {
        const id = readId(body as never, 1);
        this.#pending.get(id)?.resolve(body.subarray(1 + idLength(id)));
        return;
      }
      case ERROR: {
        const id = readId(body as never, 1);
        const at = 1 + idLength(id);
        const codeLength = body[at] ?? 0;
        if (codeLength > MAX_ERROR_CODE || at + 1 + codeLength > body.length)
          throw envelopeError('malformed error envelope');
        const code = codeLength === 0 ? undefined : decoder.decode(body.subarray(at + 1, at + 1 + codeLength));
        const message = decoder.decode(body.subarray(at + 1 + codeLength));
        this.#pending.get(id)?.reject(new RemoteError(message, code === undefined ? undefined : { remoteCode: code }));
        return;
      }
      case PING:
        void this.channel.send(new Uint8Array([PONG])).catch(() => undefined);
        return;
      case PONG:
        return;
      case undefined:
        throw envelopeError('empty message: no envelope');
      default:
        throw envelopeError(`unknown envelope kind ${kind}`);
    }
  }

  async #answer(id: number, payload: Uint8Array): Promise<void> {
    let reply: Uint8Array;
    try {
      const handler = this.#options.onRequest;
      if (handler === undefined) throw new NoHandlerError();
      reply = envelope(REPLY, id, await handler(payload));
    } catch (error) {
      reply = errorEnvelope(id, error);
    }
    await this.channel.send(reply).catch(() => undefined); // the channel ended: its closed reports why
  }

  #end(error: Error): void {
    this.#error ??= error;
    for (const p of this.#pending.values()) p.reject(error);
    for (let w = this.#waiters.shift(); w !== undefined; w = this.#waiters.shift()) w.reject(error);
  }
}
