/** Helpers for framing codec tests: encode frames, decode chunk lists, try every split point. */
import * as assert from 'uvu/assert';
import type { Framing } from '../../channel.js';

export interface TestFrame {
  type: number;
  data: Buffer;
}

/** Header and body of one frame, as the Channel writes them. */
export function encode(framing: Framing, body: Buffer | string, type = 0): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const header = Buffer.alloc(framing.maxHeaderLength);
  const end = framing.writeHeader(header, 0, b.length, type);
  return Buffer.concat([header.subarray(0, end), b]);
}

/** Feed `chunks` to a fresh decoder; frames are copied so later chunks cannot alias them. */
export function decodeAll(framing: Framing, chunks: Buffer[], maxMessageSize = 1 << 20): TestFrame[] {
  const d = framing.createDecoder({ maxMessageSize });
  const out: TestFrame[] = [];
  for (const c of chunks) d.push(c, (data, type) => out.push({ type, data: Buffer.from(data) }));
  return out;
}

/** Decode `wire` split at every pair of points (three chunks), and one byte at a time. */
export function assertEverySplit(framing: Framing, wire: Buffer, expected: TestFrame[]): void {
  const show = (frames: TestFrame[]) => frames.map((f) => `${f.type}:${f.data.toString('hex')}`);
  const want = show(expected);
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const got = decodeAll(framing, [wire.subarray(0, i), wire.subarray(i, j), wire.subarray(j)]);
      assert.equal(show(got), want, `split at ${i},${j}`);
    }
  }
  const bytes: Buffer[] = [];
  for (let i = 0; i < wire.length; i++) bytes.push(wire.subarray(i, i + 1));
  assert.equal(show(decodeAll(framing, bytes)), want, 'one byte at a time');
}

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Assert that `fn` throws an error with this code. */
export function throwsCode(fn: () => unknown, code: string, what = ''): void {
  try {
    fn();
  } catch (error) {
    assert.is((error as { code?: string }).code, code, `${what}: ${(error as Error).message}`);
    return;
  }
  assert.unreachable(`${what}: expected a throw with code ${code}`);
}
