/**
 * `msgchannel bench compare a.json b.json`: the difference between two result documents, and
 * whether it is significant. With two or more runs on each side (--runs N), Welch's t-test on the
 * per-run throughput and on the per-run corrected p99 (as autocannon-compare does on its samples):
 * significant when p < 0.05. One run on a side gives the difference only: a single run cannot tell
 * a change from the run-to-run noise.
 */
import { readFileSync } from 'node:fs';
import { CliError, EXIT_USAGE, print } from '../output.js';
import { SCHEMA, type BenchDoc } from './report.js';

export interface Welch {
  t: number;
  df: number;
  /** Two-sided p-value. */
  p: number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: number[]): number => {
  const m = mean(xs);
  return xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1);
};

/** ln Γ(x) for x > 0: Stirling's series at x + 6, shifted back down (Γ(x + 1) = x Γ(x)). */
function logGamma(x: number): number {
  let shift = 0;
  let z = x;
  while (z < 6) shift += Math.log(z++);
  const series = 1 / (12 * z) - 1 / (360 * z ** 3) + 1 / (1260 * z ** 5);
  return (z - 0.5) * Math.log(z) - z + 0.5 * Math.log(2 * Math.PI) + series - shift;
}

/** The continued fraction of the incomplete beta function (Numerical Recipes' betacf). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-30;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 200; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-12) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(a, b, x)) / a : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

/** Welch's t-test of two samples (each of two or more values); undefined when it cannot be computed. */
export function welch(a: number[], b: number[]): Welch | undefined {
  if (a.length < 2 || b.length < 2) return undefined;
  const va = variance(a) / a.length;
  const vb = variance(b) / b.length;
  const diff = mean(b) - mean(a);
  if (va + vb === 0) return { t: diff === 0 ? 0 : Infinity, df: a.length + b.length - 2, p: diff === 0 ? 1 : 0 };
  const t = diff / Math.sqrt(va + vb);
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  // Two-sided: P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2).
  const p = incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return { t, df, p };
}

/** Significant at this p-value or below. */
export const ALPHA = 0.05;

export interface Comparison {
  metric: string;
  a: number;
  b: number;
  /** (b - a) / a, as a fraction. */
  change: number;
  test: Welch | undefined;
  significant: boolean | undefined;
}

export function readDoc(path: string): BenchDoc {
  let doc: BenchDoc;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as BenchDoc;
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`, EXIT_USAGE);
  }
  if (doc?.schema !== SCHEMA || !Array.isArray(doc.runs) || doc.runs.length === 0)
    throw new CliError(`${path} is not a result of msgchannel bench --json (schema ${SCHEMA}, with runs)`, EXIT_USAGE);
  return doc;
}

export function compareDocs(a: BenchDoc, b: BenchDoc): Comparison[] {
  const metrics: [string, (d: BenchDoc['runs'][number]) => number | null][] = [
    ['messages/s', (r) => r.messagesPerSecond],
    ['latency p50 (ms)', (r) => r.latency.corrected.p50],
    ['latency p99 (ms)', (r) => r.latency.corrected.p99],
  ];
  return metrics.map(([metric, of]) => {
    const xa = a.runs.map(of).filter((v): v is number => v !== null);
    const xb = b.runs.map(of).filter((v): v is number => v !== null);
    const ma = xa.length ? mean(xa) : NaN;
    const mb = xb.length ? mean(xb) : NaN;
    const test = welch(xa, xb);
    return { metric, a: ma, b: mb, change: (mb - ma) / ma, test, significant: test && test.p <= ALPHA };
  });
}

export function comparisonTable(rows: Comparison[], a: BenchDoc, b: BenchDoc): string {
  const fmt = (n: number, digits: number): string =>
    Number.isFinite(n) ? n.toLocaleString('en', { maximumFractionDigits: digits }) : '-';
  const lines = [
    `a: ${a.config.mode} ${a.config.target}, ${a.runs.length} run${a.runs.length === 1 ? '' : 's'}`,
    `b: ${b.config.mode} ${b.config.target}, ${b.runs.length} run${b.runs.length === 1 ? '' : 's'}`,
  ];
  const table: string[][] = [['metric', 'a (mean)', 'b (mean)', 'change', 'p (Welch)', 'significant']];
  for (const r of rows) {
    const change = Number.isFinite(r.change) ? `${r.change >= 0 ? '+' : ''}${(r.change * 100).toFixed(1)}%` : '-';
    const verdict =
      r.significant === undefined ? 'unknown (needs --runs 2 or more on each side)' : r.significant ? 'yes' : 'no';
    const digits = r.metric === 'messages/s' ? 1 : 3;
    table.push([r.metric, fmt(r.a, digits), fmt(r.b, digits), change, r.test ? r.test.p.toPrecision(2) : '-', verdict]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table)
    lines.push(
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
  return lines.join('\n');
}

export function compareCommand(aPath: string, bPath: string): void {
  const a = readDoc(aPath);
  const b = readDoc(bPath);
  print(comparisonTable(compareDocs(a, b), a, b));
}
