// Draws bench/results/chart.svg from the benchmark's JSON, with no charting dependency.
//   node bench/chart.mjs [results.json] [chart.svg]
// Left panel: each peer's speed relative to the hand-rolled baseline per workload (msgs/s, or for
// the ping-pong raw p50 / p50), higher is better. Right panel: peak RSS of (e) and (f).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const COLORS = {
  raw: '#7f7f7f',
  'raw-onread': '#bdbdbd',
  'channel-await': '#08519c',
  'channel-release': '#3182bd',
  channel: '#1f77b4',
  'channel-pair': '#6baed6',
  rpc: '#17becf',
  server: '#0b3d91',
  zeromq: '#d62728',
  ws: '#2ca02c',
  axon: '#ff7f0e',
  python: '#9467bd',
};
const MiB = 1024 * 1024;

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (x, d) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

export function renderChart(report) {
  const peers = report.peers.filter((p) => report.rows.some((r) => r.peer === p.id));
  const ok = report.rows.filter((r) => !r.error);
  const bar = 11;
  const gap = 10;
  const W = 1000;
  const leftX = 70;
  const leftW = 470;
  const rightX = 640;
  const rightW = 320;
  const top = 70;
  const parts = [];
  let y = top;

  // Left: ratio to baseline per workload.
  const speedWorkloads = report.workloads.filter((w) => w.id !== 'f' && w.kind !== 'rpc'); // (g)'s ratios are to Channel, not to the socket
  const cap = 3;
  const xOf = (ratio) => leftX + (Math.min(ratio, cap) / cap) * leftW;
  for (const w of speedWorkloads) {
    const rows = peers.map((p) => ok.find((r) => r.workload === w.id && r.peer === p.id)).filter(Boolean);
    if (rows.length === 0) continue;
    parts.push(
      `<text x="${leftX - 8}" y="${y + (rows.length * bar) / 2 + 4}" text-anchor="end" font-weight="bold">(${w.id})</text>`,
    );
    for (const r of rows) {
      if (r.ratio === undefined) continue;
      const x2 = xOf(r.ratio);
      parts.push(
        `<rect x="${leftX}" y="${y}" width="${(x2 - leftX).toFixed(1)}" height="${bar - 2}" fill="${COLORS[r.peer] ?? '#333'}"><title>${esc(r.peer)}: ${num(r.ratio, 2)}x</title></rect>`,
      );
      parts.push(
        `<text x="${x2 + 3}" y="${y + bar - 3}" font-size="9">${num(r.ratio, 2)}x${r.ratio > cap ? ' &#8594;' : ''}</text>`,
      );
      y += bar;
    }
    y += gap;
  }
  const leftBottom = y;
  for (const t of [0, 0.5, 1, 1.5, 2, 2.5, 3]) {
    const x = xOf(t);
    parts.push(
      `<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${leftBottom}" stroke="${t === 1 ? '#000' : '#ddd'}" stroke-dasharray="${t === 1 ? '' : '2,2'}"/>`,
    );
    parts.push(`<text x="${x}" y="${leftBottom + 14}" font-size="10" text-anchor="middle">${t}x</text>`);
  }
  parts.push(
    `<text x="${leftX}" y="${top - 14}" font-weight="bold">Speed relative to the hand-rolled socket (higher is better)</text>`,
  );

  // Right: peak RSS of (e) and (f), the larger of the two sides.
  const rssRows = ok.filter((r) => r.workload === 'e' || r.workload === 'f');
  const maxRss = Math.max(100 * MiB, ...rssRows.map((r) => Math.max(r.rssSend ?? 0, r.rssRecv ?? 0)));
  const rxOf = (b) => rightX + (b / maxRss) * rightW;
  let ry = top;
  for (const wid of ['e', 'f']) {
    const rows = peers.map((p) => rssRows.find((r) => r.workload === wid && r.peer === p.id)).filter(Boolean);
    if (rows.length === 0) continue;
    parts.push(
      `<text x="${rightX - 8}" y="${ry + (rows.length * bar) / 2 + 4}" text-anchor="end" font-weight="bold">(${wid})</text>`,
    );
    for (const r of rows) {
      const peak = Math.max(r.rssSend, r.rssRecv);
      parts.push(
        `<rect x="${rightX}" y="${ry}" width="${(rxOf(peak) - rightX).toFixed(1)}" height="${bar - 2}" fill="${COLORS[r.peer] ?? '#333'}"><title>${esc(r.peer)}: ${num(peak / MiB, 0)} MiB</title></rect>`,
      );
      parts.push(`<text x="${rxOf(peak) + 3}" y="${ry + bar - 3}" font-size="9">${num(peak / MiB, 0)}</text>`);
      ry += bar;
    }
    ry += gap;
  }
  if (ry > top) {
    const e = rssRows.find((r) => r.workload === 'e');
    if (e) {
      const limit = 1.3 * e.size + 50 * MiB;
      const x = rxOf(limit);
      parts.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${ry}" stroke="#c00" stroke-dasharray="4,2"/>`);
      parts.push(
        `<text x="${x}" y="${ry + 14}" font-size="9" fill="#c00" text-anchor="middle">(e) limit ${num(limit / MiB, 0)}</text>`,
      );
    }
    const x100 = rxOf(100 * MiB);
    parts.push(`<line x1="${x100}" y1="${top - 4}" x2="${x100}" y2="${ry}" stroke="#888" stroke-dasharray="2,2"/>`);
    parts.push(`<text x="${x100}" y="${ry + 26}" font-size="9" fill="#555" text-anchor="middle">(f) limit 100</text>`);
    parts.push(`<text x="${rightX}" y="${top - 14}" font-weight="bold">Peak RSS, larger side (MiB)</text>`);
  }

  // Legend and title.
  const bottom = Math.max(leftBottom + 30, ry + 40);
  let lx = leftX;
  for (const p of peers) {
    parts.push(`<rect x="${lx}" y="${bottom}" width="10" height="10" fill="${COLORS[p.id] ?? '#333'}"/>`);
    parts.push(`<text x="${lx + 14}" y="${bottom + 9}" font-size="10">${esc(p.id)}</text>`);
    lx += 24 + p.id.length * 6.5;
  }
  const m = report.machine;
  const title = `msgchannel benchmark${report.quick ? ' (quick)' : ''}: Node ${m.node}, ${m.cpus} cores, loopback, ${report.date.slice(0, 10)}`;
  const H = bottom + 24;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${leftX}" y="24" font-size="14" font-weight="bold">${esc(title)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const here = dirname(fileURLToPath(import.meta.url));
  const input = process.argv[2] ?? join(here, 'results', 'results.json');
  const output = process.argv[3] ?? join(dirname(input), 'chart.svg');
  writeFileSync(output, renderChart(JSON.parse(readFileSync(input, 'utf8'))));
  console.log(`wrote ${output}`);
}
