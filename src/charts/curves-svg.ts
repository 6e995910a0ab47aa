// A job's loss curves (training and validation loss per epoch) as a standalone SVG document.
// Pure: metrics in, a string out. Values that cannot be drawn (NaN, ±Infinity, and on a log scale
// zero or negative) are left out of their curve, which breaks there and starts again after them.

export interface CurvePoint {
  epoch: number;
  train_loss: number;
  val_loss: number | null;
}

export interface CurvesSvgOptions {
  width?: number;
  height?: number;
  /** Logarithmic loss axis. */
  log?: boolean;
  /** A heading drawn above the plot (escaped). */
  title?: string;
  /** The epoch to mark as best; by default the one with the lowest finite validation loss. */
  bestEpoch?: number | null;
  /** Extend the epoch axis to this many epochs (e.g. the config's `epochs` while a job runs). */
  totalEpochs?: number;
}

export const CURVE_COLOURS = { train: "#1f77b4", validation: "#ff7f0e", best: "#2ca02c" } as const;

const FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\"";

/** Escapes text for XML character data and attribute values. */
export function escapeXml(text: string): string {
  // Characters XML 1.0 does not allow at all are dropped rather than escaped.
  // eslint-disable-next-line no-control-regex
  const allowed = text.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "");
  return allowed.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** A coordinate with at most two decimals, never `-0`. */
function coord(v: number): string {
  const r = Math.round(v * 100) / 100;
  return Object.is(r, -0) ? "0" : String(r);
}

/** A short label for an axis value: 3 significant digits, exponent form for very small or large. */
export function formatValue(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    const [m, e] = v.toExponential(2).split("e");
    return `${String(Number(m))}e${Number(e)}`;
  }
  return String(Number(v.toPrecision(3)));
}

/** "Nice" linear ticks (1, 2, 5 × 10^k steps) covering [min, max], about `count` of them. */
export function linearTicks(min: number, max: number, count = 5): { ticks: number[]; lo: number; hi: number } {
  if (!(max > min)) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; lo + i * step <= hi + step * 1e-9; i++) ticks.push(Number((lo + i * step).toPrecision(12)));
  return { ticks, lo, hi };
}

/** Log ticks: powers of ten, or 1-2-5 multiples when the range is under about two decades. */
export function logTicks(min: number, max: number): { ticks: number[]; lo: number; hi: number } {
  let e0 = Math.floor(Math.log10(min));
  let e1 = Math.ceil(Math.log10(max));
  if (e1 === e0) e1 = e0 + 1;
  const ticks: number[] = [];
  const multiples = e1 - e0 <= 2 ? [1, 2, 5] : [1];
  for (let e = e0; e <= e1; e++) {
    for (const m of multiples) {
      const t = Number((m * 10 ** e).toPrecision(12));
      if (e === e1 && m > 1) break;
      ticks.push(t);
    }
  }
  // Trim to the decades the data spans, keeping one tick at or beyond each end.
  let first = 0;
  while (first + 1 < ticks.length && ticks[first + 1] <= min) first++;
  let last = ticks.length - 1;
  while (last - 1 >= 0 && ticks[last - 1] >= max) last--;
  const kept = ticks.slice(first, last + 1);
  if (kept.length < 2) {
    e0 = Math.floor(Math.log10(min));
    return { ticks: [10 ** e0, 10 ** (e0 + 1)], lo: 10 ** e0, hi: 10 ** (e0 + 1) };
  }
  return { ticks: kept, lo: kept[0], hi: kept[kept.length - 1] };
}

/** Integer epoch ticks from 1 (or 0) to `maxEpoch`, at a nice step. */
function epochTicks(maxEpoch: number, count: number): { ticks: number[]; lo: number; hi: number } {
  const hi = Math.max(2, maxEpoch);
  const raw = (hi - 1) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(Math.max(1, raw)));
  const step = Math.max(1, [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag);
  const ticks = [1];
  for (let t = step; t <= hi; t += step) if (t > 1) ticks.push(t);
  return { ticks, lo: 1, hi };
}

interface Series {
  name: "train" | "validation";
  label: string;
  colour: string;
  /** `breakBefore`: a value that could not be drawn lies between this point and the previous one. */
  points: { epoch: number; value: number; breakBefore: boolean }[];
  skipped: number;
  pendingBreak: boolean;
}

function plottable(v: number | null, log: boolean): v is number {
  return typeof v === "number" && Number.isFinite(v) && (!log || v > 0);
}

export function renderCurvesSvg(metrics: readonly CurvePoint[], options: CurvesSvgOptions = {}): string {
  const width = Math.round(options.width ?? 800);
  const height = Math.round(options.height ?? 450);
  const log = options.log === true;
  const sorted = [...metrics].filter((m) => Number.isInteger(m.epoch)).sort((a, b) => a.epoch - b.epoch);

  const series: Series[] = [
    { name: "train", label: "training loss", colour: CURVE_COLOURS.train, points: [], skipped: 0, pendingBreak: false },
    { name: "validation", label: "validation loss", colour: CURVE_COLOURS.validation, points: [], skipped: 0, pendingBreak: false },
  ];
  const add = (s: Series, epoch: number, value: number | null) => {
    if (plottable(value, log)) {
      s.points.push({ epoch, value, breakBefore: s.pendingBreak });
      s.pendingBreak = false;
    } else {
      s.skipped++;
      s.pendingBreak = true;
    }
  };
  for (const m of sorted) {
    add(series[0], m.epoch, m.train_loss);
    // An epoch that did not validate has no validation point and does not break the curve.
    if (m.val_loss !== null && m.val_loss !== undefined) add(series[1], m.epoch, m.val_loss);
  }

  let best: { epoch: number; value: number } | null = null;
  if (options.bestEpoch != null) {
    const p = series[1].points.find((q) => q.epoch === options.bestEpoch);
    best = p ?? null;
  } else {
    for (const p of series[1].points) if (best === null || p.value < best.value) best = p;
  }

  const title = options.title ?? "Loss per epoch";
  const margin = { top: title ? 44 : 20, right: 24, bottom: 56, left: 72 };
  const plotW = Math.max(10, width - margin.left - margin.right);
  const plotH = Math.max(10, height - margin.top - margin.bottom);

  const values = series.flatMap((s) => s.points.map((p) => p.value));
  const maxEpoch = Math.max(options.totalEpochs ?? 0, ...sorted.map((m) => m.epoch), 1);
  const xAxis = epochTicks(maxEpoch, Math.max(2, Math.floor(plotW / 80)));
  const yCount = Math.max(2, Math.floor(plotH / 60));
  let yAxis: { ticks: number[]; lo: number; hi: number };
  if (values.length === 0) yAxis = log ? { ticks: [0.1, 1, 10], lo: 0.1, hi: 10 } : linearTicks(0, 1, yCount);
  else {
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    yAxis = log ? logTicks(lo, hi) : linearTicks(lo, hi, yCount);
  }

  const x = (epoch: number) => margin.left + ((epoch - xAxis.lo) / (xAxis.hi - xAxis.lo)) * plotW;
  const y = (v: number) => {
    const t = log
      ? (Math.log10(v) - Math.log10(yAxis.lo)) / (Math.log10(yAxis.hi) - Math.log10(yAxis.lo))
      : (v - yAxis.lo) / (yAxis.hi - yAxis.lo);
    return margin.top + (1 - t) * plotH;
  };

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `role="img" aria-label="${escapeXml(title || "Loss per epoch")}" data-scale="${log ? "log" : "linear"}">`,
  );
  out.push(`<title>${escapeXml(title || "Loss per epoch")}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (title) {
    out.push(`<text x="${margin.left}" y="26" ${FONT} font-size="16" font-weight="600" fill="#222">${escapeXml(title)}</text>`);
  }

  // Grid, ticks and tick labels.
  out.push('<g class="axis y-axis" stroke="#ddd" stroke-width="1">');
  for (const t of yAxis.ticks) {
    const ty = coord(y(t));
    out.push(`<line x1="${margin.left}" y1="${ty}" x2="${margin.left + plotW}" y2="${ty}"/>`);
  }
  out.push("</g>");
  out.push(`<g class="tick-labels y-labels" ${FONT} font-size="12" fill="#444" text-anchor="end">`);
  for (const t of yAxis.ticks) out.push(`<text x="${margin.left - 8}" y="${coord(y(t) + 4)}">${escapeXml(formatValue(t))}</text>`);
  out.push("</g>");
  out.push('<g class="axis x-axis" stroke="#444" stroke-width="1">');
  for (const t of xAxis.ticks) {
    const tx = coord(x(t));
    out.push(`<line x1="${tx}" y1="${margin.top + plotH}" x2="${tx}" y2="${margin.top + plotH + 5}"/>`);
  }
  out.push("</g>");
  out.push(`<g class="tick-labels x-labels" ${FONT} font-size="12" fill="#444" text-anchor="middle">`);
  for (const t of xAxis.ticks) out.push(`<text x="${coord(x(t))}" y="${margin.top + plotH + 20}">${t}</text>`);
  out.push("</g>");
  out.push(
    `<rect class="frame" x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444" stroke-width="1"/>`,
  );
  out.push(`<text class="axis-label" x="${coord(margin.left + plotW / 2)}" y="${height - 12}" ${FONT} font-size="13" fill="#222" text-anchor="middle">epoch</text>`);
  const yLabel = log ? "loss (log scale)" : "loss";
  const ly = coord(margin.top + plotH / 2);
  out.push(`<text class="axis-label" x="16" y="${ly}" transform="rotate(-90 16 ${ly})" ${FONT} font-size="13" fill="#222" text-anchor="middle">${yLabel}</text>`);

  // The curves: one path each, one point per plotted epoch; a gap starts a new subpath.
  for (const s of series) {
    if (s.points.length === 0) continue;
    const parts = s.points.map((p, i) => `${i === 0 || p.breakBefore ? "M" : "L"}${coord(x(p.epoch))} ${coord(y(p.value))}`);
    out.push(
      `<path class="curve ${s.name}" data-curve="${s.name}" data-points="${s.points.length}" d="${parts.join(" ")}" ` +
        `fill="none" stroke="${s.colour}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>`,
    );
    // A lone point (a subpath of its own) draws nothing as a line: give it a dot.
    s.points.forEach((p, i) => {
      const alone = (i === 0 || p.breakBefore) && (i === s.points.length - 1 || s.points[i + 1].breakBefore);
      if (alone) out.push(`<circle class="dot ${s.name}" cx="${coord(x(p.epoch))}" cy="${coord(y(p.value))}" r="3" fill="${s.colour}"/>`);
    });
  }

  if (best) {
    const bx = coord(x(best.epoch));
    const by = coord(y(best.value));
    out.push(`<g class="best-epoch" data-epoch="${best.epoch}">`);
    out.push(`<line x1="${bx}" y1="${margin.top}" x2="${bx}" y2="${margin.top + plotH}" stroke="${CURVE_COLOURS.best}" stroke-width="1" stroke-dasharray="4 3"/>`);
    out.push(`<circle cx="${bx}" cy="${by}" r="5" fill="none" stroke="${CURVE_COLOURS.best}" stroke-width="2"/>`);
    out.push("</g>");
  }

  if (sorted.length === 0) {
    out.push(
      `<text class="empty" x="${coord(margin.left + plotW / 2)}" y="${coord(margin.top + plotH / 2)}" ${FONT} font-size="14" fill="#666" text-anchor="middle">No epochs recorded yet</text>`,
    );
  }

  // Legend, inside the plot's top right corner.
  const legend: { label: string; colour: string; dashed?: boolean; kind: string }[] = series.map((s) => ({
    kind: s.name,
    colour: s.colour,
    label: s.label + (s.skipped > 0 ? ` (${s.skipped} not drawable)` : s.points.length === 0 && s.name === "validation" && sorted.length > 0 ? " (none yet)" : ""),
  }));
  if (best) legend.push({ kind: "best", colour: CURVE_COLOURS.best, dashed: true, label: `best: epoch ${best.epoch} (${formatValue(best.value)})` });
  const legendW = 12 + Math.max(...legend.map((l) => l.label.length)) * 7 + 32;
  const lx = margin.left + plotW - legendW - 8;
  const ly0 = margin.top + 8;
  out.push(`<g class="legend" ${FONT} font-size="12" fill="#222">`);
  out.push(`<rect x="${coord(lx)}" y="${ly0}" width="${coord(legendW)}" height="${legend.length * 18 + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#ccc"/>`);
  legend.forEach((l, i) => {
    const rowY = ly0 + 16 + i * 18;
    out.push(
      `<line x1="${coord(lx + 8)}" y1="${rowY - 4}" x2="${coord(lx + 32)}" y2="${rowY - 4}" stroke="${l.colour}" stroke-width="2"${l.dashed ? ' stroke-dasharray="4 3"' : ""}/>`,
    );
    out.push(`<text class="legend-${l.kind}" x="${coord(lx + 38)}" y="${rowY}">${escapeXml(l.label)}</text>`);
  });
  out.push("</g>");
  out.push("</svg>");
  return out.join("\n") + "\n";
}
