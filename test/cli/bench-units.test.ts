/** The bench's pure parts: the open-loop schedule, Welch's t-test, compare, the histogram summary, the SVG. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareDocs, incompleteBeta, welch } from '../../src/cli/bench/compare.js';
import { newHistogram, percentileCurve, recordMs, summarize } from '../../src/cli/bench/histogram.js';
import { warnings, type BenchConfigDoc, type BenchDoc, type RunDoc } from '../../src/cli/bench/report.js';
import { closedLoop, openLoop } from '../../src/cli/bench/schedule.js';
import { percentilePlot } from '../../src/cli/bench/svg.js';
import { merge, shares } from '../../src/cli/bench/workers.js';

test('open loop: --rate N over C connections puts one message every 1/N s in all, the connections in turn', () => {
  const rate = 1000;
  const connections = 4;
  const start = 500;
  const times: number[] = [];
  for (let c = 0; c < connections; c++) {
    const s = openLoop(rate, c, connections, start);
    assert.ok(s.open);
    for (let k = 0; k < 25; k++) times.push(s.intended(k, 123456));
  }
  times.sort((a, b) => a - b);
  assert.is(times.length, 100);
  // Exactly one intended send per ms, from the start: 100 messages in 100 ms, never two at once.
  times.forEach((t, i) => assert.ok(Math.abs(t - (start + i)) < 1e-9, `message ${i} at ${t}`));
  // The schedule ignores when the sender gets to it: a late sender is charged from the intended time.
  assert.is(openLoop(rate, 0, 1, start).intended(3, 99_999), start + 3);
  assert.is(closedLoop.intended(7, 42), 42);
  assert.not.ok(closedLoop.open);
});

test("Welch's t-test gives scipy's t, df and two-sided p", () => {
  // scipy.stats.ttest_ind(a, b, equal_var=False) on the same samples (b - a here, a - b there).
  const r = welch([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])!;
  assert.ok(Math.abs(r.t - 1.8973665961010275) < 1e-9, String(r.t));
  assert.ok(Math.abs(r.df - 5.882352941176471) < 1e-9, String(r.df));
  assert.ok(Math.abs(r.p - 0.10753119493062728) < 1e-6, String(r.p));
  const s = welch([100, 101, 99, 100.5], [90, 91, 89.5, 90.2])!;
  assert.ok(Math.abs(s.p - 3.37000285893741e-6) < 1e-8, String(s.p));
  assert.is(welch([1], [2, 3]), undefined, 'one run cannot be tested');
  assert.is(welch([5, 5], [5, 5])!.p, 1);
  assert.ok(Math.abs(incompleteBeta(0.5, 2, 2) - 0.5) < 1e-8);
});

function runDoc(messagesPerSecond: number, p99: number): RunDoc {
  const latency = summarize(newHistogram());
  return {
    messages: 0,
    abandoned: 0,
    seconds: 1,
    messagesPerSecond,
    bytesPerSecond: 0,
    samples: [],
    connections: { min: 0, max: 0, mean: 0, stddev: 0 },
    latency: { corrected: { ...latency, p50: p99 / 2, p99 }, uncorrected: latency },
    late: { generator: 0, window: 0, started: 0, neverStarted: 0, lateMs: 10 },
    received: null,
    generator: { eventLoopUtilization: 0, eventLoopDelayP99: 0 },
  };
}

function doc(runs: RunDoc[]): BenchDoc {
  return { runs, config: { mode: 'echo', target: 'x' } } as unknown as BenchDoc;
}

test('compare: a clear change over repeated runs is significant, noise is not, one run is unknown', () => {
  const before = doc([runDoc(100_000, 1.0), runDoc(101_000, 1.1), runDoc(99_500, 0.9)]);
  const faster = doc([runDoc(150_000, 1.0), runDoc(151_000, 1.2), runDoc(149_000, 0.8)]);
  const [rate, , p99] = compareDocs(before, faster);
  assert.is(rate!.metric, 'messages/s');
  assert.ok(Math.abs(rate!.change - 0.4975) < 0.01, String(rate!.change));
  assert.is(rate!.significant, true);
  assert.is(p99!.significant, false, 'p99 moved within its noise');
  const single = compareDocs(doc([runDoc(100_000, 1)]), doc([runDoc(200_000, 1)]));
  assert.is(single[0]!.significant, undefined);
  assert.ok(Math.abs(single[0]!.change - 1) < 1e-12);
});

test('warnings: a busy or lagging generator, sends behind schedule, a server behind the rate; none for a healthy run', () => {
  const config = { mode: 'echo', rate: 10_000, window: 16, workers: 1, inProcessServer: false } as BenchConfigDoc;
  const healthy = {
    ...runDoc(10_000, 1),
    late: { generator: 10, window: 0, started: 20_000, neverStarted: 0, lateMs: 10 },
  };
  healthy.generator = { eventLoopUtilization: 0.5, eventLoopDelayP99: 12 };
  healthy.seconds = 2;
  assert.equal(warnings(healthy, config), []);
  const busy = { ...healthy, generator: { eventLoopUtilization: 0.97, eventLoopDelayP99: 80 } };
  const [cpu, lag] = warnings(busy, config);
  assert.match(cpu!, /^generator-bound: the generator's event loop was busy 97% of the run.*\(try --workers 2\)$/);
  assert.match(lag!, /lagged 80\.0 ms \(p99\)/);
  assert.match(
    warnings(busy, { ...config, inProcessServer: true })[0]!,
    /^the in-process server shares the generator's event loop/,
  );
  const behind = { ...healthy, late: { generator: 400, window: 0, started: 20_000, neverStarted: 0, lateMs: 10 } };
  assert.match(
    warnings(behind, config)[0]!,
    /^generator-bound: 400 of 20000 sends started over 10 ms late with a window slot free/,
  );
  assert.equal(warnings(behind, { ...config, rate: null }), [], 'a closed loop has no schedule to fall behind');
  const slowServer = {
    ...healthy,
    messagesPerSecond: 6000,
    late: { generator: 0, window: 5000, started: 12_000, neverStarted: 0, lateMs: 10 },
  };
  assert.match(
    warnings(slowServer, config)[0]!,
    /^6,000 round trips\/s of the --rate 10,000: the window \(--window 16\) was full for 5000 sends/,
  );
  const stuckServer = { ...slowServer, late: { ...slowServer.late, neverStarted: 7000 } };
  assert.equal(warnings(stuckServer, config).length, 1, 'one warning says the server is behind');
  assert.match(
    warnings(stuckServer, config)[0]!,
    /^7,000 sends due in the measured time never started: the window \(--window 16\) stayed full to the end/,
  );
});

test('open-loop schedule: intended times per connection, and how many are due before a time', () => {
  // 1,000/s over 4 connections from t=100: connection 1 sends at 101, 105, 109, ...
  const s = openLoop(1000, 1, 4, 100);
  assert.equal(
    [0, 1, 2].map((k) => s.intended(k, 0)),
    [101, 105, 109],
  );
  assert.is(s.dueBefore(101), 0, 'strictly before: the first is due at 101');
  assert.is(s.dueBefore(101.5), 1);
  assert.is(s.dueBefore(109), 2);
  assert.is(s.dueBefore(50), 0, 'before the start');
  assert.is(closedLoop.dueBefore(1e9), 0, 'a closed loop has no schedule');
});

test('histogram summary: percentiles in ms, null without values; workers merge exactly', () => {
  const empty = summarize(newHistogram());
  assert.is(empty.count, 0);
  assert.is(empty.p99, null);
  assert.is(empty.max, null);
  const a = newHistogram();
  const b = newHistogram();
  for (let i = 1; i <= 99; i++) recordMs(a, 1);
  recordMs(b, 500);
  const result = (h: ReturnType<typeof newHistogram>, samples: number[]) => ({
    messages: h.count,
    abandoned: 0,
    seconds: 1,
    samples,
    perConnection: [h.count],
    corrected: h,
    uncorrected: newHistogram(),
    lateGenerator: 0,
    lateWindow: 0,
    started: h.count,
    neverStarted: 0,
    inFlight: 1,
    answered: h.count,
    eventLoopUtilization: 0.5,
    eventLoopDelayP99: 1,
  });
  const m = merge([result(a, [60, 39]), result(b, [1])]);
  assert.is(m.messages, 100);
  assert.equal(m.samples, [61], 'whole seconds every worker completed');
  assert.equal(m.perConnection, [99, 1], "each worker's connections, in order");
  assert.equal([m.inFlight, m.answered], [2, 100], 'in flight and answered on every worker');
  const s = summarize(m.corrected);
  assert.is(s.count, 100);
  assert.ok(Math.abs(s.p50! - 1) < 0.01, String(s.p50));
  assert.ok(Math.abs(s.max! - 500) < 1, String(s.max));
  assert.ok(s['p99.9']! > 400, 'the one slow message is the tail');
  assert.equal(shares(10, 3), [4, 3, 3]);
  assert.equal(shares(2, 4), [1, 1, 0, 0]);
});

test('the SVG percentile plot is one svg element with a path per line', () => {
  const h = newHistogram();
  for (let i = 1; i <= 1000; i++) recordMs(h, i / 100);
  const svg = percentilePlot('a <title>', [
    { label: 'corrected', color: 'red', points: percentileCurve(h) },
    { label: 'empty', color: 'blue', points: [] },
  ]);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  assert.is(svg.match(/<path /g)!.length, 1);
  assert.match(svg, /a &#60;title&#62;/);
  assert.not.match(svg, /NaN/);
});

test.run();
