// The JS kernels against the textbook definition of each product, on odd sizes.
import { describe, expect, it } from "vitest";
import { jsKernels as k, Rng } from "../../../src/trainer/index.js";
import { windowGeometry } from "../../../src/trainer/shapes.js";

const rng = new Rng(5);
const random = (n: number) => new Float64Array(n).map(() => rng.uniform(-1, 1));
/** (i, j) of an m x n row-major matrix. */
const at = (a: Float64Array, cols: number, i: number, j: number) => a[i * cols + j];

function expectClose(actual: Float64Array, expected: number[]) {
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, 12));
}

describe("kernels", () => {
  // Sizes that exercise both the 4-at-a-time blocks and the remainders.
  const [m, kk, n] = [6, 5, 7];

  it("matmul: C = A·B (+ bias), overwriting C", () => {
    const a = random(m * kk);
    const b = random(kk * n);
    const bias = random(n);
    const c = new Float64Array(m * n).fill(123); // stale values must not leak in
    const expected = (withBias: boolean) =>
      Array.from({ length: m * n }, (_, idx) => {
        const [i, j] = [Math.floor(idx / n), idx % n];
        let s = withBias ? bias[j] : 0;
        for (let p = 0; p < kk; p++) s += at(a, kk, i, p) * at(b, n, p, j);
        return s;
      });
    k.matmul(a, b, c, m, kk, n, bias);
    expectClose(c, expected(true));
    k.matmul(a, b, c, m, kk, n, null);
    expectClose(c, expected(false));
  });

  it("matmulTransA: C = Aᵀ·B with A stored [k, m]", () => {
    const a = random(kk * m);
    const b = random(kk * n);
    const c = new Float64Array(m * n).fill(7);
    k.matmulTransA(a, b, c, m, kk, n);
    expectClose(
      c,
      Array.from({ length: m * n }, (_, idx) => {
        const [i, j] = [Math.floor(idx / n), idx % n];
        let s = 0;
        for (let p = 0; p < kk; p++) s += at(a, m, p, i) * at(b, n, p, j);
        return s;
      }),
    );
  });

  it("matmulTransB: C = A·Bᵀ with B stored [n, k]", () => {
    const a = random(m * kk);
    const b = random(n * kk);
    const c = new Float64Array(m * n).fill(7);
    k.matmulTransB(a, b, c, m, kk, n);
    expectClose(
      c,
      Array.from({ length: m * n }, (_, idx) => {
        const [i, j] = [Math.floor(idx / n), idx % n];
        let s = 0;
        for (let p = 0; p < kk; p++) s += at(a, kk, i, p) * at(b, kk, j, p);
        return s;
      }),
    );
  });

  it("matmulTransB with a bias: the bias added to every row", () => {
    const a = random(m * kk);
    const b = random(n * kk);
    const bias = random(n);
    const c = new Float64Array(m * n).fill(7);
    k.matmulTransB(a, b, c, m, kk, n, bias);
    expectClose(
      c,
      Array.from({ length: m * n }, (_, idx) => {
        const [i, j] = [Math.floor(idx / n), idx % n];
        let s = bias[j];
        for (let p = 0; p < kk; p++) s += at(a, kk, i, p) * at(b, kk, j, p);
        return s;
      }),
    );
  });

  it("only touches the first m rows of larger buffers", () => {
    const c = new Float64Array(2 * n + 3).fill(9);
    k.matmul(random(2 * kk), random(kk * n), c, 2, kk, n, null);
    expect(Array.from(c.subarray(2 * n))).toEqual([9, 9, 9]);
  });

  it("sumRows and the activations", () => {
    const out = new Float64Array(2).fill(5);
    k.sumRows(new Float64Array([1, 2, 3, 4, 5, 6]), out, 3, 2);
    expect(Array.from(out)).toEqual([9, 12]);

    const x = new Float64Array([-2, 0, 3, NaN]);
    k.relu(x, 4);
    expect(Array.from(x)).toEqual([0, 0, 3, NaN]); // NaN kept: divergence must stay visible
    const g = new Float64Array([1, 1, 1, 1]);
    k.reluBackward(x, g, 3);
    expect(Array.from(g)).toEqual([0, 0, 1, 1]);

    const s = new Float64Array([0, 1000, -1000]);
    k.sigmoid(s, 3);
    expect(Array.from(s)).toEqual([0.5, 1, 0]);
    const t = new Float64Array([0, 20]);
    k.tanh(t, 2);
    expect(Array.from(t)).toEqual([0, 1]);
  });

  it("leaky_relu, elu and gelu by hand, and their derivatives", () => {
    const x = new Float64Array([-2, -0.5, 0, 1.5]);
    const leaky = Float64Array.from(x);
    k.leakyRelu(leaky, 4, 0.01);
    expect(Array.from(leaky)).toEqual([-0.02, -0.005, 0, 1.5]);
    const g = new Float64Array(4).fill(2);
    k.leakyReluBackward(leaky, g, 4, 0.01);
    expect(Array.from(g)).toEqual([0.02, 0.02, 0.02, 2]); // slope at 0, as PyTorch

    const elu = Float64Array.from(x);
    k.elu(elu, 4, 1);
    expectClose(elu, [Math.exp(-2) - 1, Math.exp(-0.5) - 1, 0, 1.5]);
    g.fill(2);
    k.eluBackward(elu, g, 4, 1);
    expectClose(g, [2 * Math.exp(-2), 2 * Math.exp(-0.5), 2, 2]); // alpha·e^z = y + alpha

    // gelu(1) = 0.5·(1 + tanh(sqrt(2/pi)·1.044715)) = 0.8411920; gelu(-2) = -0.0454023.
    const gelu = new Float64Array([1, -2, 0]);
    k.gelu(gelu, 3);
    expect(gelu[0]).toBeCloseTo(0.841192, 6);
    expect(gelu[1]).toBeCloseTo(-0.0454023, 6);
    expect(gelu[2]).toBe(0);
    // The derivative against central differences of the forward.
    const z = new Float64Array([-3, -0.7, 0, 0.4, 2.5]);
    const d = new Float64Array(5).fill(1);
    k.geluBackward(z, d, 5);
    const f = (v: number) => {
      const a = new Float64Array([v]);
      k.gelu(a, 1);
      return a[0];
    };
    z.forEach((v, i) => expect(d[i]).toBeCloseTo((f(v + 1e-6) - f(v - 1e-6)) / 2e-6, 8));
  });

  it("softmax row by row without overflow, and its Jacobian-vector product", () => {
    const x = new Float64Array([1, 2, 3, 1000, 1000, -1000]);
    k.softmax(x, 2, 3);
    const e = [Math.exp(-2), Math.exp(-1), 1];
    const sum = e[0] + e[1] + e[2];
    expectClose(x, [e[0] / sum, e[1] / sum, e[2] / sum, 0.5, 0.5, 0]);
    // g_i = y_i (g_i - Σ_j g_j y_j) is J·g with the Jacobian J_ij = y_i (δ_ij - y_j).
    const y = x.subarray(0, 3);
    const g = new Float64Array([0.3, -1, 2]);
    const expected = [0, 1, 2].map((i) => [0, 1, 2].reduce((s, j) => s + y[i] * ((i === j ? 1 : 0) - y[j]) * g[j], 0));
    k.softmaxBackward(y, g, 1, 3);
    expectClose(g, expected);
  });

  it("col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>", () => {
    for (const [kernel, stride, padding] of [[3, 1, "same"], [[2, 3], 2, "same"], [3, [2, 1], "valid"], [1, 3, "same"]] as const) {
      const g = windowGeometry([2, 7, 6], kernel, stride, padding);
      const patchValues = g.outHeight * g.outWidth * 2 * g.kernelH * g.kernelW;
      const x = random(2 + 84); // starts at offset 2, to check the offsets
      const c = random(3 + patchValues);
      const col = new Float64Array(3 + patchValues);
      k.im2col(x, 2, col, 3, g);
      const back = new Float64Array(2 + 84);
      k.col2im(c, 3, back, 2, g);
      let left = 0;
      for (let i = 3; i < col.length; i++) left += col[i] * c[i];
      let right = 0;
      for (let i = 2; i < back.length; i++) right += x[i] * back[i];
      expect(left).toBeCloseTo(right, 12);
      expect(back[0]).toBe(0);
    }
  });

  it("conv2dBackward matches the direct sums, for dense and for mostly-zero output gradients", () => {
    // Both paths of the kernel: tiled products when most of dL/dY is non-zero, a sparse walk over
    // the non-zeros below 40% (as under a max-pool).
    const [rows, C, H, W, F] = [3, 2, 6, 5, 4];
    const g = windowGeometry([C, H, W], [3, 2], [2, 1], "same");
    const [oh, ow] = [g.outHeight, g.outWidth];
    const input = random(rows * C * H * W);
    const weight = random(F * C * 6);
    for (const density of [1, 0.2]) {
      const gradOut = random(rows * F * oh * ow).map((v) => (rng.next() < density ? v : 0));
      const weightGrad = new Float64Array(F * C * 6).fill(5);
      const biasGrad = new Float64Array(F).fill(5);
      const inputGrad = new Float64Array(rows * C * H * W).fill(5);
      const scratch = new Float64Array(k.conv2dScratchSize(g, 0));
      k.conv2dBackward(input, weight, gradOut, weightGrad, biasGrad, inputGrad, rows, F, g, scratch, false);
      // Also from patches kept by the forward pass.
      const kept = new Float64Array(k.conv2dScratchSize(g, rows));
      k.conv2d(input, weight, new Float64Array(F), new Float64Array(rows * F * oh * ow), rows, F, g, kept, true);
      const keptGrads = [new Float64Array(F * C * 6), new Float64Array(F), new Float64Array(rows * C * H * W)];
      k.conv2dBackward(input, weight, gradOut, keptGrads[0], keptGrads[1], keptGrads[2], rows, F, g, kept, true);
      expect(keptGrads).toEqual([weightGrad, biasGrad, inputGrad]);

      const dW = new Float64Array(F * C * 6);
      const dB = new Float64Array(F);
      const dX = new Float64Array(rows * C * H * W);
      for (let n = 0; n < rows; n++)
        for (let f = 0; f < F; f++)
          for (let oy = 0; oy < oh; oy++)
            for (let ox = 0; ox < ow; ox++) {
              const gv = gradOut[((n * F + f) * oh + oy) * ow + ox];
              dB[f] += gv;
              for (let c = 0; c < C; c++)
                for (let ki = 0; ki < 3; ki++)
                  for (let kj = 0; kj < 2; kj++) {
                    const iy = oy * 2 - g.padTop + ki;
                    const ix = ox - g.padLeft + kj;
                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                    const wi = ((f * C + c) * 3 + ki) * 2 + kj;
                    const xi = ((n * C + c) * H + iy) * W + ix;
                    dW[wi] += gv * input[xi];
                    dX[xi] += gv * weight[wi];
                  }
            }
      expectClose(weightGrad, Array.from(dW));
      expectClose(biasGrad, Array.from(dB));
      expectClose(inputGrad, Array.from(dX));
    }
  });
});
