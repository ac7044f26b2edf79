// A dependency-free SVG line chart for bench/RESULTS.md (GitHub shows <img src="x.svg">).
// Output is deterministic (no ids, no randomness, coordinates rounded) so regenerated charts
// only change in git when the numbers do.

export interface ChartSeries {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  readonly dashed?: boolean;
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly ChartSeries[];
  readonly yLog?: boolean; // log10 y axis (latency spans 10 us .. 100 ms)
  readonly diagonal?: boolean; // thin grey y = x reference line (delivered == offered)
  readonly width?: number; // default 760
  readonly height?: number; // default 420
}

// Okabe-Ito, reordered so that the hard-to-see yellow on white comes last.
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
const FONT = 'font-family="sans-serif"';

/** One decimal place is plenty for pixels and keeps the bytes stable. */
const r = (v: number): string => String(Math.round(v * 10) / 10);

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** A rough width of 12px sans-serif text, erring wide: enough to keep the legend inside the image. */
function textWidth(text: string): number {
  let w = 0;
  for (const c of text) w += /[MWmw@%]/.test(c) ? 12 : /[A-Z&]/.test(c) ? 9 : /[ijlft.,:;|!' ()]/.test(c) ? 4 : 7;
  return w;
}

/** 1500000 -> "1.5M", 50000 -> "50k", 0.25 -> "0.25". */
export function compactNumber(v: number): string {
  const trim = (x: number): string => String(Number(x.toPrecision(4)));
  const a = Math.abs(v);
  if (a >= 1e9) return `${trim(v / 1e9)}G`;
  if (a >= 1e6) return `${trim(v / 1e6)}M`;
  if (a >= 1e3) return `${trim(v / 1e3)}k`;
  return trim(v);
}

interface Axis {
  readonly lo: number;
  readonly hi: number;
  readonly ticks: readonly number[];
  readonly minor: readonly number[]; // unlabelled gridlines (log axes only)
  readonly log: boolean;
}

/** A linear axis from 0 (or the data minimum if negative) with a 1/2/2.5/5 x 10^k step. */
function linearAxis(min: number, max: number): Axis {
  let lo = Math.min(0, min);
  let hi = Math.max(0, max);
  if (hi === lo) hi = lo + 1;
  const raw = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  const step = (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  // Multiply rather than accumulate so that 0.1 + 0.2 style drift cannot creep into labels.
  for (let i = 0; lo + i * step <= hi + step / 1e6; i++) ticks.push(Number((lo + i * step).toPrecision(12)));
  return { lo, hi, ticks, minor: [], log: false };
}

/** Whole decades around the data, with light gridlines at 2..9 within each decade. */
function logAxis(min: number, max: number): Axis {
  const a = Math.floor(Math.log10(min));
  let b = Math.ceil(Math.log10(max));
  if (b === a) b = a + 1;
  const ticks: number[] = [];
  const minor: number[] = [];
  for (let e = a; e <= b; e++) {
    ticks.push(Number((10 ** e).toPrecision(12)));
    if (e < b) for (let m = 2; m <= 9; m++) minor.push(m * 10 ** e);
  }
  return { lo: 10 ** a, hi: 10 ** b, ticks, minor, log: true };
}

/** Sorted points with unusable ones replaced by null, so the line breaks there. */
function clean(s: ChartSeries, yLog: boolean): ([number, number] | null)[] {
  return [...s.points]
    .filter(([x]) => Number.isFinite(x))
    .sort((p, q) => p[0] - q[0])
    .map(([x, y]) => (Number.isFinite(y) && (!yLog || y > 0) ? [x, y] : null));
}

/** A small marker; the shape varies by series too, so colour is not the only cue. */
function marker(i: number, x: number, y: number, colour: string): string {
  const s = 3.5;
  const fill = `fill="${colour}" class="marker"`;
  switch (i % 4) {
    case 0: return `<circle cx="${r(x)}" cy="${r(y)}" r="${s}" ${fill}/>`;
    case 1: return `<rect x="${r(x - s)}" y="${r(y - s)}" width="${2 * s}" height="${2 * s}" ${fill}/>`;
    case 2: return `<path d="M${r(x)} ${r(y - s - 1)}L${r(x + s + 0.5)} ${r(y + s)}L${r(x - s - 0.5)} ${r(y + s)}Z" ${fill}/>`;
    default: return `<path d="M${r(x)} ${r(y - s - 1)}L${r(x + s + 1)} ${r(y)}L${r(x)} ${r(y + s + 1)}L${r(x - s - 1)} ${r(y)}Z" ${fill}/>`;
  }
}

export function renderLineChart(options: ChartOptions): string {
  const width = options.width ?? 760;
  const height = options.height ?? 420;
  const yLog = options.yLog === true;
  const data = options.series.map((s) => clean(s, yLog));
  const valid = data.flat().filter((p): p is [number, number] => p !== null);
  const empty = valid.length === 0;

  // Domains: the data, widened so the y = x line spans the plot when it is asked for.
  const xs = valid.map((p) => p[0]);
  const ys = valid.map((p) => p[1]);
  if (options.diagonal && !yLog) ys.push(...xs);
  const xAxis = empty ? linearAxis(0, 1) : linearAxis(Math.min(...xs), Math.max(...xs));
  const yAxis = yLog
    ? empty ? logAxis(1, 10) : logAxis(Math.min(...ys), Math.max(...ys))
    : empty ? linearAxis(0, 1) : linearAxis(Math.min(...ys), Math.max(...ys));

  // Layout: legend in its own column to the right, sized to the longest name, so it never covers data.
  const labels = options.series.map((s, i) => s.name + (data[i]!.some((p) => p !== null) ? "" : " (no data)"));
  const legendRows = options.diagonal ? [...labels, "y = x"] : labels;
  const legendW = labels.length === 0 ? 0 : 40 + Math.max(...legendRows.map(textWidth));
  const left = 64;
  const top = 44;
  const right = width - 16 - legendW;
  const bottom = height - 52;
  const px = (x: number): number => left + ((x - xAxis.lo) / (xAxis.hi - xAxis.lo)) * (right - left);
  const py = (y: number): number =>
    yAxis.log
      ? bottom - ((Math.log10(y) - Math.log10(yAxis.lo)) / (Math.log10(yAxis.hi) - Math.log10(yAxis.lo))) * (bottom - top)
      : bottom - ((y - yAxis.lo) / (yAxis.hi - yAxis.lo)) * (bottom - top);

  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">`,
    `<title>${esc(options.title)}</title>`,
    // An explicit white background: GitHub's dark mode would otherwise show dark text on dark.
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${r(width / 2)}" y="24" text-anchor="middle" font-size="16" font-weight="bold" ${FONT} fill="#222222">${esc(options.title)}</text>`,
  ];

  // Gridlines and tick labels.
  const grid: string[] = ['<g stroke-width="1" fill="none">'];
  for (const y of yAxis.minor) grid.push(`<line x1="${left}" y1="${r(py(y))}" x2="${r(right)}" y2="${r(py(y))}" stroke="#f0f0f0"/>`);
  for (const x of xAxis.ticks) grid.push(`<line x1="${r(px(x))}" y1="${top}" x2="${r(px(x))}" y2="${bottom}" stroke="#dddddd"/>`);
  for (const y of yAxis.ticks) grid.push(`<line x1="${left}" y1="${r(py(y))}" x2="${r(right)}" y2="${r(py(y))}" stroke="#dddddd"/>`);
  grid.push(`<rect x="${left}" y="${top}" width="${r(right - left)}" height="${bottom - top}" stroke="#888888"/>`, "</g>");
  out.push(...grid);
  out.push(`<g font-size="11" ${FONT} fill="#444444">`);
  for (const x of xAxis.ticks) out.push(`<text x="${r(px(x))}" y="${bottom + 16}" text-anchor="middle">${esc(compactNumber(x))}</text>`);
  for (const y of yAxis.ticks) out.push(`<text x="${left - 6}" y="${r(py(y) + 4)}" text-anchor="end">${esc(compactNumber(y))}</text>`);
  out.push("</g>");
  out.push(
    `<text x="${r((left + right) / 2)}" y="${height - 14}" text-anchor="middle" font-size="12" ${FONT} fill="#222222">${esc(options.xLabel)}</text>`,
    `<text transform="translate(16 ${r((top + bottom) / 2)}) rotate(-90)" text-anchor="middle" font-size="12" ${FONT} fill="#222222">${esc(options.yLabel)}</text>`,
  );

  let diagonalDrawn = false;
  if (options.diagonal && !empty) {
    // Sample y = x across the shared range; on a log y axis it is a curve, so take many samples.
    const a = Math.max(xAxis.lo, yAxis.lo);
    const b = Math.min(xAxis.hi, yAxis.hi);
    const n = yLog ? 64 : 1;
    const pts: string[] = [];
    for (let i = 0; i <= n && b > a; i++) {
      const v = a + ((b - a) * i) / n;
      if (v > 0 || !yLog) pts.push(`${r(px(v))} ${r(py(v))}`);
    }
    diagonalDrawn = pts.length >= 2;
    if (diagonalDrawn) out.push(`<path class="diagonal" d="M${pts.join("L")}" fill="none" stroke="#aaaaaa" stroke-width="1"/>`);
  }

  data.forEach((points, i) => {
    const s = options.series[i]!;
    const colour = PALETTE[i % PALETTE.length]!;
    // A new "M" after every gap: skipped points break the line instead of bridging it.
    let d = "";
    let pen = false;
    for (const p of points) {
      if (p === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${r(px(p[0]))} ${r(py(p[1]))}`;
      pen = true;
    }
    out.push(`<g class="series" data-name="${esc(s.name)}">`);
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : "";
    if (d) out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`);
    for (const p of points) if (p) out.push(marker(i, px(p[0]), py(p[1]), colour));
    out.push("</g>");
  });

  if (empty) {
    out.push(`<text x="${r((left + right) / 2)}" y="${r((top + bottom) / 2)}" text-anchor="middle" font-size="14" ${FONT} fill="#888888">no data</text>`);
  }

  // Legend: one row per series, sample line + marker + name; the reference line gets a row too.
  out.push(`<g class="legend" font-size="12" ${FONT} fill="#222222">`);
  if (diagonalDrawn) {
    const y = top + 8 + labels.length * 20;
    out.push(`<line x1="${r(right + 16)}" y1="${y}" x2="${r(right + 40)}" y2="${y}" stroke="#aaaaaa" stroke-width="1"/>`);
    out.push(`<text x="${r(right + 46)}" y="${y + 4}">y = x</text>`);
  }
  labels.forEach((label, i) => {
    const x = right + 16;
    const y = top + 8 + i * 20;
    const colour = PALETTE[i % PALETTE.length]!;
    const dash = options.series[i]!.dashed ? ' stroke-dasharray="6 4"' : "";
    out.push(`<line x1="${r(x)}" y1="${y}" x2="${r(x + 24)}" y2="${y}" stroke="${colour}" stroke-width="2"${dash}/>`);
    out.push(marker(i, x + 12, y, colour));
    out.push(`<text x="${r(x + 30)}" y="${y + 4}">${esc(label)}</text>`);
  });
  out.push("</g>", "</svg>", "");
  return out.join("\n");
}
