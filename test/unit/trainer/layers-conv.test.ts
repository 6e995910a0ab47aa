// conv2d and pooling against direct textbook loops (float64, to 1e-12), and the conv weight layout
// checked by hand from an exported tensor.
import { describe, expect, it } from "vitest";
import { modelSchema, type ModelSpec } from "../../../src/trainer/config.js";
import { jsKernels } from "../../../src/trainer/kernels.js";
import { buildModel, type Model } from "../../../src/trainer/model.js";
import { Rng } from "../../../src/trainer/rng.js";
import { windowGeometry } from "../../../src/trainer/shapes.js";

const spec = (layers: unknown[], input_shape: number[]): ModelSpec => modelSchema.parse({ input_shape, layers });
const pair = (v: number | readonly number[]): [number, number] => (typeof v === "number" ? [v, v] : [v[0], v[1]]);

/** Output size and padding before, worked out independently of src/trainer/shapes.ts. */
function span(size: number, k: number, s: number, padding: "valid" | "same"): { out: number; before: number } {
  if (padding === "valid") return { out: Math.floor((size - k) / s) + 1, before: 0 };
  const out = Math.ceil(size / s);
  return { out, before: Math.floor(Math.max((out - 1) * s + k - size, 0) / 2) };
}

/** The seven loops of a convolution: rows, filters, output rows and columns, channels, kernel rows
 *  and columns. Positions outside the input read 0. */
function naiveConv(
  x: Float64Array,
  [rows, C, H, W]: number[],
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  F: number,
  [kh, kw]: [number, number],
  [sh, sw]: [number, number],
  padding: "valid" | "same",
) {
  const r = span(H, kh, sh, padding);
  const c = span(W, kw, sw, padding);
  const out = new Float64Array(rows * F * r.out * c.out);
  for (let n = 0; n < rows; n++)
    for (let f = 0; f < F; f++)
      for (let oy = 0; oy < r.out; oy++)
        for (let ox = 0; ox < c.out; ox++) {
          let sum = bias[f];
          for (let ch = 0; ch < C; ch++)
            for (let ki = 0; ki < kh; ki++)
              for (let kj = 0; kj < kw; kj++) {
                const iy = oy * sh - r.before + ki;
                const ix = ox * sw - c.before + kj;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                sum += weight[((f * C + ch) * kh + ki) * kw + kj] * x[((n * C + ch) * H + iy) * W + ix];
              }
          out[((n * F + f) * r.out + oy) * c.out + ox] = sum;
        }
  return { out, shape: [F, r.out, c.out] };
}

function naivePool(x: Float64Array, [rows, C, H, W]: number[], kind: "max" | "avg", [kh, kw]: [number, number], [sh, sw]: [number, number], padding: "valid" | "same") {
  const r = span(H, kh, sh, padding);
  const c = span(W, kw, sw, padding);
  const out = new Float64Array(rows * C * r.out * c.out);
  for (let p = 0; p < rows * C; p++)
    for (let oy = 0; oy < r.out; oy++)
      for (let ox = 0; ox < c.out; ox++) {
        const values: number[] = [];
        for (let ki = 0; ki < kh; ki++)
          for (let kj = 0; kj < kw; kj++) {
            const iy = oy * sh - r.before + ki;
            const ix = ox * sw - c.before + kj;
            if (iy >= 0 && iy < H && ix >= 0 && ix < W) values.push(x[(p * H + iy) * W + ix]);
          }
        out[(p * r.out + oy) * c.out + ox] = kind === "max" ? Math.max(...values) : values.reduce((a, b) => a + b, 0) / values.length;
      }
  return { out, shape: [C, r.out, c.out] };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, digits = 12) {
  expect(actual.length).toBeGreaterThanOrEqual(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > 10 ** -digits) expect(actual[i], `index ${i}`).toBeCloseTo(expected[i], digits);
  }
}

/** Random float64 weights and biases, through importTensors (so the export layout is what is used). */
function randomWeights(model: Model, rng: Rng) {
  const tensors = model.exportTensors().map((t) => ({ ...t, data: new Float32Array(t.data.length).map(() => rng.uniform(-1, 1)) }));
  model.importTensors(tensors);
  return Object.fromEntries(tensors.map((t) => [t.name, t.data]));
}

describe("conv2d forward = the direct 7-loop convolution", () => {
  const input = [3, 9, 8];
  const rows = 2;
  for (const padding of ["valid", "same"] as const) {
    for (const stride of [1, 2, 3, [2, 1]] as const) {
      for (const kernel of [3, [2, 3], 1, [4, 2]] as const) {
        it(`kernel ${JSON.stringify(kernel)}, stride ${JSON.stringify(stride)}, ${padding}`, () => {
          const rng = new Rng(31);
          const model = buildModel(
            spec([{ type: "conv2d", filters: 5, kernel_size: kernel, stride, padding }], input),
            3 * 9 * 8,
            { seed: 1, dtype: "float64" },
          );
          const w = randomWeights(model, rng);
          const x = new Float64Array(rows * 216).map(() => rng.uniform(-1, 1));
          const expected = naiveConv(x, [rows, ...input], w["0.weight"], w["0.bias"], 5, pair(kernel), pair(stride), padding);
          expect(model.shapes.layers[0]).toEqual(expected.shape);
          expectClose(model.forward(x, rows, false), expected.out);
        });
      }
    }
  }

  it("applies its fused activation after the bias", () => {
    const rng = new Rng(4);
    const model = buildModel(spec([{ type: "conv2d", filters: 2, kernel_size: 2, activation: "relu" }], [1, 4, 4]), 16, { seed: 1, dtype: "float64" });
    const w = randomWeights(model, rng);
    const x = new Float64Array(16).map(() => rng.uniform(-1, 1));
    const expected = naiveConv(x, [1, 1, 4, 4], w["0.weight"], w["0.bias"], 2, [2, 2], [1, 1], "valid").out.map((v) => Math.max(0, v));
    expect(expected.some((v) => v === 0) && expected.some((v) => v > 0)).toBe(true);
    expectClose(model.forward(x, 1, false), expected);
  });

  it("exports the weight as PyTorch's [filters, in_channels, kh, kw], checked on one output by hand", () => {
    const model = buildModel(spec([{ type: "conv2d", filters: 2, kernel_size: [2, 3] }], [2, 3, 4]), 24, { seed: 5 });
    const [weight, bias] = model.exportTensors();
    expect(weight.name).toBe("0.weight");
    expect(weight.shape).toEqual([2, 2, 2, 3]);
    expect(bias.shape).toEqual([2]);
    model.importTensors([weight, { ...bias, data: new Float32Array([0.25, -0.5]) }]);
    // x[c, i, j] = c*12 + i*4 + j + 1: channel 0 holds 1..12, channel 1 holds 13..24.
    const x = new Float32Array(24).map((_, i) => i + 1);
    // Output (filter 1, row 1, column 0) covers rows 1-2, columns 0-2 of both channels:
    //   y = b[1] + Σ_c Σ_ki Σ_kj W[1, c, ki, kj]·x[c, 1 + ki, kj], W[f, c, ki, kj] at ((f*2 + c)*2 + ki)*3 + kj.
    const W = (f: number, c: number, ki: number, kj: number) => weight.data[((f * 2 + c) * 2 + ki) * 3 + kj];
    const X = (c: number, i: number, j: number) => x[c * 12 + i * 4 + j];
    let y = -0.5;
    for (let c = 0; c < 2; c++) for (let ki = 0; ki < 2; ki++) for (let kj = 0; kj < 3; kj++) y += W(1, c, ki, kj) * X(c, 1 + ki, kj);
    // Output shape [2, 2, 2]: (filter 1, row 1, column 0) is at 1*4 + 1*2 + 0 = 6.
    expect(model.predict(x, 1)[6]).toBeCloseTo(y, 4);
  });
});

describe("pooling = the direct loops", () => {
  const input = [2, 7, 9];
  const rows = 2;
  const pools = [
    { pool_size: 2 },
    { pool_size: 3, stride: 2 },
    { pool_size: [2, 3], stride: 1 },
    { pool_size: 3, stride: [1, 2] },
    { pool_size: [3, 2], stride: [3, 3] },
  ];
  for (const kind of ["max", "avg"] as const) {
    for (const padding of ["valid", "same"] as const) {
      for (const pool of pools) {
        it(`${kind}pool2d ${JSON.stringify(pool)}, ${padding}`, () => {
          const rng = new Rng(8);
          const model = buildModel(spec([{ type: `${kind}pool2d`, ...pool, padding }], input), 126, { seed: 0, dtype: "float64" });
          // Negative values too: "same" max pooling must ignore its padding, not read it as 0.
          const x = new Float64Array(rows * 126).map(() => rng.uniform(-2, -0.1) + (rng.next() < 0.3 ? 2 : 0));
          const expected = naivePool(x, [rows, ...input], kind, pair(pool.pool_size), pair(pool.stride ?? pool.pool_size), padding);
          expect(model.shapes.layers[0]).toEqual(expected.shape);
          expectClose(model.forward(x, rows, false), expected.out);
        });
      }
    }
  }

  it("max pooling sends each window's gradient to its first maximum", () => {
    // One 2x6 image, 2x2 windows with stride 2 (the unrolled path):
    //   [1, 3 | 5, 5 | 7, 7]
    //   [2, 0 | 4, 1 | 7, 7]  -> maxima 3 (index 1), 5 (index 2, first of a tie), 7 (index 4, first of four).
    const g = windowGeometry([1, 2, 6], 2, 2, "valid");
    const out = new Float64Array(3);
    const argmax = new Int32Array(3);
    jsKernels.maxPool2d(new Float64Array([1, 3, 5, 5, 7, 7, 2, 0, 4, 1, 7, 7]), out, argmax, 1, g);
    expect(Array.from(out)).toEqual([3, 5, 7]);
    expect(Array.from(argmax)).toEqual([1, 2, 4]);
    const grad = new Float64Array(12).fill(9);
    jsKernels.maxPool2dBackward(new Float64Array([10, 20, 30]), argmax, grad, 1, g);
    expect(Array.from(grad)).toEqual([0, 10, 20, 0, 30, 0, 0, 0, 0, 0, 0, 0]);
    // The general path (3x2 windows, stride 1): ties go to the first in row-major order too.
    const general = windowGeometry([1, 3, 2], [3, 2], 1, "valid");
    jsKernels.maxPool2d(new Float64Array([0, 1, 6, 2, 6, 6]), out, argmax, 1, general);
    expect([out[0], argmax[0]]).toEqual([6, 2]);
    // A NaN wins, so that divergence shows.
    jsKernels.maxPool2d(new Float64Array([1, 3, 5, 5, 7, NaN, 2, 0, NaN, 1, 7, 7]), out, argmax, 1, g);
    expect([out[0], out[1], out[2]]).toEqual([3, NaN, NaN]);
  });

  it("average pooling with same padding divides by the real positions only", () => {
    // 3x3 input of ones, pool 2 stride 2 same: out 2x2, padding 1 after -> windows of 4, 2, 2, 1
    // real positions; every mean is 1 (padding counted as 0 would give 0.5 and 0.25).
    const g = windowGeometry([1, 3, 3], 2, 2, "same");
    const out = new Float64Array(4);
    jsKernels.avgPool2d(new Float64Array(9).fill(1), out, 1, g);
    expect(Array.from(out)).toEqual([1, 1, 1, 1]);
    // Backward: each window spreads its gradient over its real positions.
    const grad = new Float64Array(9);
    jsKernels.avgPool2dBackward(new Float64Array([4, 2, 2, 1]), grad, 1, g);
    expect(Array.from(grad)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1]);
  });
});
