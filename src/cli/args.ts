/**
 * Argument parsing for the `msgchannel` command: addresses (`[HOST:]PORT`), `--framing NAME[:ARGS]`,
 * numbers and seconds, `--delimiter` escapes, and hex message bodies. Bad input throws commander's
 * InvalidArgumentError (reported as usage) or a CliError with the usage exit code.
 */
import { InvalidArgumentError } from 'commander';
import {
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
} from '../../channel.js';
import { CliError, EXIT_USAGE } from './output.js';

export interface Address {
  host: string;
  port: number;
}

/** `[HOST:]PORT`, `[::1]:PORT`; the host defaults to 127.0.0.1. */
export function parseAddress(text: string): Address {
  const m = /^(?:\[([^\]]+)\]:|([^:]*):)?(\d+)$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new InvalidArgumentError(
      `expected [HOST:]PORT with PORT 0-65535, like 127.0.0.1:5000 or 5000; got ${JSON.stringify(text)}`,
    );
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export function showAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

const STRUCT_CODES = new Set(['B', 'H', 'I', 'Q']);
const FRAMING_NAMES = [
  'msg',
  'int32',
  'openflow',
  'tinyproto',
  'ltprotocol[:LEN,TYPE]',
  'pythonConnection[:authkey=KEY]',
  'lengthPrefixed:KEY=VALUE,...',
];

/**
 * `--framing NAME[:ARGS]`: `msg`, `int32`, `openflow`, `tinyproto`, `ltprotocol` or
 * `ltprotocol:I,B` (struct codes), `pythonConnection` or `pythonConnection:authkey=secret`,
 * `lengthPrefixed:lengthSize=2,typeSize=1,littleEndian` (the lengthPrefixed options).
 */
export function parseFraming(text: string): Framing {
  const colon = text.indexOf(':');
  const name = (colon < 0 ? text : text.slice(0, colon)).toLowerCase();
  const args =
    colon < 0
      ? []
      : text
          .slice(colon + 1)
          .split(',')
          .filter((s) => s !== '');
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`${why}; framings: ${FRAMING_NAMES.join(', ')}`);
  };
  const noArgs = (f: Framing): Framing => (args.length ? bad(`${name} takes no arguments`) : f);
  const keyValues = (): Map<string, string> =>
    new Map(
      args.map((a) => {
        const eq = a.indexOf('=');
        return eq < 0 ? [a, 'true'] : [a.slice(0, eq), a.slice(eq + 1)];
      }),
    );
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
        if (rest.length || !STRUCT_CODES.has(len) || !STRUCT_CODES.has(type))
          return bad(
            `ltprotocol takes two struct codes (B, H, I, Q), like ltprotocol:H,B; got ${JSON.stringify(text)}`,
          );
        return ltprotocol(len as StructCode, type as StructCode);
      }
      case 'pythonconnection': {
        const kv = keyValues();
        const authkey = kv.get('authkey');
        for (const k of kv.keys())
          if (k !== 'authkey') bad(`pythonConnection takes authkey=KEY; got ${JSON.stringify(k)}`);
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
          else
            bad(
              `unknown lengthPrefixed option ${JSON.stringify(k)} (lengthSize, littleEndian, lengthOffset, lengthCounts, lengthAdjustment, typeSize, typeOffset)`,
            );
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

export function positiveInt(what: string, min = 1) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${what} must be an integer >= ${min}; got ${JSON.stringify(text)}`);
    return n;
  };
}

export function seconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`expected a number of seconds > 0; got ${JSON.stringify(text)}`);
  return n;
}

/** `\n`, `\0`, `\t`, `\r`, `\xHH` and `\\` in a delimiter argument. */
export function unescapeDelimiter(text: string): Buffer {
  const s = text.replace(/\\(x[0-9a-fA-F]{2}|[0nrt\\])/g, (_, e: string) =>
    e[0] === 'x'
      ? String.fromCharCode(parseInt(e.slice(1), 16))
      : ({ '0': '\0', n: '\n', r: '\r', t: '\t', '\\': '\\' } as Record<string, string>)[e]!,
  );
  if (s.length === 0) throw new InvalidArgumentError('the delimiter must not be empty');
  return Buffer.from(s, 'latin1');
}

/** Hex text (`01 02 ff`, `0102ff`, `0x01 0x02`) to bytes. */
export function parseHex(text: string): Buffer {
  const digits = text.replace(/0x/gi, '').replace(/[\s:,]/g, '');
  if (digits.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(digits)) {
    throw new CliError(
      `not hex bytes: ${JSON.stringify(text)} (expected pairs of hex digits, like "01 ff 2a")`,
      EXIT_USAGE,
    );
  }
  return Buffer.from(digits, 'hex');
}
