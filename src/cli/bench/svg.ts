/**
 * `--svg FILE`: the latency distribution as a percentile plot, HdrHistogram's usual view: the
 * x axis is the percentile on a log scale of 1 / (1 - p), so the tail (99%, 99.9%, 99.99%) gets as
 * much room as the median; the y axis is the latency in ms. Open loop draws both the corrected and
 * the uncorrected line, which shows what coordinated omission hides.
 */

export interface Line {
  label: string;
  color: string;
  /** [percentile 0-100, latency ms] points, in order. */
  points: [number, number][];
}

const W = 720;
const H = 400;
const PAD = { left: 70, right: 20, top: 40, bottom: 50 };
/** The plot ends at 99.999%: 1 / (1 - p) = 1e5. */
const X_DECADES = 5;

const escape = (s: string): string => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

function x(p: number): number {
  const decades = Math.min(X_DECADES, -Math.log10(Math.max(1e-5, 1 - p / 100)));
  return PAD.left + (decades / X_DECADES) * (W - PAD.left - PAD.right);
}

export function percentilePlot(title: string, lines: Line[]): string {
  const top = Math.max(1e-3, ...lines.flatMap((l) => l.points.map(([, v]) => v)));
  const y = (v: number): number => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escape(title)}</text>`,
  ];
  for (const [p, label] of [
    [0, '0%'],
    [90, '90%'],
    [99, '99%'],
    [99.9, '99.9%'],
    [99.99, '99.99%'],
    [99.999, '99.999%'],
  ] as const) {
    parts.push(
      `<line x1="${x(p)}" y1="${PAD.top}" x2="${x(p)}" y2="${H - PAD.bottom}" stroke="#ddd"/>`,
      `<text x="${x(p)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${label}</text>`,
    );
  }
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    parts.push(
      `<line x1="${PAD.left}" y1="${y(v)}" x2="${W - PAD.right}" y2="${y(v)}" stroke="#eee"/>`,
      `<text x="${PAD.left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toPrecision(3)}</text>`,
    );
  }
  parts.push(
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle">percentile</text>`,
    `<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">latency (ms)</text>`,
  );
  lines.forEach((l, i) => {
    if (l.points.length === 0) return;
    const d = l.points.map(([p, v], j) => `${j === 0 ? 'M' : 'L'}${x(p).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(
      `<path d="${d}" fill="none" stroke="${l.color}" stroke-width="2"/>`,
      `<text x="${PAD.left + 10}" y="${PAD.top + 16 + i * 16}" fill="${l.color}">${escape(l.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
