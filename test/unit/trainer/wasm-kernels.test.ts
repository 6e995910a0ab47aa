// The WebAssembly kernels against the JS reference kernels, the float32 arena they work in, and the
// properties the trainer needs of them: the same training as the JS kernels to float32 rounding,
// bit-identical runs, and no allocation per training step.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import v8 from "node:v8";
import vm from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { buildModel, createLoss, createOptimizer, modelSchema, optimizerSchema, Rng } from "../../../src/trainer/index.js";
import { jsKernels, kernels, kernelsChoice, setKernels, wasmKernels, type Floats, type Kernels } from "../../../src/trainer/kernels.js";
import { windowGeometry } from "../../../src/trainer/shapes.js";
import { allocFloat32, allocInt32, arenaAddress, arenaAddressInt32, arenaStats, ARENA_ALIGN } from "../../../src/trainer/wasm/arena.js";
import { kernelExports } from "../../../src/trainer/wasm/instance.js";
import { KERNELS_WAT_SHA256 } from "../../../src/trainer/wasm/kernels-wasm.js";

const rng = new Rng(2024);
/** An arena array of uniform values in [-1, 1). */
const random = (n: number): Float32Array => {
  const a = allocFloat32(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(-1, 1);
  return a;
};
/** A copy in the arena (typed-array map and slice make ordinary arrays). */
const inArena = (a: Float32Array): Float32Array => {
  const copy = allocFloat32(a.length);
  copy.set(a);
  return copy;
};
const abs = (a: Float32Array): Float32Array => a.map(Math.abs);

/** A forced garbage collection (the flag is set at run time, so the test needs no node option). */
function gc(): void {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

/**
 * Checks every value of `actual` against `expected` to `tol` relative to `scale` (for products, the
 * sum of the absolute values of the terms, which bounds what float32 rounding can do).
 */
function expectWithin(actual: Floats, expected: Floats, scale: Floats | number, tol = 1e-5, count = expected.length) {
  let worst = { excess: -Infinity, index: -1, actual: 0, expected: 0 };
  for (let i = 0; i < count; i++) {
    const s = typeof scale === "number" ? scale : scale[i];
    const excess = Math.abs(actual[i] - expected[i]) - tol * Math.max(Math.abs(expected[i]), s);
    if (!(excess <= worst.excess)) worst = { excess, index: i, actual: actual[i], expected: expected[i] };
  }
  expect(worst.excess, JSON.stringify(worst)).toBeLessThanOrEqual(0);
}

/** max |a| over the first `count` values. */
const maxAbs = (a: Floats, count = a.length) => {
  let m = 0;
  for (let i = 0; i < count; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

afterEach(() => setKernels("wasm"));

describe("the WebAssembly build and switch", () => {
  it("kernels-wasm.ts was assembled from the current kernels.wat (run npm run build:wasm)", () => {
    const source = readFileSync(new URL("../../../src/trainer/wasm/kernels.wat", import.meta.url), "utf8");
    expect(KERNELS_WAT_SHA256).toBe(createHash("sha256").update(source).digest("hex"));
  });

  it("uses the WebAssembly kernels by default; setKernels switches every layer to the JS reference", () => {
    expect(wasmKernels).not.toBe(jsKernels);
    expect(kernelsChoice()).toBe("wasm");
    expect(kernels).toBe(wasmKernels);
    setKernels("js");
    expect(kernelsChoice()).toBe("js");
    expect(kernels).toBe(jsKernels);
    setKernels("wasm");
    expect(kernels).toBe(wasmKernels);
  });
});

describe("matrix products = the JS kernels, to 1e-5 of the terms' size", () => {
  // Edges of every block: 1, odd sizes, not multiples of 4, 8 or 16, the W1 shapes, more rows than
  // a row block (64), an inner dimension over one block (256) and more columns than a column
  // block (1024).
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 7, 1], [3, 1, 5], [2, 3, 4], [4, 4, 8], [5, 9, 17], [7, 13, 3], [8, 16, 16], [13, 31, 33],
    [17, 2, 9], [31, 64, 15], [64, 784, 256], [64, 256, 128], [64, 128, 10], [32, 8, 32], [32, 32, 1],
    [65, 257, 7], [130, 600, 19], [3, 300, 1030], [9, 513, 1], [1, 1, 2049], [40, 1, 50], [1, 600, 1],
  ];
  for (let t = 0; t < 12; t++) shapes.push([1 + rng.int(80), 1 + rng.int(700), 1 + rng.int(300)]);

  for (const [m, k, n] of shapes) {
    it(`${m}x${k}x${n}: matmul and matmulTransB (with and without bias), matmulTransA`, () => {
      const a = random(m * k);
      const b = random(k * n);
      const bias = random(n);
      const fresh = () => allocFloat32(m * n + 3).fill(Number.NaN); // stale values must not leak in
      const run = (f: (kk: Kernels, c: Float32Array, abs?: boolean) => void) => {
        const expected = fresh();
        const actual = fresh();
        const scale = fresh();
        f(jsKernels, expected);
        f(wasmKernels, actual);
        f(jsKernels, scale, true);
        expectWithin(actual, expected, scale, 1e-5, m * n);
        // Only the first m rows are touched.
        expect([...actual.subarray(m * n)]).toEqual([NaN, NaN, NaN]);
      };
      const [aa, ab, abias] = [abs(a), abs(b), abs(bias)];
      run((kk, c, isAbs) => kk.matmul(isAbs ? aa : a, isAbs ? ab : b, c, m, k, n, isAbs ? abias : bias));
      run((kk, c, isAbs) => kk.matmul(isAbs ? aa : a, isAbs ? ab : b, c, m, k, n, null));
      // a read as [k, m] and b as [n, k]: the same arrays, other shapes.
      run((kk, c, isAbs) => kk.matmulTransA(isAbs ? aa : a, isAbs ? ab : b, c, m, k, n));
      run((kk, c, isAbs) => kk.matmulTransB(isAbs ? aa : a, isAbs ? ab : b, c, m, k, n));
      run((kk, c, isAbs) => kk.matmulTransB(isAbs ? aa : a, isAbs ? ab : b, c, m, k, n, isAbs ? abias : bias));
      // With relu after: relu of the same products (relu of the bound is the bound).
      run((kk, c, isAbs) => kk.matmulTransB(isAbs ? aa : a, isAbs ? ab : b, c, m, k, n, isAbs ? abias : bias, !isAbs));
    });

    it(`${m}x${k}x${n}: matmulTransA after relu's derivative, with the column sums: A and the sums exactly as the JS kernels'`, () => {
      // A is [k, m] (an output gradient), y ([k, m]) the layer's output; about half of y is 0.
      const y = random(k * m).map((v) => Math.max(0, v));
      const yIn = inArena(y);
      const b = random(k * n);
      const a0 = random(k * m);
      const results = [jsKernels, wasmKernels].map((kk) => {
        const a = inArena(a0);
        const c = allocFloat32(m * n);
        const sums = allocFloat32(m);
        kk.matmulTransA(a, b, c, m, k, n, yIn, sums);
        return { a, c, sums };
      });
      const [js, wasm] = results;
      expect(Array.from(wasm.a)).toEqual(Array.from(js.a));
      expect(Array.from(wasm.sums)).toEqual(Array.from(js.sums));
      const scale = allocFloat32(m * n);
      jsKernels.matmulTransA(abs(js.a), abs(b), scale, m, k, n);
      expectWithin(wasm.c, js.c, scale, 1e-5, m * n);
    });
  }

  it("runs on operands outside the arena (copied in), and leaves float64 to the JS kernels exactly", () => {
    const [m, k, n] = [9, 37, 21];
    const a = random(m * k);
    const b = random(k * n);
    const expected = allocFloat32(m * n);
    jsKernels.matmul(a, b, expected, m, k, n, null);
    const plainA = Float32Array.from(a);
    expect(arenaAddress(plainA)).toBe(-1);
    const c = allocFloat32(m * n);
    wasmKernels.matmul(plainA, Float32Array.from(b), c, m, k, n, Float32Array.from({ length: n }, () => 0));
    expectWithin(c, expected, maxAbs(expected));

    const a64 = Float64Array.from(a);
    const b64 = Float64Array.from(b);
    const viaJs = new Float64Array(m * n);
    const viaWasm = new Float64Array(m * n);
    jsKernels.matmulTransB(a64, b64, viaJs, m, k, n);
    wasmKernels.matmulTransB(a64, b64, viaWasm, m, k, n);
    expect(viaWasm).toEqual(viaJs);
    // An output outside the arena: the JS kernel.
    const plainC = new Float32Array(m * n);
    wasmKernels.matmul(a, b, plainC, m, k, n, null);
    expect(plainC).toEqual(expected);
  });

  it("handles every tiny shape (called directly: the kernels send these to JS, as faster)", () => {
    const w = kernelExports()!;
    const work = arenaAddress(allocFloat32(w.gemm_work_bytes() / 4));
    for (let m = 1; m <= 5; m++) {
      for (let k = 0; k <= 5; k++) {
        for (let n = 1; n <= 9; n++) {
          const a = random(m * k + 1);
          const b = random(k * n + 1);
          const expected = allocFloat32(m * n);
          const actual = allocFloat32(m * n + 1).fill(NaN);
          jsKernels.matmulTransB(a, b, expected, m, k, n);
          w.gemm(arenaAddress(a), k, 1, arenaAddress(b), 1, k, arenaAddress(actual), n, 0, m, k, n, 0, work);
          expectWithin(actual, expected, maxAbs(expected) || 1, 1e-5, m * n);
          expect(actual[m * n]).toBeNaN();
          if (k > 0) {
            actual.fill(NaN, 0, m * n);
            w.dot_nt(arenaAddress(a), k, arenaAddress(b), k, arenaAddress(actual), n, 0, m, k, n, 0);
            expectWithin(actual, expected, maxAbs(expected) || 1, 1e-5, m * n);
          }
        }
      }
    }
    for (let count = 0; count < 9; count++) {
      const x = random(count + 1);
      const y = inArena(x);
      w.relu(arenaAddress(x), count);
      jsKernels.relu(y, count);
      expect(x).toEqual(y);
      const g1 = random(count + 1);
      const g2 = inArena(g1);
      w.tanh_backward(arenaAddress(x), arenaAddress(g1), count);
      jsKernels.tanhBackward(x, g2, count);
      expect(g1).toEqual(g2);
    }
  });

  it("gives the same bits with or without packing, so a row's result does not depend on the batch", () => {
    const w = kernelExports()!;
    const limit = w.small_gemm.value as number;
    try {
      for (const [m, k, n] of [[3, 5, 7], [8, 32, 32], [33, 300, 17], [4, 600, 9]]) {
        const a = random(m * k);
        const b = random(k * n);
        const bias = random(n);
        const results = [0, 1 << 30].map((small) => {
          w.small_gemm.value = small; // never (always packed), always
          const out = [allocFloat32(m * n), allocFloat32(m * n), allocFloat32(m * n), allocFloat32(m * n)];
          wasmKernels.matmul(a, b, out[0], m, k, n, bias);
          wasmKernels.matmulTransA(a, b, out[1], m, k, n);
          wasmKernels.matmulTransB(a, b, out[2], m, k, n);
          out[3].fill(1);
          w.gemm(arenaAddress(a), k, 1, arenaAddress(b), n, 1, arenaAddress(out[3]), n, 0, m, k, n, 1, arenaAddress(allocFloat32(w.gemm_work_bytes() / 4)));
          return out;
        });
        results[1].forEach((out, i) => expect(out, `form ${i}`).toEqual(results[0][i]));
      }
    } finally {
      w.small_gemm.value = limit;
    }
    // A dense layer's rows: one at a time (small) or all together (packed), the same bits.
    const [m, k, n] = [64, 100, 30];
    const x = random(m * k);
    const weight = random(k * n);
    const bias = random(n);
    const all = allocFloat32(m * n);
    wasmKernels.matmul(x, weight, all, m, k, n, bias);
    const one = allocFloat32(n);
    for (const row of [0, 17, 63]) {
      wasmKernels.matmul(x.subarray(row * k), weight, one, 1, k, n, bias);
      expect(one).toEqual(all.subarray(row * n, row * n + n));
    }
  });

  it("gives the same bits when the rows are split into ranges, each with its own work area (threads)", () => {
    const w = kernelExports()!;
    const works = [0, 1, 2].map(() => arenaAddress(allocFloat32(w.gemm_work_bytes() / 4)));
    for (const [m, k, n] of [[150, 700, 70], [9, 33, 1030], [64, 784, 256]]) {
      const a = random(m * k);
      const b = random(k * n);
      const whole = allocFloat32(m * n);
      const split = allocFloat32(m * n);
      const [at, bt] = [arenaAddress(a), arenaAddress(b)];
      for (const [aRow, aCol, bRow, bCol] of [[k, 1, n, 1], [1, m, n, 1], [k, 1, 1, k]]) {
        w.gemm(at, aRow, aCol, bt, bRow, bCol, arenaAddress(whole), n, 0, m, k, n, 0, works[0]);
        const cuts = [0, 1 + rng.int(m - 1), m];
        if (m > 3) cuts.splice(2, 0, Math.max(cuts[1], m - 2)); // a range of 2 rows: not a multiple of 4
        for (let i = 0; i + 1 < cuts.length; i++) {
          w.gemm(at, aRow, aCol, bt, bRow, bCol, arenaAddress(split), n, cuts[i], cuts[i + 1], k, n, 0, works[1 + (i % 2)]);
        }
        expect(split).toEqual(whole);
      }
    }
  });

  it("gives the same bits when one thread's pieces reuse the operand they share (gemm_keep), and packs again after any other call", () => {
    const w = kernelExports()!;
    const work = arenaAddress(allocFloat32(w.gemm_work_bytes() / 4));
    // W1's first layer by columns (A = the batch, kept), its weight gradient by rows (B = the batch,
    // kept), an inner dimension past one block (k > 256), sizes off the tile (m 37, n 70), and an
    // operand too large to keep (k 2100: packed block by block as gemm does).
    for (const [m, k, n] of [[64, 784, 256], [37, 300, 70], [20, 2100, 40]]) {
      const a = random(m * k);
      const b = random(k * n);
      const other = random(m * k);
      const [at, bt, ot] = [arenaAddress(a), arenaAddress(b), arenaAddress(other)];
      const whole = allocFloat32(m * n);
      const pieces = allocFloat32(m * n);
      const scratch = allocFloat32(m * n);
      w.gemm(at, k, 1, bt, n, 1, arenaAddress(whole), n, 0, m, k, n, 0, work);
      // By columns: A whole in every piece.
      const columns = [0, 8 * Math.floor(n / 16), n - 8, n].filter((c, i, all) => i === 0 || c > all[i - 1]);
      for (let i = 0; i + 1 < columns.length; i++) {
        const [j0, j1] = [columns[i], columns[i + 1]];
        w.gemm_keep(at, k, 1, bt + 4 * j0, n, 1, arenaAddress(pieces) + 4 * j0, n, 0, m, k, j1 - j0, 0, work, i === 0 ? 1 : 2);
      }
      expect(pieces).toEqual(whole);
      // By rows: B whole in every piece.
      pieces.fill(0);
      const rows = [0, Math.floor(m / 2), m - 1, m];
      for (let i = 0; i + 1 < rows.length; i++) {
        w.gemm_keep(at, k, 1, bt, n, 1, arenaAddress(pieces), n, rows[i], rows[i + 1], k, n, 0, work, i === 0 ? 3 : 4);
      }
      expect(pieces).toEqual(whole);
      // A call in between (another product in the same work area, or a small one) leaves nothing
      // kept: the next piece packs its operand again instead of reading the other's.
      pieces.fill(0);
      const half = 8 * Math.floor(n / 16);
      w.gemm_keep(at, k, 1, bt, n, 1, arenaAddress(pieces), n, 0, m, k, half, 0, work, 1);
      w.gemm(ot, k, 1, bt, n, 1, arenaAddress(scratch), n, 0, m, k, n, 0, work);
      w.gemm_keep(at, k, 1, bt + 4 * half, n, 1, arenaAddress(pieces) + 4 * half, n, 0, m, k, n - half, 0, work, 2);
      expect(pieces).toEqual(whole);
      pieces.fill(0);
      w.gemm_keep(at, k, 1, bt, n, 1, arenaAddress(pieces), n, 0, 1, k, n, 0, work, 3);
      w.gemm(ot, k, 1, bt, n, 1, arenaAddress(scratch), n, 0, 1, 2, 2, 0, work); // 4 multiply-adds: unpacked
      w.gemm_keep(ot, k, 1, bt, n, 1, arenaAddress(scratch), n, 0, 1, k, n, 0, work, 1); // keeps A, not B
      w.gemm_keep(at, k, 1, bt, n, 1, arenaAddress(pieces), n, 1, m, k, n, 0, work, 4);
      expect(pieces).toEqual(whole);
    }
  });

  it("is deterministic: the same inputs give the same bits", () => {
    const [m, k, n] = [70, 300, 45];
    const a = random(m * k);
    const b = random(k * n);
    const c1 = allocFloat32(m * n);
    const c2 = allocFloat32(m * n);
    wasmKernels.matmulTransA(a, b, c1, m, k, n);
    wasmKernels.matmul(random(m * k), random(k * n), c2, m, k, n, null); // something else in between
    wasmKernels.matmulTransA(a, b, c2, m, k, n);
    expect(c2).toEqual(c1);
  });
});

describe("elementwise kernels = the JS kernels, bit for bit", () => {
  const specials = [0, -0, 1, -1, 0.5, -2.5, 1e-30, -1e-30, Infinity, -Infinity, NaN, 3e38, -3e38];
  for (const count of [1, 3, 4, 7, 16, 33, 1001]) {
    it(`${count} values: relu, reluBackward, tanhBackward, sigmoidBackward, sumRows`, () => {
      const values = random(count).map((v, i) => (i < specials.length && count > 16 ? specials[i] : v * 5));
      const check = (f: (kk: Kernels, x: Float32Array, g: Float32Array) => void) => {
        const [x1, x2] = [allocFloat32(count + 1).fill(9), allocFloat32(count + 1).fill(9)];
        x1.set(values);
        x2.set(values);
        const g1 = random(count + 1);
        const g2 = allocFloat32(count + 1);
        g2.set(g1);
        f(jsKernels, x1, g1);
        f(wasmKernels, x2, g2);
        expect(x2).toEqual(x1);
        expect(g2).toEqual(g1);
      };
      check((kk, x) => kk.relu(x, count));
      check((kk, x, g) => kk.reluBackward(x, g, count));
      check((kk, x, g) => kk.tanhBackward(x, g, count));
      check((kk, x, g) => kk.sigmoidBackward(x, g, count));
      for (const cols of [1, 3, 4, 17, 20]) {
        const rows = Math.max(1, Math.floor(count / cols));
        const [o1, o2] = [allocFloat32(cols + 2).fill(4), allocFloat32(cols + 2).fill(4)];
        const a = random(rows * cols);
        jsKernels.sumRows(a, o1, rows, cols);
        wasmKernels.sumRows(a, o2, rows, cols);
        expect(o2).toEqual(o1);
      }
    });
  }
});

describe("optimizer kernels = the JS kernels", () => {
  const specials = [0, -0, 1, -1, 1e-30, -1e-38, 1e-45, 3e38, -3e38, 0.1];
  // Odd sizes, sizes around the SIMD widths, and sizes across sum_squares_blocks's 2048-value blocks.
  for (const count of [1, 2, 3, 5, 31, 32, 33, 1001, 2048, 2049, 6145]) {
    it(`${count} values: sgdUpdate (plain, nesterov, weight decay) and adamUpdate (adam, l2, adamw) bit for bit; scale bit for bit; sumSquares to 1e-12`, () => {
      const values = (scale: number) => random(count).map((v, i) => (i < specials.length && count > 16 ? specials[i] : v * scale));
      const [w0, g0, v0] = [values(2), values(0.5), values(0.1)];
      for (const [lr, momentum, decay, nesterov] of [
        [0.01, 0.9, 0, false],
        [0.1, 0.5, 1e-4, true],
        [0.003, 0, 0.01, false],
      ] as const) {
        const results = [jsKernels, wasmKernels].map((k) => {
          const [w, g, v] = [inArena(w0), inArena(g0), inArena(v0)];
          for (let step = 0; step < 3; step++) k.sgdUpdate(w, g, v, count, lr, momentum, decay, nesterov);
          return { w, v };
        });
        expect(results[1].w).toEqual(results[0].w);
        expect(results[1].v).toEqual(results[0].v);
      }
      // Adam (l2 decay) and AdamW (decoupled), three steps with the bias corrections of steps 1-3.
      for (const [decoupled, decay] of [[false, 0], [false, 0.01], [true, 0.05]] as const) {
        const results = [jsKernels, wasmKernels].map((k) => {
          const [w, g, m, v] = [inArena(w0), inArena(g0), inArena(v0), inArena(v0.map(Math.abs))];
          for (let step = 1; step <= 3; step++) {
            const lr = 0.01;
            const s = { beta1: 0.9, beta2: 0.999, eps: 1e-8, l2: decoupled ? 0 : decay, shrink: 1 - lr * decay, decoupled, stepSize: lr / (1 - 0.9 ** step), correction2: Math.sqrt(1 - 0.999 ** step) };
            k.adamUpdate(w, g, m, v, count, s);
          }
          return { w, m, v };
        });
        expect(results[1].w).toEqual(results[0].w);
        expect(results[1].m).toEqual(results[0].m);
        expect(results[1].v).toEqual(results[0].v);
      }
      const [s1, s2] = [inArena(g0), inArena(g0)];
      jsKernels.scale(s1, count, 0.37);
      wasmKernels.scale(s2, count, 0.37);
      expect(s2).toEqual(s1);
      const g = inArena(values(1).map((v, i) => (i < specials.length ? v : v * (1 + (i % 5)))));
      // (A square of 3e38 overflows float32 but not double: both kernels square in double.)
      const expected = jsKernels.sumSquares(g, count);
      const actual = wasmKernels.sumSquares(g, count);
      expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-12 * expected);
    });
  }

  it("gives the same bits when the values are split into ranges (threads), and leaves float64 to JS", () => {
    const w = kernelExports()!;
    const count = 5000;
    const [w0, g0, v0] = [random(count), random(count), random(count)];
    const [wa, va, wb, vb] = [inArena(w0), inArena(v0), inArena(w0), inArena(v0)];
    w.sgd_update(arenaAddress(wa), arenaAddress(g0), arenaAddress(va), 0, count, 0.01, 0.9, 0.001, 1);
    for (const [i0, i1] of [[0, 17], [17, 1024], [1024, 4999], [4999, 5000]]) {
      w.sgd_update(arenaAddress(wb), arenaAddress(g0), arenaAddress(vb), i0, i1, 0.01, 0.9, 0.001, 1);
    }
    expect(wb).toEqual(wa);
    expect(vb).toEqual(va);
    const [aw, am, av, bw, bm, bv] = [inArena(w0), inArena(v0), inArena(g0.map(Math.abs)), inArena(w0), inArena(v0), inArena(g0.map(Math.abs))];
    w.adam_update(arenaAddress(aw), arenaAddress(g0), arenaAddress(am), arenaAddress(av), 0, count, 0.9, 0.999, 1e-8, 0, 0.9995, 1, 0.1, 0.04);
    for (const [i0, i1] of [[0, 17], [17, 1024], [1024, 4999], [4999, 5000]]) {
      w.adam_update(arenaAddress(bw), arenaAddress(g0), arenaAddress(bm), arenaAddress(bv), i0, i1, 0.9, 0.999, 1e-8, 0, 0.9995, 1, 0.1, 0.04);
    }
    expect([bw, bm, bv]).toEqual([aw, am, av]);
    const out = allocFloat32(2 * 3);
    const sums = new Float64Array(out.buffer, out.byteOffset, 3);
    w.sum_squares_blocks(arenaAddress(g0), count, 0, 3, arenaAddress(out));
    const whole = [...sums];
    sums.fill(0);
    w.sum_squares_blocks(arenaAddress(g0), count, 2, 3, arenaAddress(out));
    w.sum_squares_blocks(arenaAddress(g0), count, 0, 2, arenaAddress(out));
    expect([...sums]).toEqual(whole);
    // float64 arrays: the JS kernel, exactly.
    const [w64, g64, v64] = [Float64Array.from(w0), Float64Array.from(g0), Float64Array.from(v0)];
    const [w64b, v64b] = [w64.slice(), v64.slice()];
    wasmKernels.sgdUpdate(w64, g64, v64, count, 0.01, 0.9, 0, false);
    jsKernels.sgdUpdate(w64b, g64, v64b, count, 0.01, 0.9, 0, false);
    expect(w64).toEqual(w64b);
    expect(v64).toEqual(v64b);
    expect(wasmKernels.sumSquares(g64, count)).toBe(jsKernels.sumSquares(g64, count));
  });
});

describe("max pooling by ranges of planes (threads)", () => {
  it("gives the same values, argmax and input gradients as one call", () => {
    const w = kernelExports()!;
    const [planes, H, W] = [7, 9, 10];
    const [oH, oW] = [4, 5];
    const x = random(planes * H * W);
    const calls = (ranges: number[][]) => {
      const out = allocFloat32(planes * oH * oW);
      const argmax = allocInt32(planes * oH * oW);
      const grad = allocFloat32(planes * oH * oW).map((_, i) => (i % 5) - 2);
      const inputGrad = allocFloat32(planes * H * W).fill(3);
      const argmaxAt = arenaAddressInt32(argmax);
      expect(argmaxAt).toBeGreaterThan(0);
      for (const [p0, p1] of ranges) w.max_pool_2x2(arenaAddress(x), arenaAddress(out), argmaxAt, p0, p1, H, W, oH, oW);
      const gradIn = inArena(grad);
      for (const [p0, p1] of ranges) w.max_pool_backward(arenaAddress(gradIn), argmaxAt, arenaAddress(inputGrad), p0 * oH * oW, p1 * oH * oW, p0 * H * W, p1 * H * W);
      return { out, argmax, inputGrad };
    };
    const whole = calls([[0, planes]]);
    const split = calls([[3, 7], [0, 1], [1, 3]]);
    expect(split.out).toEqual(whole.out);
    expect(split.argmax).toEqual(whole.argmax);
    expect(split.inputGrad).toEqual(whole.inputGrad);
    expect(whole.inputGrad.some((v) => v === 3)).toBe(false);
  });
});

describe("convolution = the JS kernels", () => {
  // Every geometry of the conv layer tests (layers-conv, gradcheck), with and without kept patches.
  type Case = { input: [number, number, number]; kernel: number | [number, number]; stride: number | [number, number]; padding: "valid" | "same"; filters?: number };
  const cases: Case[] = [];
  for (const padding of ["valid", "same"] as const) {
    for (const stride of [1, 2, 3, [2, 1]] as const) {
      for (const kernel of [3, [2, 3], 1, [4, 2], [3, 2]] as const) {
        cases.push({ input: [3, 9, 8], kernel: kernel as number | [number, number], stride: stride as number | [number, number], padding });
      }
    }
  }
  // W2's layers (with 32 filters of 3×3×16 the weight gradient is a packed GEMM; with few filters
  // or small patches, dot products).
  cases.push({ input: [1, 28, 28], kernel: 3, stride: 1, padding: "valid", filters: 16 }, { input: [16, 13, 13], kernel: 3, stride: 1, padding: "valid", filters: 32 });
  cases.push({ input: [2, 1, 1], kernel: 1, stride: 1, padding: "valid" }, { input: [1, 5, 30], kernel: [1, 5], stride: 1, padding: "same" });

  for (const { input, kernel, stride, padding, filters } of cases) {
    const F = filters ?? 5;
    const name = `[${input}] kernel ${JSON.stringify(kernel)} stride ${JSON.stringify(stride)} ${padding}, ${F} filters`;
    it(name, () => {
      const g = windowGeometry(input, kernel, stride, padding);
      const [C, H, W] = input;
      const rows = 3;
      const patch = C * g.kernelH * g.kernelW;
      const positions = g.outHeight * g.outWidth;
      const x = random(rows * C * H * W);
      const weight = random(F * patch);
      const bias = random(F);
      const gradOut = inArena(random(rows * F * positions).map((v) => (rng.next() < 0.5 ? 0 : v))); // zeros as below a pool
      const run = (k: Kernels, keep: boolean, inputs: { x: Floats; weight: Floats; bias: Floats; gradOut: Floats }) => {
        const out = allocFloat32(rows * F * positions).fill(7);
        const scratch = allocFloat32(k.conv2dScratchSize(g, keep ? rows : 0)).fill(3);
        const grads = [allocFloat32(F * patch).fill(2), allocFloat32(F).fill(2), allocFloat32(rows * C * H * W).fill(2)];
        k.conv2d(inputs.x, inputs.weight, inputs.bias, out, rows, F, g, scratch, keep);
        k.conv2dBackward(inputs.x, inputs.weight, inputs.gradOut, grads[0], grads[1], grads[2], rows, F, g, scratch, keep);
        return [out, ...grads];
      };
      const inputs = { x, weight, bias, gradOut };
      const absInputs = { x: abs(x), weight: abs(weight), bias: abs(bias), gradOut: abs(gradOut) };
      for (const keep of [false, true]) {
        const expected = run(jsKernels, keep, inputs);
        const actual = run(wasmKernels, keep, inputs);
        const scale = run(jsKernels, keep, absInputs);
        actual.forEach((a, i) => expectWithin(a, expected[i], scale[i]));
      }
      // The JS layer of im2col/col2im gives the same values, bit for bit.
      const col = [allocFloat32(positions * patch + 2).fill(9), allocFloat32(positions * patch + 2).fill(9)];
      jsKernels.im2col(x, C * H * W, col[0], 1, g);
      wasmKernels.im2col(x, C * H * W, col[1], 1, g);
      expect(col[1]).toEqual(col[0]);
      const back = [allocFloat32(2 * C * H * W).fill(1), allocFloat32(2 * C * H * W).fill(1)];
      jsKernels.col2im(col[0], 1, back[0], C * H * W, g);
      wasmKernels.col2im(col[0], 1, back[1], C * H * W, g);
      expect(back[1]).toEqual(back[0]);
    });
  }

  it("patches kept by one implementation are never misread by the other", () => {
    const g = windowGeometry([2, 7, 6], 3, 1, "same");
    const [rows, F] = [2, 3];
    const patch = 18;
    const positions = 42;
    const x = random(rows * 84);
    const weight = random(F * patch);
    const gradOut = random(rows * F * positions);
    const reference = [allocFloat32(F * patch), allocFloat32(F), allocFloat32(rows * 84)];
    const scratch = allocFloat32(jsKernels.conv2dScratchSize(g, rows));
    const out = allocFloat32(rows * F * positions);
    jsKernels.conv2d(x, weight, random(F), out, rows, F, g, scratch, true);
    jsKernels.conv2dBackward(x, weight, gradOut, reference[0], reference[1], reference[2], rows, F, g, scratch, true);
    const scale = maxAbs(reference[0]) + maxAbs(reference[2]);

    // JS forward keeps [positions, K] patches; the WebAssembly backward recomputes its own.
    const grads = [allocFloat32(F * patch), allocFloat32(F), allocFloat32(rows * 84)];
    wasmKernels.conv2dBackward(x, weight, gradOut, grads[0], grads[1], grads[2], rows, F, g, scratch, true);
    grads.forEach((a, i) => expectWithin(a, reference[i], scale));
    // WebAssembly forward keeps its transposed patches; a backward that has to fall back to JS
    // (here: a weight gradient outside the arena) recomputes them.
    wasmKernels.conv2d(x, weight, random(F), out, rows, F, g, scratch, true);
    const plain = [new Float32Array(F * patch), new Float32Array(F), new Float32Array(rows * 84)];
    wasmKernels.conv2dBackward(x, weight, gradOut, plain[0], plain[1], plain[2], rows, F, g, scratch, true);
    plain.forEach((a, i) => expectWithin(a, reference[i], scale));
  });
});

describe("max pooling = the JS kernels, bit for bit (values and argmax)", () => {
  const cases: [number, number, number, number | [number, number], number | [number, number], "valid" | "same"][] = [
    [3, 26, 26, 2, 2, "valid"],
    [2, 11, 11, 2, 2, "valid"], // odd: the last row and column are dropped
    [1, 2, 9, 2, 2, "valid"],
    [2, 7, 10, 2, 2, "same"], // padded: the JS kernel
    [2, 8, 7, 3, 2, "valid"],
    [2, 8, 7, [2, 3], 1, "valid"],
  ];
  for (const [C, H, W, pool, stride, padding] of cases) {
    it(`[${C}, ${H}, ${W}] pool ${JSON.stringify(pool)} stride ${JSON.stringify(stride)} ${padding}`, () => {
      const g = windowGeometry([C, H, W], pool, stride, padding);
      const rows = 3;
      const count = rows * C * H * W;
      // Ties, zeros of both signs, infinities and NaNs, among random values.
      const x = inArena(
        random(count).map((v) => {
          const r = rng.next();
          return r < 0.1 ? 0.5 : r < 0.15 ? -0 : r < 0.2 ? 0 : r < 0.22 ? NaN : r < 0.24 ? Infinity : r < 0.26 ? -Infinity : v;
        }),
      );
      const outCount = rows * C * g.outHeight * g.outWidth;
      const results = [jsKernels, wasmKernels].map((k) => {
        const out = allocFloat32(outCount);
        const argmax = allocInt32(outCount);
        k.maxPool2d(x, out, argmax, rows, g);
        const grad = allocFloat32(outCount);
        grad.forEach((_, i) => (grad[i] = (i % 7) - 3));
        const inputGrad = allocFloat32(count).fill(5);
        k.maxPool2dBackward(grad, argmax, inputGrad, rows, g);
        return { out, argmax, inputGrad };
      });
      expect(results[1].argmax).toEqual(results[0].argmax);
      expect(results[1].out).toEqual(results[0].out);
      expect(results[1].inputGrad).toEqual(results[0].inputGrad);
    });
  }
});

describe("the arena", () => {
  it("hands out zeroed, 64-byte aligned, non-overlapping arrays", () => {
    const arrays = Array.from({ length: 200 }, (_, i) => allocFloat32(1 + ((i * 7919) % 1000)));
    arrays.push(allocFloat32(16), allocFloat32(17));
    for (const a of arrays) {
      expect(arenaAddress(a)).toBeGreaterThan(0);
      expect(a.byteOffset % ARENA_ALIGN).toBe(0);
      expect(a.every((v) => v === 0)).toBe(true);
    }
    arrays.forEach((a, i) => a.fill(i));
    arrays.forEach((a, i) => expect(a.every((v) => v === i)).toBe(true));
    const ints = allocInt32(10);
    expect(ints.byteOffset % ARENA_ALIGN).toBe(0);
    expect(ints.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it("keeps every view valid, and usable by the kernels, when the memory grows", () => {
    const before = allocFloat32(1000).fill(3);
    const { capacity, growths } = arenaStats();
    const big = allocFloat32(capacity / 4); // more than all there is: the memory must grow
    expect(arenaStats().growths).toBeGreaterThan(growths);
    expect(arenaAddress(big)).toBeGreaterThan(0);
    expect(before.every((v) => v === 3)).toBe(true);
    before.fill(2);
    big[big.length - 1] = 1;
    const out = allocFloat32(1);
    wasmKernels.sumRows(before, out, 1000, 1); // an old view through WebAssembly
    expect(out[0]).toBe(2000);
    expect(big[big.length - 1]).toBe(1);
  });

  it("zeroes memory handed out again, also at the top of the arena", async () => {
    // Dropped blocks at the top give the space back to the top; what is handed out from there next
    // has been written before (optimizer state relies on starting at zero).
    for (let round = 0; round < 3; round++) {
      (() => {
        for (let i = 0; i < 20; i++) allocFloat32(5000 + i).fill(7);
      })();
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
      for (let i = 0; i < 20; i++) expect(allocFloat32(5000 + i).every((v) => v === 0)).toBe(true);
    }
  });

  it("reuses the blocks of arrays that were dropped", async () => {
    const settle = async () => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20)); // finalizers run after the collection
    };
    const grab = () => {
      for (let i = 0; i < 50; i++) allocFloat32(100_000).fill(1);
    };
    await settle();
    const live = arenaStats().live;
    grab();
    expect(arenaStats().live).toBeGreaterThanOrEqual(live + 50 * 400_000);
    await settle();
    expect(arenaStats().live).toBeLessThan(live + 400_000); // all 50 given back
    const capacity = arenaStats().capacity;
    grab();
    expect(arenaStats().capacity).toBe(capacity); // no growth: the freed blocks were reused
    const again = allocFloat32(100_000);
    expect(again.every((v) => v === 0)).toBe(true); // a recycled block is zeroed
  });
});

const MLP = [
  { type: "dense", units: 256, activation: "relu" },
  { type: "dense", units: 128, activation: "relu" },
  { type: "dense", units: 10, activation: "softmax" },
];

/** A model, cross-entropy and SGD with momentum, stepped as train.ts steps. */
function trainer(layers: unknown[], inputShape: number[] | undefined, inputWidth: number, classes: number, batch: number) {
  const model = buildModel(modelSchema.parse({ input_shape: inputShape, layers }), inputWidth, { seed: 3, foldOutput: "softmax" });
  const loss = createLoss("cross_entropy");
  const optimizer = createOptimizer(optimizerSchema.parse({ type: "sgd", lr: 0.05, momentum: 0.9 }), model);
  model.reserve(batch);
  // Four batches made beforehand, taken in turn (making data is not part of a step).
  const data = new Rng(9);
  const fill = (a: Float32Array, value: () => number) => {
    for (let i = 0; i < a.length; i++) a[i] = value(); // in place (map would make a plain array)
    return a;
  };
  const batches = Array.from({ length: 4 }, () => ({
    x: fill(allocFloat32(batch * inputWidth), () => data.uniform(-1, 1)),
    y: fill(allocFloat32(batch), () => data.int(classes)),
  }));
  const grad = allocFloat32(batch * classes);
  let steps = 0;
  return {
    model,
    step() {
      const { x, y } = batches[steps++ % batches.length];
      const out = model.forward(x, batch, true);
      const value = loss.evaluate(out, y, batch, classes, grad);
      model.backward(grad, batch);
      optimizer.step(0.05);
      return value;
    },
  };
}

describe("training with the WebAssembly kernels", () => {
  const networks: [string, unknown[], number[] | undefined, number][] = [
    ["an MLP", [{ type: "dense", units: 33, activation: "relu" }, { type: "dense", units: 17, activation: "tanh" }, { type: "dense", units: 5, activation: "softmax" }], undefined, 23],
    [
      "a CNN",
      [
        { type: "conv2d", filters: 6, kernel_size: 3, activation: "relu" },
        { type: "maxpool2d", pool_size: 2 },
        { type: "conv2d", filters: 8, kernel_size: 3, padding: "same", activation: "sigmoid" },
        { type: "maxpool2d", pool_size: 2 },
        { type: "flatten" },
        { type: "dense", units: 5, activation: "softmax" },
      ],
      [2, 12, 12],
      288,
    ],
  ];
  for (const [name, layers, shape, width] of networks) {
    it(`${name}: the weights after 5 float32 steps match the JS kernels' within 1e-5`, () => {
      const a = trainer(layers, shape, width, 5, 16);
      const b = trainer(layers, shape, width, 5, 16);
      expect(a.model.params).toEqual(b.model.params);
      for (let s = 0; s < 5; s++) {
        setKernels("wasm");
        const lossA = a.step();
        setKernels("js");
        const lossB = b.step();
        expect(Math.abs(lossA - lossB)).toBeLessThan(1e-5 * Math.abs(lossB));
      }
      const moved = a.model.params.some((v, i) => v !== b.model.params[i]);
      expect(moved).toBe(true); // not vacuous: float32 rounding does differ...
      expectWithin(a.model.params, b.model.params, maxAbs(b.model.params)); // ...by no more than this
    });

    it(`${name}: two runs from the same seed end with bit-identical weights`, () => {
      const runs = [0, 1].map(() => {
        const t = trainer(layers, shape, width, 5, 16);
        for (let s = 0; s < 5; s++) t.step();
        return Float32Array.from(t.model.params);
      });
      expect(runs[1]).toEqual(runs[0]);
    });
  }

  it("allocates nothing per step: 1,000 warm W1 steps grow the heap by less than 1 MB", () => {
    const t = trainer(MLP, undefined, 784, 10, 64);
    const young = () => v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space")!.space_used_size;
    // Warm until V8 has optimised the step: unoptimised code boxes numbers (megabytes over the
    // first few hundred steps under vitest's module transform). A step that really allocates never
    // settles, and fails below.
    for (let round = 0; round < 12; round++) {
      gc();
      const start = young();
      for (let s = 0; s < 200; s++) t.step();
      if (young() - start < 16 * 1024) break;
    }
    gc();
    const before = process.memoryUsage().heapUsed;
    const start = young();
    for (let s = 0; s < 1000; s++) t.step();
    const garbage = young() - start;
    gc();
    const retained = process.memoryUsage().heapUsed - before;
    if (process.env.SHOW_HEAP) console.log(`1,000 W1 steps: ${garbage} bytes of garbage, ${retained} retained`);
    // Garbage made by the steps, counted before any collection (young space shrinking would mean a
    // scavenge ran: megabytes allocated): a few boxed numbers, not one array per call. Measured:
    // 20 to 70 KB as it is; 250 KB with one 3-element array per matmul call. (Old space is left
    // out: V8's compiler puts its own metadata there now and then.)
    expect(garbage, "a scavenge ran during the steps").toBeGreaterThanOrEqual(0);
    expect(garbage).toBeLessThan(128 * 1024);
    expect(retained).toBeLessThan(1 << 20);
  });
});
