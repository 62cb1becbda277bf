/**
 * Where and how every command reaches its peer, in one place for listen, connect, send and bench:
 * the target (`[HOST:]PORT`, a Unix socket path, or a ws:// or wss:// URL), TLS (`--tls`, `--ca`,
 * `--cert`, `--key`, `--servername`, `--insecure`) and the `auth` handshake (`--auth`,
 * `--auth-file`). Once parsed, all of it is plain data (PEM text, key bytes), so bench can hand it
 * to its worker threads and every thread connects the same way.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { ConnectOptions, Framing, ListenOptions } from '../../channel.js';
import { parseAddress, showAddress, type Address } from './args.js';
import { CliError, EXIT_USAGE } from './output.js';

/** A Unix socket (or Windows named pipe) path. */
export interface SocketPath {
  path: string;
}

/** A WebSocket URL (connecting only). */
export interface WebSocketUrl {
  url: string;
}

/** What connect, send and bench connect to; listen takes an Address or a SocketPath. */
export type Target = Address | SocketPath | WebSocketUrl;

/**
 * `[HOST:]PORT` (`[::1]:PORT`), a ws:// or wss:// URL, or a Unix socket path: anything with a `/`
 * in it (`./app.sock`, `/run/app.sock`).
 */
export function parseTarget(text: string): Target {
  const t = text.trim();
  if (/^wss?:\/\//i.test(t)) {
    try {
      new URL(t);
    } catch {
      throw new InvalidArgumentError(`not a valid WebSocket URL: ${JSON.stringify(text)}`);
    }
    return { url: t };
  }
  if (t.includes('/')) return { path: t };
  try {
    return parseAddress(t);
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    throw new InvalidArgumentError(
      `expected [HOST:]PORT (like 127.0.0.1:5000 or 5000), a Unix socket path (with a /, like ./app.sock) or a ws:// URL; got ${JSON.stringify(text)}`,
    );
  }
}

/** Listen's target: `[HOST:]PORT` or a Unix socket path. */
export function parseListenTarget(text: string): Address | SocketPath {
  const t = parseTarget(text);
  if ('url' in t)
    throw new InvalidArgumentError(
      `listen takes [HOST:]PORT or a Unix socket path, not a URL (a WebSocket listener is Channel.listen({ ws }) in code); got ${JSON.stringify(text)}`,
    );
  return t;
}

export function showTarget(t: Target): string {
  return 'path' in t ? t.path : 'url' in t ? t.url : showAddress(t);
}

/** The transport options as commander parsed them (file names, the key as typed). */
export interface TransportFlags {
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  insecure?: boolean;
  auth?: string;
  authFile?: string;
}

/** TLS and auth as plain data: what every thread needs to connect (or listen) the same way. */
export interface Transport {
  /** Present when the connection is TLS (or wss://): PEM text read from the files given. */
  tls?: { ca?: string; cert?: string; key?: string; servername?: string; insecure?: boolean };
  /** The `auth` option's shared secret. */
  auth?: Uint8Array;
}

/**
 * The transport options, declared once for every command. A client (connect, send, bench) checks
 * the server's certificate against `--ca` (or the system's CAs) and may show one of its own; a
 * server (listen) shows `--cert`/`--key` and, with `--ca`, asks clients for theirs.
 */
export function addTransportOptions(cmd: Command, side: 'client' | 'server'): Command {
  if (side === 'client') {
    cmd
      .option('--tls', "connect with TLS, checking the server's certificate (implied by the options below)")
      .option('--ca <file>', "PEM file of the CA to check the server's certificate against (instead of the system's)")
      .option('--cert <file>', 'PEM certificate to show the server (with --key), when it asks for one')
      .option('--key <file>', 'PEM private key of --cert')
      .option('--servername <name>', 'the name to ask for (SNI) and to check the certificate against')
      .option('--insecure', "TLS without checking the server's certificate (testing only)");
  } else {
    cmd
      .option('--tls', 'serve TLS (needs --cert and --key)')
      .option('--cert <file>', 'PEM certificate to serve TLS with (implies --tls)')
      .option('--key <file>', 'PEM private key of --cert')
      .option('--ca <file>', 'ask every client for a certificate and check it against this PEM CA');
  }
  return cmd
    .addOption(
      new Option(
        '--auth <key>',
        'shared secret: both sides prove they hold it before the first message (HMAC-SHA256 each way; visible in ps, see --auth-file)',
      ).conflicts('authFile'),
    )
    .option('--auth-file <file>', "read --auth's secret from FILE (its bytes; one trailing newline dropped)");
}

function readOption(option: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new CliError(
      `cannot read ${option} ${file}: ${code === 'ENOENT' ? 'no such file' : String(code ?? e)}`,
      EXIT_USAGE,
    );
  }
}

function authKey(flags: TransportFlags): Uint8Array | undefined {
  if (flags.authFile !== undefined) {
    const bytes = readOption('--auth-file', flags.authFile);
    const n = bytes.length;
    const end = bytes[n - 1] === 0x0a ? (bytes[n - 2] === 0x0d ? n - 2 : n - 1) : n;
    if (end === 0) throw new CliError(`--auth-file ${flags.authFile} is empty: the secret must not be`, EXIT_USAGE);
    return bytes.subarray(0, end);
  }
  if (flags.auth === undefined) return undefined;
  if (flags.auth === '') throw new CliError('--auth must not be empty', EXIT_USAGE);
  return Buffer.from(flags.auth, 'utf8');
}

/** Reads the files the flags name and checks that they go together; a CliError (usage) when not. */
export function transportOf(flags: TransportFlags, side: 'client' | 'server', target?: Target): Transport {
  const transport: Transport = {};
  const auth = authKey(flags);
  if (auth !== undefined) transport.auth = auth;
  const usage = (why: string): never => {
    throw new CliError(why, EXIT_USAGE);
  };
  if ((flags.cert === undefined) !== (flags.key === undefined)) usage('--cert and --key go together');
  const wss = target !== undefined && 'url' in target && /^wss:/i.test(target.url);
  const asked =
    flags.tls === true ||
    flags.ca !== undefined ||
    flags.cert !== undefined ||
    flags.servername !== undefined ||
    flags.insecure === true;
  if (!asked && !wss) return transport;
  if (target !== undefined && 'url' in target && !wss) usage(`TLS over WebSocket is a wss:// URL; got ${target.url}`);
  if (side === 'server' && flags.cert === undefined) usage('serving TLS needs --cert and --key');
  const read = (option: string, file: string | undefined): string | undefined =>
    file === undefined ? undefined : readOption(option, file).toString('utf8');
  transport.tls = {};
  const ca = read('--ca', flags.ca);
  const cert = read('--cert', flags.cert);
  const key = read('--key', flags.key);
  if (ca !== undefined) transport.tls.ca = ca;
  if (cert !== undefined) transport.tls.cert = cert;
  if (key !== undefined) transport.tls.key = key;
  if (flags.servername !== undefined) transport.tls.servername = flags.servername;
  if (flags.insecure === true) transport.tls.insecure = true;
  return transport;
}

/** `, TLS, auth` to add to a list in parentheses, or nothing for plain TCP without auth. */
export function showTransport(t: { tls?: unknown; auth?: unknown }): string {
  return `${t.tls ? ', TLS' : ''}${t.auth ? ', auth' : ''}`;
}

/** Channel.connect's options for the target, the transport and the framing. */
export function connectOptions(
  target: Target,
  transport: Transport,
  framing: Framing,
  timeoutS: number,
): ConnectOptions {
  const o: ConnectOptions = { ...target, framing, timeout: timeoutS * 1000 };
  const tls = transport.tls;
  if (tls)
    o.tls = {
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      servername: tls.servername,
      rejectUnauthorized: tls.insecure !== true,
    };
  if (transport.auth) o.auth = { key: transport.auth };
  return o;
}

/** Channel.listen's options for the target, the transport and the framing. */
export function listenOptions(target: Address | SocketPath, transport: Transport, framing: Framing): ListenOptions {
  const o: ListenOptions = { ...target, framing };
  const tls = transport.tls;
  if (tls)
    o.tls = {
      cert: tls.cert,
      key: tls.key,
      ...(tls.ca === undefined ? {} : { ca: tls.ca, requestCert: true, rejectUnauthorized: true }),
    };
  if (transport.auth) o.auth = { key: transport.auth };
  return o;
}

/**
 * What to ask when connecting failed in a way that a TLS or auth mismatch explains, or ''. A
 * client with a handshake (auth, or the framing's) waits for the server's first bytes, which a TLS
 * server or one without auth never sends; a TLS client's hello makes a plain server hang up.
 */
export function connectHint(code: string | undefined, transport: Transport, framing: Framing): string {
  if (transport.tls !== undefined)
    return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_CHANNEL_CLOSED' ? ': is it a TLS server?' : '';
  if (code !== 'ERR_TIMEOUT') return '';
  if (transport.auth !== undefined)
    return ': the auth handshake got no answer: does the server use --auth? is it a TLS server (--tls)?';
  return framing.handshake === undefined ? '' : ': the handshake got no answer: is it a TLS server (--tls)?';
}
