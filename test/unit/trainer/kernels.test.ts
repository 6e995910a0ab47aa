// The JS kernels against the textbook definition of each product, on odd sizes.
import { describe, expect, it } from "vitest";
import { jsKernels as k, Rng } from "../../../src/trainer/index.js";

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
});
