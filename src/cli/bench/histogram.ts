/**
 * Latency histograms: Node's perf_hooks.createHistogram (an HdrHistogram) in microseconds, the
 * percentiles the report shows, and a plain-data summary for the JSON. Histograms are cloneable
 * through worker_threads messages and merge with add(), so a run over several workers merges exactly.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** The percentiles every report shows, in this order. */
export const PERCENTILES = [50, 90, 99, 99.9, 99.99] as const;

/** Latencies up to an hour, 3 significant digits (HdrHistogram's usual precision). */
const HIGHEST_US = 3_600_000_000;

export function newHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: HIGHEST_US, figures: 3 });
}

/** Records a latency in ms (rounded up to a whole µs, at least 1, at most an hour). */
export function recordMs(h: RecordableHistogram, ms: number): void {
  h.record(Math.min(HIGHEST_US, Math.max(1, Math.ceil(ms * 1000))));
}

/** A histogram as data: percentiles keyed `p50` ... `p99.99`, `max`, `mean`, `stddev`, all in ms; `count` values. */
export interface LatencySummary {
  count: number;
  min: number | null;
  mean: number | null;
  stddev: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  'p99.9': number | null;
  'p99.99': number | null;
  max: number | null;
}

export function summarize(h: RecordableHistogram): LatencySummary {
  const count = h.count;
  const ms = (us: number): number | null => (count === 0 ? null : Math.round(us) / 1000);
  const s: LatencySummary = {
    count,
    min: ms(h.min),
    mean: ms(h.mean),
    stddev: ms(h.stddev),
    p50: null,
    p90: null,
    p99: null,
    'p99.9': null,
    'p99.99': null,
    max: ms(h.max),
  };
  for (const p of PERCENTILES) s[`p${p}`] = ms(h.percentile(p));
  return s;
}

/** The distribution for a plot: [percentile, latency ms] points, log-spaced towards the tail (HdrHistogram's percentile plot). */
export function percentileCurve(h: RecordableHistogram): [number, number][] {
  if (h.count === 0) return [];
  const points: [number, number][] = [];
  // 1 - p halves 5 times per decade-ish: 0, 50, 75, 87.5, ... up to 99.999.
  for (let tail = 1; tail >= 1e-5; tail /= Math.SQRT2) {
    const p = (1 - tail) * 100;
    points.push([p, h.percentile(Math.max(p, 0.0001)) / 1000]);
  }
  points.push([100, h.max / 1000]);
  return points;
}
