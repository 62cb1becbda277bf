/**
 * `msgchannel`: netcat for framed messages. A thin shell over the public API (listen, connect,
 * send, bench); every failure prints one line `msgchannel: ... (CODE)` and exits non-zero.
 * Exit codes: 0 done, 1 error, 2 bad usage, 124 timeout (as timeout(1) does).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import picocolors from 'picocolors';
import {
  Channel,
  int32,
  lengthPrefixed,
  ltprotocol,
  msg,
  openflow,
  pythonConnection,
  tinyproto,
  type Framing,
  type LengthPrefixedOptions,
  type StructCode,
} from '../channel.js';

const EXIT_ERROR = 1;
const EXIT_USAGE = 2;
const EXIT_TIMEOUT = 124;

// ---------------------------------------------------------------- output

/** Colors only on a TTY, never with NO_COLOR set (https://no-color.org), always with FORCE_COLOR. */
function colorsFor(stream: NodeJS.WriteStream): ReturnType<typeof picocolors.createColors> {
  const env = process.env;
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  const enabled = !env.NO_COLOR && (forced || (stream.isTTY === true && env.TERM !== 'dumb'));
  return picocolors.createColors(enabled);
}
const out = colorsFor(process.stdout);
const err = colorsFor(process.stderr);

function print(line: string): void {
  process.stdout.write(line + '\n');
}

/** A failure the CLI reports in one line and exits on. */
class CliError extends Error {
  constructor(message: string, readonly exitCode = EXIT_ERROR) {
    super(message);
  }
}

function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** One line that says what failed, where, and the error's code. */
export function describeError(e: unknown, where: { action?: 'listen' | 'connect'; address?: string } = {}): string {
  if (e instanceof CliError) return e.message;
  const code = codeOf(e);
  const at = where.address ?? '';
  const message = e instanceof Error ? e.message : String(e);
  switch (code) {
    case 'EADDRINUSE':
      return `cannot listen on ${at}: port already in use (EADDRINUSE)`;
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
    case 'ERR_PROTOCOL':
    case 'ERR_UNEXPECTED_EOF':
    case 'ERR_MESSAGE_TOO_LARGE':
      return `malformed frame from ${at}: ${message} (${code})`;
    case undefined:
      return message;
    default:
      return where.action === 'connect' ? `cannot connect to ${at}: ${message} (${code})` : `${message} (${code})`;
  }
}

function fail(e: unknown, where: Parameters<typeof describeError>[1] = {}): never {
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

function hexLine(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Hex text (`01 02 ff`, `0102ff`, `0x01 0x02`) to bytes. */
export function parseHex(text: string): Buffer {
  const digits = text.replace(/0x/gi, '').replace(/[\s:,]/g, '');
  if (digits.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(digits)) {
    throw new CliError(`not hex bytes: ${JSON.stringify(text)} (expected pairs of hex digits, like "01 ff 2a")`, EXIT_USAGE);
  }
  return Buffer.from(digits, 'hex');
}

/** `n B` / `n KiB` / ... */
function size(n: number): string {
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
function showMessage(prefix: string, data: Buffer, type: number | undefined): string {
  const head = `${prefix}${out.bold(`${data.length} B`)}${type === undefined ? '' : out.dim(` type ${type}`)}`;
  const text = printable(data);
  if (text !== undefined && data.length > 0) return `${head}  ${text}`;
  if (data.length === 0) return head;
  return `${head}\n${hexdump(data)}`;
}

// ---------------------------------------------------------------- arguments

export interface Address {
  host: string;
  port: number;
}

/** `[HOST:]PORT`, `[::1]:PORT`; the host defaults to 127.0.0.1. */
export function parseAddress(text: string): Address {
  const m = /^(?:\[([^\]]+)\]:|([^:]*):)?(\d+)$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new InvalidArgumentError(`expected [HOST:]PORT with PORT 0-65535, like 127.0.0.1:5000 or 5000; got ${JSON.stringify(text)}`);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

function showAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

const STRUCT_CODES = new Set(['B', 'H', 'I', 'Q']);
const FRAMING_NAMES = ['msg', 'int32', 'openflow', 'tinyproto', 'ltprotocol[:LEN,TYPE]', 'pythonConnection[:authkey=KEY]', 'lengthPrefixed:KEY=VALUE,...'];

/**
 * `--framing NAME[:ARGS]`: `msg`, `int32`, `openflow`, `tinyproto`, `ltprotocol` or
 * `ltprotocol:I,B` (struct codes), `pythonConnection` or `pythonConnection:authkey=secret`,
 * `lengthPrefixed:lengthSize=2,typeSize=1,littleEndian` (the lengthPrefixed options).
 */
export function parseFraming(text: string): Framing {
  const colon = text.indexOf(':');
  const name = (colon < 0 ? text : text.slice(0, colon)).toLowerCase();
  const args = colon < 0 ? [] : text.slice(colon + 1).split(',').filter((s) => s !== '');
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`${why}; framings: ${FRAMING_NAMES.join(', ')}`);
  };
  const noArgs = (f: Framing): Framing => (args.length ? bad(`${name} takes no arguments`) : f);
  const keyValues = (): Map<string, string> =>
    new Map(args.map((a) => {
      const eq = a.indexOf('=');
      return eq < 0 ? [a, 'true'] : [a.slice(0, eq), a.slice(eq + 1)];
    }));
  try {
    switch (name) {
      case 'msg':
        return noArgs(msg);
      case 'int32':
        return noArgs(int32);
      case 'openflow':
        return noArgs(openflow);
      case 'tinyproto':
        return noArgs(tinyproto);
      case 'ltprotocol': {
        const [len = 'H', type = 'B', ...rest] = args.map((a) => a.toUpperCase());
        if (rest.length || !STRUCT_CODES.has(len) || !STRUCT_CODES.has(type)) return bad(`ltprotocol takes two struct codes (B, H, I, Q), like ltprotocol:H,B; got ${JSON.stringify(text)}`);
        return ltprotocol(len as StructCode, type as StructCode);
      }
      case 'pythonconnection': {
        const kv = keyValues();
        const authkey = kv.get('authkey');
        for (const k of kv.keys()) if (k !== 'authkey') bad(`pythonConnection takes authkey=KEY; got ${JSON.stringify(k)}`);
        return pythonConnection(authkey === undefined ? {} : { authkey });
      }
      case 'lengthprefixed': {
        const options: Record<string, unknown> = {};
        const numeric = new Set(['lengthSize', 'lengthOffset', 'lengthAdjustment', 'typeSize', 'typeOffset']);
        for (const [k, v] of keyValues()) {
          if (numeric.has(k)) {
            const n = Number(v);
            if (!Number.isInteger(n)) bad(`lengthPrefixed option ${k} must be an integer; got ${JSON.stringify(v)}`);
            options[k] = n;
          } else if (k === 'littleEndian') options[k] = v === 'true' || v === '1';
          else if (k === 'lengthCounts') options[k] = v;
          else bad(`unknown lengthPrefixed option ${JSON.stringify(k)} (lengthSize, littleEndian, lengthOffset, lengthCounts, lengthAdjustment, typeSize, typeOffset)`);
        }
        return lengthPrefixed(options as LengthPrefixedOptions);
      }
      default:
        return bad(`unknown framing ${JSON.stringify(text)}`);
    }
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
  }
}

function positiveInt(what: string, min = 1) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${what} must be an integer >= ${min}; got ${JSON.stringify(text)}`);
    return n;
  };
}

function seconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a number of seconds > 0; got ${JSON.stringify(text)}`);
  return n;
}

/** `\n`, `\0`, `\t`, `\r`, `\xHH` and `\\` in a delimiter argument. */
export function unescapeDelimiter(text: string): Buffer {
  const s = text.replace(/\\(x[0-9a-fA-F]{2}|[0nrt\\])/g, (_, e: string) =>
    e[0] === 'x' ? String.fromCharCode(parseInt(e.slice(1), 16)) : ({ '0': '\0', n: '\n', r: '\r', t: '\t', '\\': '\\' } as Record<string, string>)[e]!,
  );
  if (s.length === 0) throw new InvalidArgumentError('the delimiter must not be empty');
  return Buffer.from(s, 'latin1');
}

const framingOption = (): Option =>
  new Option('-f, --framing <name>', 'wire format: msg, int32, openflow, tinyproto, ltprotocol[:H,B], pythonConnection[:authkey=KEY], lengthPrefixed:KEY=VALUE,...')
    .default(msg, 'msg')
    .argParser(parseFraming);

// ---------------------------------------------------------------- listen

interface ListenFlags {
  echo?: boolean;
  exec?: string;
  framing: Framing;
}

/** Runs CMD with the message on stdin; resolves with its stdout. */
function runExec(command: string, input: Buffer, peer: string): Promise<{ stdout: Buffer; status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, { shell: true, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, MSGCHANNEL_PEER: peer } });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.on('error', () => {}); // CMD may exit without reading its input
    child.on('error', reject);
    child.on('close', (status) => resolve({ stdout: Buffer.concat(chunks), status, stderr }));
    child.stdin.end(input);
  });
}

async function serveClient(ch: Channel, flags: ListenFlags): Promise<void> {
  const peer = ch.ip === undefined ? 'client' : showAddress({ host: ch.ip, port: ch.port ?? 0 });
  print(`${out.green('+')} ${peer} connected`);
  let count = 0;
  const typed = ch.framing.hasType;
  try {
    for (;;) {
      const { type, data } = await ch.recvFrame();
      count++;
      print(showMessage(`${out.cyan('<')} ${peer} `, data, typed ? type : undefined));
      if (flags.echo) await ch.send(data, { type });
      else if (flags.exec !== undefined) {
        const r = await runExec(flags.exec, data, peer);
        if (r.status !== 0) process.stderr.write(`${err.yellow('msgchannel:')} --exec command exited with ${r.status ?? 'a signal'} for a message from ${peer}${r.stderr ? `: ${r.stderr.trim().split('\n')[0]}` : ''}\n`);
        await ch.send(r.stdout, { type });
      }
    }
  } catch (e) {
    if (codeOf(e) !== 'ERR_CHANNEL_CLOSED') {
      print(`${out.red('!')} ${peer} ${describeError(e, { address: peer })}`);
    }
  }
  const why = await ch.closed;
  const plural = count === 1 ? '' : 's';
  print(`${out.yellow('-')} ${peer} disconnected after ${count} message${plural}${why ? out.dim(` (${codeOf(why) ?? why.message})`) : ''}`);
}

async function listenCommand(addressText: string, flags: ListenFlags): Promise<void> {
  const address = parseAddress(addressText);
  // reuse: false, so that a port another server holds is reported instead of shared (SO_REUSEPORT).
  const listener = Channel.listen(address.host, address.port, { reuse: false, framing: flags.framing });
  let bound: Address;
  try {
    const a = await listener.listening;
    bound = { host: a.address, port: a.port };
  } catch (e) {
    fail(e, { action: 'listen', address: showAddress(address) });
  }
  const mode = flags.echo ? ', echoing' : flags.exec !== undefined ? `, replying with: ${flags.exec}` : '';
  print(`listening on ${out.bold(showAddress(bound))} (framing ${flags.framing.name}${mode})`);
  const stop = (): void => {
    void listener.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const ch of listener) void serveClient(ch, flags);
  } catch (e) {
    fail(e, { action: 'listen', address: showAddress(bound) });
  }
}

// ---------------------------------------------------------------- connect

interface ConnectFlags {
  framing: Framing;
  hex?: boolean;
  raw?: boolean;
  delimiter: Buffer;
  wait: number;
  timeout: number;
}

async function open(address: Address, framing: Framing, timeoutS: number): Promise<Channel> {
  try {
    return await Channel.connect(address.host, address.port, { framing, timeout: timeoutS * 1000 });
  } catch (e) {
    if (codeOf(e) === 'ERR_TIMEOUT') fail(new CliError(`cannot connect to ${showAddress(address)}: no answer within ${timeoutS} s (ERR_TIMEOUT)`, EXIT_TIMEOUT));
    fail(e, { action: 'connect', address: showAddress(address) });
  }
}

/** How connect and send print a received message: text as is, else a hexdump (or hex / raw when asked). */
function writeReceived(data: Buffer, flags: { hex?: boolean; raw?: boolean; delimiter?: Buffer }): void {
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

/** Messages from stdin: lines (text or hex), or raw bytes split on the delimiter. */
async function* stdinMessages(flags: ConnectFlags): AsyncGenerator<Buffer> {
  if (!flags.raw) {
    const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
    for await (const line of rl) yield flags.hex ? parseHex(line) : Buffer.from(line, 'utf8');
    return;
  }
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at: number;
    while ((at = pending.indexOf(flags.delimiter)) >= 0) {
      yield pending.subarray(0, at);
      pending = pending.subarray(at + flags.delimiter.length);
    }
  }
  if (pending.length) yield pending;
}

async function connectCommand(addressText: string, flags: ConnectFlags): Promise<void> {
  const address = parseAddress(addressText);
  const where = showAddress(address);
  const ch = await open(address, flags.framing, flags.timeout);
  let sent = 0;
  let received = 0;
  let wake: (() => void) | undefined;
  const receiving = (async () => {
    try {
      for (;;) {
        const data = await ch.recv();
        received++;
        writeReceived(data, flags);
        wake?.();
      }
    } catch (e) {
      wake?.();
      if (codeOf(e) !== 'ERR_CHANNEL_CLOSED') fail(e, { address: where });
    }
  })();
  // The server closing ends the session, as with netcat, even while stdin is still open.
  void receiving.then(() => process.exit(0));
  try {
    for await (const message of stdinMessages(flags)) {
      await ch.send(message);
      sent++;
    }
  } catch (e) {
    if (e instanceof CliError) fail(e);
    fail((await ch.closed) ?? e, { address: where });
  }
  // End of stdin: wait for a reply to every message, or until the peer is quiet for --wait seconds.
  while (received < sent && ch.isOpen) {
    const before = received;
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, flags.wait * 1000).unref();
    });
    if (received === before) break;
  }
  await ch.close({ timeout: 2000 }).catch(() => ch.destroy());
  await receiving;
  process.exit(0);
}

// ---------------------------------------------------------------- send

interface SendFlags {
  framing: Framing;
  expect: number;
  timeout: number;
  hex?: boolean;
}

async function sendCommand(addressText: string, messages: string[], flags: SendFlags): Promise<void> {
  const address = parseAddress(addressText);
  const where = showAddress(address);
  const bodies = messages.map((m) => (flags.hex ? parseHex(m) : Buffer.from(m, 'utf8')));
  const deadline = Date.now() + flags.timeout * 1000;
  const ch = await open(address, flags.framing, flags.timeout);
  try {
    for (const body of bodies) await ch.send(body);
    for (let i = 1; i <= flags.expect; i++) {
      const left = deadline - Date.now();
      let data: Buffer;
      try {
        data = await ch.recv({ timeout: Math.max(1, left) });
      } catch (e) {
        if (codeOf(e) === 'ERR_TIMEOUT') {
          throw new CliError(`timed out after ${flags.timeout} s waiting for reply ${i} of ${flags.expect} from ${where} (ERR_TIMEOUT)`, EXIT_TIMEOUT);
        }
        if (codeOf(e) === 'ERR_CHANNEL_CLOSED') {
          throw new CliError(`${where} closed the connection after ${i - 1} of ${flags.expect} replies (ERR_CHANNEL_CLOSED)`);
        }
        throw e;
      }
      writeReceived(data, flags);
    }
    await ch.close({ timeout: Math.max(1000, deadline - Date.now()) });
  } catch (e) {
    ch.destroy();
    fail(e, { address: where });
  }
  process.exit(0);
}

// ---------------------------------------------------------------- bench

interface BenchFlags {
  framing: Framing;
  size: number;
  count?: number;
  duration?: number;
  concurrency: number;
  window: number;
}

export interface BenchResult {
  messages: number;
  bytes: number;
  seconds: number;
  latencies: Float64Array;
}

/**
 * Echo round trips: `concurrency` connections, each keeping `window` messages in flight, until
 * `count` messages in all have come back or `duration` seconds have passed.
 */
async function runBench(address: Address, flags: BenchFlags, onProgress: (done: number, elapsed: number) => void): Promise<BenchResult> {
  const channels = await Promise.all(Array.from({ length: flags.concurrency }, () => open(address, flags.framing, 10)));
  const body = Buffer.alloc(flags.size, 'x');
  const limit = flags.count ?? Infinity;
  const until = flags.duration === undefined ? Infinity : performance.now() + flags.duration * 1000;
  const latencies: number[] = [];
  let started = 0;
  let done = 0;
  const start = performance.now();
  const timer = setInterval(() => onProgress(done, (performance.now() - start) / 1000), 100);
  const more = (): boolean => started < limit && performance.now() < until;
  try {
    await Promise.all(
      channels.map(async (ch) => {
        const sentAt: number[] = [];
        const inFlight = async (): Promise<void> => {
          while (more()) {
            started++;
            sentAt.push(performance.now());
            await ch.send(body);
            await ch.recv();
            // Echoes come back in order: the oldest send is the one answered.
            latencies.push(performance.now() - sentAt.shift()!);
            done++;
          }
        };
        await Promise.all(Array.from({ length: flags.window }, inFlight));
      }),
    );
  } finally {
    clearInterval(timer);
  }
  const secs = (performance.now() - start) / 1000;
  onProgress(done, secs);
  await Promise.all(channels.map((ch) => ch.close({ timeout: 2000 }).catch(() => ch.destroy())));
  return { messages: done, bytes: done * flags.size * 2, seconds: secs, latencies: Float64Array.from(latencies).sort() };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function resultTable(r: BenchResult, flags: BenchFlags, target: string): string {
  const fmt = (n: number, digits = 0): string => n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const rows: [string, string][] = [
    ['target', target],
    ['framing', flags.framing.name],
    ['message size', size(flags.size)],
    ['connections', `${flags.concurrency} x window ${flags.window}`],
    ['round trips', fmt(r.messages)],
    ['time', `${fmt(r.seconds, 2)} s`],
    ['round trips/s', fmt(r.messages / r.seconds)],
    ['throughput', `${fmt(r.bytes / r.seconds / 1e6, 1)} MB/s (both directions)`],
    ['latency p50', `${fmt(percentile(r.latencies, 50), 3)} ms`],
    ['latency p99', `${fmt(percentile(r.latencies, 99), 3)} ms`],
    ['latency max', `${fmt(r.latencies[r.latencies.length - 1] ?? NaN, 3)} ms`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const line = `+${'-'.repeat(w + 2)}+${'-'.repeat(Math.max(...rows.map(([, v]) => v.length)) + 2)}+`;
  const vw = line.length - w - 7;
  return [line, ...rows.map(([k, v]) => `| ${out.dim(k.padEnd(w))} | ${v.padEnd(vw)} |`), line].join('\n');
}

async function benchCommand(addressText: string | undefined, flags: BenchFlags): Promise<void> {
  if (flags.count === undefined && flags.duration === undefined) flags.duration = 5;
  let address: Address;
  let listener: ReturnType<typeof Channel.listen> | undefined;
  if (addressText === undefined) {
    // Self-contained: an echo server in this process.
    listener = Channel.listen('127.0.0.1', 0, { framing: flags.framing });
    const a = await listener.listening;
    address = { host: a.address, port: a.port };
    void (async () => {
      for await (const ch of listener) {
        void (async () => {
          try {
            for await (const m of ch) await ch.send(m);
          } catch {
            // a client that vanished ends its loop
          }
          ch.destroy();
        })();
      }
    })();
  } else {
    address = parseAddress(addressText);
  }
  const target = listener ? `${showAddress(address)} (in-process echo server)` : showAddress(address);
  const tty = process.stderr.isTTY === true;
  const bar = (done: number, elapsed: number): void => {
    if (!tty) return;
    const fraction = flags.count !== undefined ? done / flags.count : elapsed / flags.duration!;
    const width = 30;
    const filled = Math.round(Math.min(1, fraction) * width);
    const rate = elapsed > 0 ? Math.round(done / elapsed).toLocaleString('en') : '0';
    process.stderr.write(`\r${err.cyan('█'.repeat(filled))}${err.dim('░'.repeat(width - filled))} ${Math.round(Math.min(1, fraction) * 100)}%  ${done.toLocaleString('en')} round trips, ${rate}/s `);
  };
  let result: BenchResult;
  try {
    result = await runBench(address, flags, bar);
  } catch (e) {
    fail(e, { action: 'connect', address: showAddress(address) });
  }
  if (tty) process.stderr.write('\n');
  print(resultTable(result, flags, target));
  await listener?.close();
  process.exit(0);
}

// ---------------------------------------------------------------- program

function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

export function program(): Command {
  const cli = new Command('msgchannel')
    .description('Framed messages from the command line: netcat for msgchannel framings (MSG, ltprotocol, int32, ...).')
    .version(VERSION)
    .configureOutput({ outputError: (s, write) => write(`${err.red('msgchannel:')} ${s.replace(/^error: /, '')}`) })
    .exitOverride();
  cli.addHelpText(
    'after',
    examples([
      'msgchannel listen 5000 --echo          # an echo server on 127.0.0.1:5000',
      'msgchannel connect 127.0.0.1:5000      # type lines; each is one message',
      'msgchannel send 127.0.0.1:5000 hello --expect 1',
      'msgchannel bench                       # self-contained benchmark',
      '',
      'Exit codes: 0 done, 1 error, 2 bad usage, 124 timeout. Colors only on a TTY; NO_COLOR disables them.',
    ]),
  );

  cli
    .command('listen')
    .description("accept clients; print each one's arrival and departure and each message with its length (text as text, anything else as a hexdump)")
    .argument('<[host:]port>', 'where to listen; the host defaults to 127.0.0.1, port 0 picks a free one', parseAddress)
    .option('-e, --echo', 'send every message back')
    .addOption(new Option('-x, --exec <cmd>', 'run CMD (a shell command) per message, with the message on stdin; its stdout is the reply').conflicts('echo'))
    .addOption(framingOption())
    .addHelpText(
      'after',
      examples([
        'msgchannel listen 5000                          # print what clients send',
        'msgchannel listen 0.0.0.0:5000 --echo           # echo, on every interface',
        "msgchannel listen 5000 --exec 'tr a-z A-Z'      # reply with the message in capitals",
        'msgchannel listen 9999 --framing ltprotocol:H,B # an ltprotocol peer',
        'msgchannel listen 6000 --framing pythonConnection:authkey=secret',
      ]),
    )
    .action((address: Address, flags: ListenFlags) => listenCommand(showAddress(address), flags));

  cli
    .command('connect')
    .description('connect; each stdin line becomes one message and each message received is printed; exits at the end of stdin once the replies are in')
    .argument('<[host:]port>', 'the server', parseAddress)
    .option('--hex', 'stdin lines are hex bytes ("01 ff 2a"), and received messages are printed in hex')
    .option('--raw', 'stdin is raw bytes split on --delimiter; received messages are written raw, each followed by the delimiter')
    .addOption(new Option('-d, --delimiter <str>', 'the --raw delimiter (escapes: \\n \\0 \\r \\t \\xHH)').default(Buffer.from('\n'), '\\n').argParser(unescapeDelimiter))
    .addOption(new Option('-w, --wait <seconds>', 'after the end of stdin, how long to wait for missing replies').default(2).argParser(seconds))
    .addOption(new Option('-t, --timeout <seconds>', 'connect timeout').default(10).argParser(seconds))
    .addOption(framingOption())
    .addHelpText(
      'after',
      examples([
        'msgchannel connect 127.0.0.1:5000',
        "printf 'one\\ntwo\\n' | msgchannel connect 5000          # two messages, then exit once both replies are in",
        "echo '01 02 ff' | msgchannel connect 5000 --hex",
        "find . -print0 | msgchannel connect 5000 --raw -d '\\0'",
      ]),
    )
    .action((address: Address, flags: ConnectFlags) => connectCommand(showAddress(address), flags));

  cli
    .command('send')
    .description('send the messages, print the first N replies, and exit (non-zero on timeout): for scripts')
    .argument('<[host:]port>', 'the server', parseAddress)
    .argument('<message...>', 'one message per argument (UTF-8, or hex with --hex)')
    .addOption(new Option('-n, --expect <n>', 'replies to wait for and print').default(0).argParser(positiveInt('--expect', 0)))
    .addOption(new Option('-t, --timeout <seconds>', 'for the whole exchange; then exit 124').default(5).argParser(seconds))
    .option('--hex', 'the messages are hex bytes, and replies are printed in hex')
    .addOption(framingOption())
    .addHelpText(
      'after',
      examples([
        'msgchannel send 127.0.0.1:5000 hello',
        'msgchannel send 5000 ping ping --expect 2 --timeout 1',
        'msgchannel send 5000 --hex "00 00 00 c8" --framing ltprotocol --expect 1',
        'reply=$(msgchannel send 5000 "status?" -n 1) || echo "no answer"',
      ]),
    )
    .action((address: Address, messages: string[], flags: SendFlags) => sendCommand(showAddress(address), messages, flags));

  cli
    .command('bench')
    .description('echo round trips against a server, or against an in-process echo server when none is given; prints a result table')
    .argument('[host:port]', 'an echo server (e.g. msgchannel listen PORT --echo); omit for a self-contained run', (s: string) => (parseAddress(s), s))
    .addOption(new Option('-s, --size <bytes>', 'message size').default(64).argParser(positiveInt('--size', 0)))
    .addOption(new Option('-c, --count <n>', 'round trips in all').argParser(positiveInt('--count')))
    .addOption(new Option('-d, --duration <seconds>', 'run this long (5 s when neither --count nor --duration is given)').argParser(seconds))
    .addOption(new Option('-C, --concurrency <n>', 'connections').default(1).argParser(positiveInt('--concurrency')))
    .addOption(new Option('-W, --window <n>', 'messages in flight per connection').default(16).argParser(positiveInt('--window')))
    .addOption(framingOption())
    .addHelpText(
      'after',
      examples([
        'msgchannel bench                                  # 5 s, 64 B messages, in-process echo server',
        'msgchannel bench --size 65536 --count 10000',
        'msgchannel bench 127.0.0.1:5000 --concurrency 8 --duration 10',
      ]),
    )
    .action((address: string | undefined, flags: BenchFlags) => benchCommand(address, flags));

  for (const c of cli.commands) {
    c.exitOverride();
  }
  return cli;
}

declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === 'string' ? __VERSION__ : '0.0.0-dev';

export async function main(argv = process.argv): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; usage errors were already printed in one line.
      process.exit(e.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    fail(e);
  }
}
