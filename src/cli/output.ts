/**
 * What the `msgchannel` command writes: colors, print helpers, hexdump/printable formatting of
 * messages, and the one-line error report (`msgchannel: ... (CODE)`) with the exit codes it uses.
 * Exit codes: 0 done, 1 error, 2 bad usage, 124 timeout (as timeout(1) does).
 */
import picocolors from 'picocolors';

export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_TIMEOUT = 124;

/** Colors only on a TTY, never with NO_COLOR set (https://no-color.org), always with FORCE_COLOR. */
function colorsFor(stream: NodeJS.WriteStream): ReturnType<typeof picocolors.createColors> {
  const env = process.env;
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  const enabled = !env.NO_COLOR && (forced || (stream.isTTY === true && env.TERM !== 'dumb'));
  return picocolors.createColors(enabled);
}
export const out = colorsFor(process.stdout);
export const err = colorsFor(process.stderr);

export function print(line: string): void {
  process.stdout.write(line + '\n');
}

/** A failure the CLI reports in one line and exits on. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = EXIT_ERROR,
  ) {
    super(message);
  }
}

export function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** TLS verification failures of a client (node:tls codes), which `--ca` or `--insecure` answer. */
const CERTIFICATE_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/** One line that says what failed, where, and the error's code. */
export function describeError(e: unknown, where: { action?: 'listen' | 'connect'; address?: string } = {}): string {
  if (e instanceof CliError) return e.message;
  const code = codeOf(e);
  const at = where.address ?? '';
  // OpenSSL's errors (ERR_SSL_*) carry their reason apart from a multi-line message.
  const reason = (e as { reason?: unknown } | null)?.reason;
  const text =
    typeof reason === 'string' && code?.startsWith('ERR_SSL_') ? reason : e instanceof Error ? e.message : String(e);
  const message = text.trim().replace(/\s*\n\s*/g, ' ');
  switch (code) {
    case 'EADDRINUSE':
      // A Unix socket path is in use when its file exists, even with nobody listening on it.
      return at.includes('/')
        ? `cannot listen on ${at}: the path exists (EADDRINUSE): remove it if no server uses it`
        : `cannot listen on ${at}: port already in use (EADDRINUSE)`;
    case 'EACCES':
      return where.action === 'listen' ? `cannot listen on ${at}: permission denied (EACCES)` : `${message} (EACCES)`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${at}: address not available here (EADDRNOTAVAIL)`;
    case 'ECONNREFUSED':
      return `cannot connect to ${at}: connection refused (ECONNREFUSED)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve the host of ${at} (${code})`;
    case 'ECONNRESET':
      return `connection to ${at} reset by the peer (ECONNRESET)`;
    case 'ETIMEDOUT':
      return `connection to ${at} timed out (ETIMEDOUT)`;
    case 'ERR_MESSAGE_TOO_LARGE':
      // Ours to send (MessageTooLargeError's 'send' direction), or announced by the peer.
      if (message.startsWith('cannot send')) return `${message} (${code})`;
      return `malformed frame from ${at}: ${message} (${code})`;
    case 'ERR_PROTOCOL':
    case 'ERR_UNEXPECTED_EOF':
      return `malformed frame from ${at}: ${message} (${code})`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `cannot connect to ${at}: ${message} (${code}): --servername NAME for the name it has, or --insecure to skip the check`;
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
      return `cannot connect to ${at}: ${message} (${code}): the server asks for a client certificate: --cert FILE --key FILE`;
    case 'ERR_AUTH':
      return `${where.action === 'connect' ? `cannot connect to ${at}: ` : ''}${message} (${code}): do both sides use the same --auth secret?`;
    case undefined:
      return message;
    default:
      if (CERTIFICATE_CODES.has(code))
        return `cannot connect to ${at}: ${message} (${code}): the server's certificate is not trusted: its CA with --ca FILE, or --insecure to skip the check`;
      return where.action === 'connect' ? `cannot connect to ${at}: ${message} (${code})` : `${message} (${code})`;
  }
}

/** A line on stderr about something that is not a failure (the exit code stays 0). */
export function note(line: string): void {
  process.stderr.write(`${err.yellow('msgchannel:')} ${line}\n`);
}

export function fail(e: unknown, where: Parameters<typeof describeError>[1] = {}): never {
  process.stderr.write(`${err.red('msgchannel:')} ${describeError(e, where)}\n`);
  process.exit(e instanceof CliError ? e.exitCode : codeOf(e) === 'ERR_TIMEOUT' ? EXIT_TIMEOUT : EXIT_ERROR);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The message as text when it is printable UTF-8 (tabs and line breaks allowed), else undefined. */
export function printable(data: Uint8Array): string | undefined {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    return undefined;
  }
  // C0 controls other than \t \n \r, DEL, and C1 controls make it binary.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/.test(text) ? undefined : text;
}

/** `hexdump -C` style: offset, 16 bytes in hex, the printable ASCII. */
export function hexdump(data: Uint8Array, indent = '  '): string {
  const lines: string[] = [];
  for (let i = 0; i < data.length; i += 16) {
    const row = data.subarray(i, i + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0'));
    const left = hex.slice(0, 8).join(' ');
    const right = hex.slice(8).join(' ');
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${indent}${i.toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${ascii}|`);
  }
  return lines.join('\n');
}

export function hexLine(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** `n B` / `n KiB` / ... */
export function showSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** How listen shows a message: its length, then the text, or a hexdump. */
export function showMessage(prefix: string, data: Buffer, type: number | undefined): string {
  const head = `${prefix}${out.bold(`${data.length} B`)}${type === undefined ? '' : out.dim(` type ${type}`)}`;
  const text = printable(data);
  if (text !== undefined && data.length > 0) return `${head}  ${text}`;
  if (data.length === 0) return head;
  return `${head}\n${hexdump(data)}`;
}

/** How connect and send print a received message: text as is, else a hexdump (or hex / raw when asked). */
export function writeReceived(data: Buffer, flags: { hex?: boolean; raw?: boolean; delimiter?: Buffer }): void {
  if (flags.raw) {
    process.stdout.write(data);
    process.stdout.write(flags.delimiter ?? '\n');
    return;
  }
  if (flags.hex) return print(hexLine(data));
  const text = printable(data);
  if (text !== undefined) return print(text);
  print(out.dim(`(${data.length} B, binary)`) + '\n' + hexdump(data, ''));
}
