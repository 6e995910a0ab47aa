// The server-rendered loss curves: the output must parse as XML (an SVG document) with one path per
// curve and one point per plotted epoch, on linear and log scales, and survive odd values and text.
import { describe, expect, it } from "vitest";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { escapeXml, linearTicks, logTicks, renderCurvesSvg, type CurvePoint } from "../../../src/charts/curves-svg.js";

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", isArray: (name) => ["path", "g", "text", "line", "circle"].includes(name) });

function parse(svg: string) {
  const valid = XMLValidator.validate(svg);
  expect(valid, JSON.stringify(valid)).toBe(true);
  const doc = parser.parse(svg);
  expect(doc.svg).toBeDefined();
  expect(doc.svg.xmlns).toBe("http://www.w3.org/2000/svg");
  return doc.svg;
}

/** Every element called `name` anywhere under `node`. */
function all(node: any, name: string): any[] {
  const found: any[] = [];
  const walk = (n: any) => {
    if (n === null || typeof n !== "object") return;
    for (const [k, v] of Object.entries(n)) {
      if (k === name) found.push(...(Array.isArray(v) ? v : [v]));
      if (Array.isArray(v)) v.forEach(walk);
      else walk(v);
    }
  };
  walk(node);
  return found;
}

function curves(svg: any): Record<string, any> {
  return Object.fromEntries(all(svg, "path").filter((p) => p["data-curve"]).map((p) => [p["data-curve"], p]));
}

/** The path's points: [command, x, y] per point. */
function points(d: string): { cmd: string; x: number; y: number }[] {
  const out = [...d.matchAll(/([ML])\s*(-?[\d.]+)[ ,](-?[\d.]+)/g)].map((m) => ({ cmd: m[1], x: Number(m[2]), y: Number(m[3]) }));
  // Nothing else in the data: only M/L commands with two finite numbers each.
  expect(d.replace(/([ML])\s*(-?[\d.]+)[ ,](-?[\d.]+)/g, "").trim()).toBe("");
  for (const p of out) expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
  return out;
}

function run(n: number, f: (e: number) => Partial<CurvePoint> = () => ({})): CurvePoint[] {
  return Array.from({ length: n }, (_, i) => {
    const epoch = i + 1;
    return { epoch, train_loss: 2 / epoch, val_loss: 2.2 / epoch + 0.01 * epoch, ...f(epoch) };
  });
}

function texts(svg: any): string[] {
  return all(svg, "text").map((t) => String(typeof t === "object" ? t["#text"] ?? "" : t));
}

describe("renderCurvesSvg", () => {
  it("draws one path per curve with one point per epoch, epochs left to right, lower loss lower", () => {
    const metrics = run(12);
    const svg = parse(renderCurvesSvg(metrics));
    const c = curves(svg);
    expect(Object.keys(c).sort()).toEqual(["train", "validation"]);
    for (const name of ["train", "validation"]) {
      const pts = points(c[name].d);
      expect(pts).toHaveLength(12);
      expect(Number(c[name]["data-points"])).toBe(12);
      expect(pts[0].cmd).toBe("M");
      expect(pts.slice(1).every((p) => p.cmd === "L")).toBe(true);
      for (let i = 1; i < pts.length; i++) expect(pts[i].x).toBeGreaterThan(pts[i - 1].x);
    }
    // Training loss falls every epoch: SVG's y grows downwards.
    const train = points(c.train.d);
    for (let i = 1; i < train.length; i++) expect(train[i].y).toBeGreaterThan(train[i - 1].y);
    // Axes: tick labels on both, the axis names, and a legend naming both curves.
    const t = texts(svg);
    expect(t).toContain("epoch");
    expect(t).toContain("loss");
    expect(t).toContain("training loss");
    expect(t).toContain("validation loss");
    expect(t).toContain("1");
    expect(all(svg, "g").find((g) => g.class === "tick-labels y-labels")?.text.length).toBeGreaterThanOrEqual(2);
  });

  it("marks the epoch with the lowest validation loss, or the one given", () => {
    const metrics = run(20); // val = 2.2/e + 0.01e is lowest at e = 15 (sqrt(220) ≈ 14.8)
    const best = all(parse(renderCurvesSvg(metrics)), "g").find((g) => g.class === "best-epoch");
    expect(best["data-epoch"]).toBe("15");
    const given = all(parse(renderCurvesSvg(metrics, { bestEpoch: 7 })), "g").find((g) => g.class === "best-epoch");
    expect(given["data-epoch"]).toBe("7");
    expect(texts(parse(renderCurvesSvg(metrics, { bestEpoch: 7 }))).some((s) => s.startsWith("best: epoch 7"))).toBe(true);
  });

  it("draws validation only over the epochs that validated", () => {
    const metrics = run(10, (e) => ({ val_loss: e % 3 === 0 || e === 10 ? 1 / e : null }));
    const c = curves(parse(renderCurvesSvg(metrics)));
    expect(points(c.train.d)).toHaveLength(10);
    const val = points(c.validation.d);
    expect(val).toHaveLength(4); // epochs 3, 6, 9, 10
    // Epochs without validation do not break the line.
    expect(val.map((p) => p.cmd)).toEqual(["M", "L", "L", "L"]);
  });

  it("uses a log scale when asked: equal ratios are equal distances, ticks at powers of ten", () => {
    const metrics: CurvePoint[] = [1, 2, 3].map((epoch) => ({ epoch, train_loss: 10 ** -epoch, val_loss: 10 ** (1 - epoch) }));
    const svgText = renderCurvesSvg(metrics, { log: true });
    const svg = parse(svgText);
    expect(svg["data-scale"]).toBe("log");
    const train = points(curves(svg).train.d);
    expect(train).toHaveLength(3);
    expect(train[1].y - train[0].y).toBeCloseTo(train[2].y - train[1].y, 1);
    const yLabels = all(svg, "g").find((g) => g.class === "tick-labels y-labels").text.map((t: any) => String(t["#text"]));
    expect(yLabels).toEqual(expect.arrayContaining(["0.001", "0.01", "0.1", "1"]));
    expect(texts(svg)).toContain("loss (log scale)");
    // The same data on a linear scale: the first drop is far larger than the second.
    const lin = points(curves(parse(renderCurvesSvg(metrics))).train.d);
    expect(lin[1].y - lin[0].y).toBeGreaterThan(5 * (lin[2].y - lin[1].y));
  });

  it("leaves zero and negative values out on a log scale, breaking the curve there", () => {
    const metrics = run(5, (e) => (e === 3 ? { train_loss: 0 } : {}));
    const c = curves(parse(renderCurvesSvg(metrics, { log: true })));
    const pts = points(c.train.d);
    expect(pts).toHaveLength(4);
    expect(pts.map((p) => p.cmd)).toEqual(["M", "L", "M", "L"]);
    expect(points(curves(parse(renderCurvesSvg(metrics))).train.d)).toHaveLength(5);
  });

  it("renders empty metrics as axes with a message and no curves", () => {
    const svg = parse(renderCurvesSvg([]));
    expect(Object.keys(curves(svg))).toEqual([]);
    expect(texts(svg)).toContain("No epochs recorded yet");
    expect(texts(svg)).toContain("epoch");
    const logSvg = parse(renderCurvesSvg([], { log: true }));
    expect(Object.keys(curves(logSvg))).toEqual([]);
  });

  it("survives NaN and ±Infinity: no such number in the output, curves broken around them", () => {
    const metrics = run(8, (e) => (e === 4 ? { train_loss: NaN, val_loss: Infinity } : e === 6 ? { val_loss: -Infinity } : {}));
    const out = renderCurvesSvg(metrics);
    expect(out).not.toMatch(/NaN|Infinity/);
    const c = curves(parse(out));
    const train = points(c.train.d);
    expect(train).toHaveLength(7);
    expect(train.map((p) => p.cmd)).toEqual(["M", "L", "L", "M", "L", "L", "L"]);
    const val = points(c.validation.d);
    expect(val).toHaveLength(6);
    expect(texts(parse(out)).some((t) => t.includes("not drawable"))).toBe(true);

    // Nothing drawable at all: still a valid document, no curves.
    const none = renderCurvesSvg([{ epoch: 1, train_loss: NaN, val_loss: NaN }]);
    expect(none).not.toMatch(/NaN|Infinity/);
    expect(Object.keys(curves(parse(none)))).toEqual([]);
  });

  it("draws a single epoch as a one-point path plus a dot", () => {
    const svg = parse(renderCurvesSvg(run(1)));
    const c = curves(svg);
    expect(points(c.train.d)).toHaveLength(1);
    expect(points(c.validation.d)).toHaveLength(1);
    expect(all(svg, "circle").filter((d) => String(d.class).startsWith("dot")).length).toBe(2);
  });

  it("escapes the title and keeps the requested size", () => {
    const title = `Job <script>alert("x")</script> & 'co' \u0001`;
    const out = renderCurvesSvg(run(3), { title, width: 640, height: 360 });
    expect(out).not.toContain("<script>");
    const svg = parse(out);
    expect(svg.width).toBe("640");
    expect(svg.height).toBe("360");
    expect(svg.viewBox).toBe("0 0 640 360");
    expect(String(svg.title)).toContain("Job <script>"); // decoded by the parser: it was escaped in the text
    expect(escapeXml(`a<b>&"'`)).toBe("a&lt;b&gt;&amp;&quot;&apos;");
  });

  it("covers a very long run with one point per epoch", () => {
    const metrics = run(1000);
    const c = curves(parse(renderCurvesSvg(metrics, { width: 1200 })));
    expect(points(c.train.d)).toHaveLength(1000);
    expect(points(c.validation.d)).toHaveLength(1000);
  });
});

describe("ticks", () => {
  it("linear ticks are nice and cover the range", () => {
    const { ticks, lo, hi } = linearTicks(0.137, 2.91, 5);
    expect(lo).toBeLessThanOrEqual(0.137);
    expect(hi).toBeGreaterThanOrEqual(2.91);
    expect(ticks).toEqual([0, 1, 2, 3]);
    expect(linearTicks(0.137, 2.91, 10).ticks).toEqual([0, 0.5, 1, 1.5, 2, 2.5, 3]);
    expect(linearTicks(1, 1).ticks.length).toBeGreaterThanOrEqual(2);
  });
  it("log ticks span the decades of the data", () => {
    expect(logTicks(0.002, 3).ticks).toEqual([0.001, 0.01, 0.1, 1, 10]);
    const narrow = logTicks(0.3, 0.9);
    expect(narrow.lo).toBeLessThanOrEqual(0.3);
    expect(narrow.hi).toBeGreaterThanOrEqual(0.9);
    expect(narrow.ticks).toEqual([0.2, 0.5, 1]);
  });
});
