/**
 * The options of `ws` in Channel.listen() and Server.listen() (docs/websocket.md), apart from the
 * code that serves them (accept.ts), so core/options.ts can name them without loading it.
 */
import type * as http from 'node:http';
import type * as https from 'node:https';

/** Options of `ws` in Channel.listen() and Server.listen(). */
export interface WebSocketListenOptions {
  /** Only upgrade requests for this path (e.g. '/chat'); others get 404 (with `server`: are left to its other handlers). @default any path */
  path?: string;
  /**
   * Serve WebSocket on this http.Server or https.Server's upgrade requests instead of on a port of
   * the listener's own: it listens (and closes) itself; its other requests stay its own.
   */
  server?: http.Server | https.Server;
  /**
   * The page origins (`Origin` header, e.g. 'https://example.com') whose upgrade requests are
   * accepted; others get 403. A request without `Origin` (not from a browser) is accepted.
   * @default any origin
   */
  allowedOrigins?: readonly string[] | ((origin: string) => boolean);
  /**
   * Largest WebSocket message accepted, in bytes (what `ws` buffers whole before handing it
   * over). msgchannel's senders cut their bytes into messages of at most 64 KiB; the framing's
   * `maxMessageSize` bounds the messages themselves. A larger one fails that connection with
   * MessageTooLargeError (close code 1009).
   * @default 65536
   */
  maxPayload?: number;
}

/** The application's http(s).Server that `ws.server` attaches to, if any. */
export function attachedServer(options: { ws?: WebSocketListenOptions | true | undefined }): http.Server | undefined {
  return options.ws === undefined || options.ws === true ? undefined : options.ws.server;
}
