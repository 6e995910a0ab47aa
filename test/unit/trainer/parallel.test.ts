// Multi-threaded kernels: a pool of helper threads (workers/kernel-pool.ts) on the arena's shared
// memory must give bit-identical weights to the single-thread run.
import { afterAll, describe, expect, it } from "vitest";
import { buildModel, createLoss, createOptimizer, modelSchema, optimizerSchema } from "../../../src/trainer/index.js";
import { chunkBounds, evenShares, ownedPieces, parallelExecutor, rangeStart, rebalanceShares, SHARE_ONE } from "../../../src/trainer/parallel.js";
import { jsKernels, kernels, kernelsChoice } from "../../../src/trainer/kernels.js";
import { allocFloat32, allocInt32 } from "../../../src/trainer/wasm/arena.js";
import { VALUE_PIECE } from "../../../src/trainer/wasm/wasm-kernels.js";
import { inputWidth, syntheticData, targetWidth, WORKLOADS, type Workload } from "../../bench/workloads.js";
import {
  claimOwned,
  claimRange,
  CLOSED_TICKET,
  ctrlOwned,
  CTRL_CHUNKS,
  CTRL_TICKET,
  controlLength,
  FIXED_TICKET,
  ownedWord,
  startKernelPool,
  ticket,
  type KernelPool,
} from "../../../workers/kernel-pool.js";
import { jobThreads } from "../../../src/config.js";

const STEPS = 4;

/** Weights after STEPS training steps (train.ts's step), and predictions on one batch afterwards. */
function trainSteps(w: Workload): { params: Float32Array; predictions: Float32Array } {
  const spec = modelSchema.parse({ input_shape: w.inputShape, layers: w.layers });
  const loss = createLoss(w.loss);
  const width = inputWidth(w);
  const model = buildModel(spec, width, { seed: 7, foldOutput: "softmax" });
  const optimizer = createOptimizer(optimizerSchema.parse(w.optimizer), model);
  const data = syntheticData(w, 7);
  const batch = w.batch;
  const tw = targetWidth(w);
  model.reserve(batch);
  const lossGrad = new Float32Array(batch * model.outputWidth);
  for (let b = 0; b < STEPS; b++) {
    const x = data.x.subarray(b * batch * width, (b + 1) * batch * width);
    const y = data.y.subarray(b * batch * tw, (b + 1) * batch * tw);
    const output = model.forward(x, batch, true);
    const batchLoss = loss.evaluate(output, y, batch, model.outputWidth, lossGrad);
    expect(Number.isFinite(batchLoss)).toBe(true);
    model.backward(lossGrad, batch);
    optimizer.step(w.optimizer.lr);
  }
  const predictions = Float32Array.from(model.predict(data.x.subarray(0, batch * width), batch));
  return { params: Float32Array.from(model.params as Float32Array), predictions };
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe("parallel kernels", () => {
  let pool: KernelPool | null = null;
  afterAll(async () => {
    await pool?.close();
  });

  it("clamps a job's threads to its share of the worker's cores", () => {
    const worker = { threadsPerJob: 2, workerCores: 8, workerConcurrency: 2 };
    expect(jobThreads(worker, undefined)).toEqual({ threads: 2, clampedFrom: null });
    expect(jobThreads(worker, 4)).toEqual({ threads: 4, clampedFrom: null });
    expect(jobThreads(worker, 6)).toEqual({ threads: 4, clampedFrom: 6 });
    expect(jobThreads({ threadsPerJob: 4, workerCores: 2, workerConcurrency: 4 }, undefined)).toEqual({ threads: 1, clampedFrom: 4 });
  });

  it("splits ranges on aligned bounds that cover everything", () => {
    expect([0, 1, 2].map((i) => rangeStart(64, 2, 8, i))).toEqual([0, 32, 64]);
    expect([0, 1, 2, 3].map((i) => rangeStart(10, 3, 4, i))).toEqual([0, 4, 8, 10]);
    expect([0, 1, 2].map((i) => rangeStart(3, 2, 8, i))).toEqual([0, 3, 3]);
  });

  it("cuts one range per thread, then smaller ones when asked, skipping empty ones", () => {
    const bounds = new Int32Array(8);
    const cut = (total: number, align: number, threads: number, piece = 0) =>
      Array.from(bounds.subarray(0, chunkBounds(total, align, threads, bounds, piece) + 1));
    expect(cut(64, 8, 2)).toEqual([0, 32, 64]);
    expect(cut(10, 4, 3)).toEqual([0, 4, 8, 10]);
    expect(cut(3, 8, 2)).toEqual([0, 3]);
    expect(cut(16, 8, 4)).toEqual([0, 8, 16]);
    // With pieces: the threads' ranges take 70%, the rest goes in up to 2 per thread of at least the piece.
    expect(cut(784, 8, 2, 64)).toEqual([0, 272, 544, 624, 704, 784]);
    expect(cut(100, 1, 2, 40)).toEqual([0, 50, 100]);
    expect(cut(1000, 1, 2, 10)).toEqual([0, 350, 700, 775, 850, 925, 1000]);
  });

  it("cuts one range per thread at the threads' shares", () => {
    const bounds = new Int32Array(8);
    const cut = (total: number, align: number, shares: number[]) =>
      Array.from(bounds.subarray(0, chunkBounds(total, align, shares.length - 1, bounds, 0, Int32Array.from(shares)) + 1));
    // 256 units in 32 runs of 8: 20000/65536 of 32 runs is 9.77, so 10 runs.
    expect(cut(256, 8, [0, 20_000, SHARE_ONE])).toEqual([0, 80, 256]);
    // Even shares cut as without shares.
    expect(cut(256, 8, Array.from(evenShares(2)))).toEqual([0, 128, 256]);
    expect(cut(100, 8, Array.from(evenShares(3)))).toEqual(Array.from(bounds.subarray(0, chunkBounds(100, 8, 3, bounds) + 1)));
    // A share too small for one run gives no range.
    expect(cut(16, 8, [0, 10, SHARE_ONE])).toEqual([0, 8, 16]);
    expect(cut(16, 8, [0, 0, SHARE_ONE])).toEqual([0, 16]);
  });

  it("cuts a task of one range per thread into owned pieces: at the shares, a product's range ending in two pieces of an eighth", () => {
    const bounds = new Int32Array(16);
    const firsts = new Int32Array(4);
    const cut = (total: number, align: number, shares: number[], tails: number) => {
      const threads = shares.length - 1;
      const count = ownedPieces(total, align, threads, Int32Array.from(shares), tails, bounds, firsts);
      const pieces = Array.from(bounds.subarray(0, count + 1));
      // Every piece holds something, every bound is aligned (or the total), all is covered.
      for (let i = 0; i < count; i++) expect(pieces[i + 1]).toBeGreaterThan(pieces[i]);
      for (const b of pieces) expect(b === total || b % align === 0).toBe(true);
      expect(pieces[0]).toBe(0);
      expect(pieces[count]).toBe(total);
      return { pieces, firsts: Array.from(firsts.subarray(0, threads + 1)) };
    };
    const even = Array.from(evenShares(2));
    // W1's first layer: 256 units in runs of 8, 16 runs a thread: a head of 12, two pieces of 2.
    expect(cut(256, 8, even, 2)).toEqual({ pieces: [0, 96, 112, 128, 224, 240, 256], firsts: [0, 3, 6] });
    // Without tails, or with them, the threads' ranges are chunkBounds's at the same shares.
    for (const shares of [even, [0, 20_000, SHARE_ONE], Array.from(evenShares(3))]) {
      const expected = Array.from(bounds.subarray(0, chunkBounds(100, 8, shares.length - 1, bounds, 0, Int32Array.from(shares)) + 1));
      expect(cut(100, 8, shares, 0).pieces).toEqual(expected);
      const { pieces, firsts: starts } = cut(100, 8, shares, 2);
      expect(starts.map((p) => pieces[p])).toEqual(expected);
    }
    // Not a multiple of the alignment: 13 runs, 7 and 6; pieces of one run.
    expect(cut(100, 8, even, 2)).toEqual({ pieces: [0, 40, 48, 56, 88, 96, 100], firsts: [0, 3, 6] });
    // One run a thread: no tails. A share with no run: no pieces (that thread's first is the next's).
    expect(cut(16, 8, even, 2)).toEqual({ pieces: [0, 8, 16], firsts: [0, 1, 2] });
    expect(cut(16, 8, [0, 0, SHARE_ONE], 2)).toEqual({ pieces: [0, 8, 16], firsts: [0, 0, 2] });
  });

  it("claims a thread's own pieces from the first, then the others' from the last, each once, none of another task", () => {
    const control = new Int32Array(controlLength(2));
    const words = ctrlOwned(2);
    // Generation 5, three threads: pieces 0-2, 3-5 and 6 (a thread with one piece).
    const set = (gen: number) => [0, 3, 6, 7].forEach((first, t, all) => t < 3 && (control[words + t] = ownedWord(gen, first, all[t + 1])));
    set(5);
    const claims = (thread: number) => claimOwned(control, 5, thread, 3);
    expect([claims(0), claims(1), claims(2)]).toEqual([0, 3, 6]);
    // Thread 2 has none left: it takes thread 0's last, then thread 0's next-to-last.
    expect([claims(2), claims(2)]).toEqual([2, 1]);
    // Thread 0 has none left: it takes thread 1's last; thread 1 its own next.
    expect([claims(0), claims(1)]).toEqual([5, 4]);
    expect([claims(0), claims(1), claims(2)]).toEqual([-1, -1, -1]);
    // Another task's generation claims nothing; the words hold 16 bits of it.
    set(5);
    expect(claimOwned(control, 4, 0, 3)).toBe(-1);
    expect(claimOwned(control, 0x10005, 1, 3)).toBe(3);
  });

  it("moves the shares halfway towards the threads' measured speeds, keeping about a quarter of an even share at least", () => {
    const shares = evenShares(2);
    // Thread 0 took twice as long for the same work: it is worth a third of the two.
    rebalanceShares(shares, Float64Array.of(10, 10), Float64Array.of(20, 10));
    expect(shares[1]).toBe(Math.round(((0.5 + 1 / 3) / 2) * SHARE_ONE));
    for (let i = 0; i < 30; i++) rebalanceShares(shares, Float64Array.of(1, 2), Float64Array.of(1, 2));
    expect(shares[1]).toBeGreaterThan(Math.floor(SHARE_ONE / 2) - 2); // equal speeds again: back to even
    expect(shares[1]).toBeLessThan(Math.ceil(SHARE_ONE / 2) + 2);
    // A thread a thousand times slower keeps about a quarter of its even share (an eighth of the
    // whole before the widths are scaled to add up, a ninth after).
    for (let i = 0; i < 30; i++) rebalanceShares(shares, Float64Array.of(1, 1), Float64Array.of(1000, 1));
    expect(shares[1]).toBeGreaterThanOrEqual(SHARE_ONE / 9);
    expect(shares[1]).toBeLessThanOrEqual(SHARE_ONE / 8 + 1);
    expect(shares[2]).toBe(SHARE_ONE);
    // A missing figure: nothing moves.
    const before = Array.from(shares);
    rebalanceShares(shares, Float64Array.of(1, 0), Float64Array.of(1, 1));
    expect(Array.from(shares)).toEqual(before);
  });

  it("claims each range once, in order, and none of a task that has ended", () => {
    const control = new Int32Array(controlLength(1));
    control[CTRL_CHUNKS] = 3;
    Atomics.store(control, CTRL_TICKET, ticket(7, 1));
    // Generation 6's helper (woken late) finds nothing; generation 7's gets ranges 1 and 2, then none.
    expect(claimRange(control, 6)).toBe(-1);
    expect([claimRange(control, 7), claimRange(control, 7), claimRange(control, 7)]).toEqual([1, 2, -1]);
    // Generations past 2^24 wrap in the ticket, and still match only their own.
    Atomics.store(control, CTRL_TICKET, ticket(0x1000005, 0));
    expect(claimRange(control, 5)).toBe(0);
    expect(claimRange(control, 0x1000004)).toBe(-1);
    // Fixed ranges: nothing to claim.
    Atomics.store(control, CTRL_TICKET, ticket(8, FIXED_TICKET));
    expect(claimRange(control, 8)).toBe(-1);
    // A task that has ended: start() closes its ticket before it writes the next task's count of
    // ranges, so a helper late for generation 9 (all 2 ranges claimed) that reads the next task's
    // count (6) claims nothing. (Before the ticket was closed, it claimed "range 2" of the ended
    // task, counted it done in the next one, and the training thread once waited forever.)
    control[CTRL_CHUNKS] = 2;
    Atomics.store(control, CTRL_TICKET, ticket(9, 2));
    Atomics.store(control, CTRL_TICKET, ticket(9, CLOSED_TICKET));
    control[CTRL_CHUNKS] = 6;
    expect(claimRange(control, 9)).toBe(-1);
  });

  it("gives the single-thread results through thousands of short tasks back to back (helpers late, asleep, or stealing)", async () => {
    // Each task is just over the split threshold, so the calling thread often finishes its range
    // before a helper has woken, and takes the helper's too; some gaps let the helpers fall asleep.
    const count = (1 << 15) + 48;
    const params = allocFloat32(count);
    const grads = allocFloat32(count);
    const velocity = allocFloat32(count);
    const run = (): { sums: number[]; params: Float32Array } => {
      for (let i = 0; i < count; i++) {
        params[i] = Math.sin(i);
        grads[i] = Math.cos(3 * i);
        velocity[i] = 0;
      }
      const sums: number[] = [];
      for (let t = 0; t < 3000; t++) {
        kernels.sgdUpdate(params, grads, velocity, count, 0.01, 0.9, 0, false);
        kernels.reluBackward(params, grads, count);
        sums.push(kernels.sumSquares(params, count));
        if (t % 500 === 499) {
          const until = performance.now() + 2;
          while (performance.now() < until);
        }
      }
      return { sums, params: Float32Array.from(params) };
    };
    expect(parallelExecutor()).toBeNull();
    const single = run();
    const local = await startKernelPool(2);
    try {
      const threaded = run();
      expect(threaded.sums).toEqual(single.sums);
      expect(bits(threaded.params)).toEqual(bits(single.params));
      // Some ranges were taken here that a helper could have claimed, and not all of them.
      const claimable = 3 * 3000 * (chunkBounds(count, 16, 2, new Int32Array(8), VALUE_PIECE) - 1);
      expect(local.taken).toBeGreaterThan(0);
      expect(local.taken).toBeLessThan(claimable);
    } finally {
      await local.close();
    }
    expect(parallelExecutor()).toBeNull();
  }, 60_000);

  it("gives the single-thread results when the training thread takes a helper's pieces (a helper held up, or asleep)", async () => {
    // A product split by columns into owned pieces (2 threads: a head and two tails each). After a
    // pause the helper sleeps, and the training thread, done with its own pieces, takes the
    // helper's from the last; the helper may still take its head, or take nothing.
    const m = 64, k = 96, n = 512;
    const a = allocFloat32(m * k), b = allocFloat32(k * n), c = allocFloat32(m * n);
    for (let i = 0; i < a.length; i++) a[i] = Math.sin(i);
    for (let i = 0; i < b.length; i++) b[i] = Math.cos(i) - 0.1;
    const run = (): Uint32Array => {
      const out = new Uint32Array(200 * 4);
      for (let t = 0; t < 200; t++) {
        kernels.matmul(a, b, c, m, k, n, null);
        out.set([0, 100, 300, 511].map((j) => bits(c)[(t % m) * n + j]), 4 * t);
        if (t % 3 === 0) {
          const until = performance.now() + 1;
          while (performance.now() < until);
        }
      }
      return out;
    };
    expect(parallelExecutor()).toBeNull();
    const single = run();
    const local = await startKernelPool(2);
    try {
      expect(run()).toEqual(single);
      expect(local.taken).toBeGreaterThan(0);
    } finally {
      await local.close();
    }
  }, 60_000);

  it("updates parameters by blocks of rows (ParamBlocks) to the same bits as the flat JS loop, for SGD and Adam, 2 and 3 threads", async () => {
    // Blocks of every kind of shape: rows not a multiple of 8, fewer rows than 8 per thread, one
    // row, one column (a bias), a long column (any other layer's parameters).
    const shapes: [number, number][] = [[37, 301], [37, 1], [1, 700], [5, 9], [12_000, 1], [256, 64], [3, 1]];
    const count = shapes.reduce((n, [r, c]) => n + r * c, 0);
    expect(count).toBeGreaterThan(1 << 15); // large enough to be split over the threads
    const blocks = allocInt32(3 * shapes.length);
    let at = 0;
    shapes.forEach(([rows, cols], i) => {
      blocks.set([at, rows, cols], 3 * i);
      at += rows * cols;
    });
    // In the arena, where the WebAssembly kernels run (filled in place: map would copy out of it).
    const fill = () => {
      const params = allocFloat32(count);
      const grads = allocFloat32(count);
      for (let i = 0; i < count; i++) {
        params[i] = Math.sin(i);
        grads[i] = Math.cos(7 * i) * 0.1;
      }
      return { params, grads, s1: allocFloat32(count), s2: allocFloat32(count) };
    };
    const adam = { beta1: 0.9, beta2: 0.999, eps: 1e-8, l2: 0.01, shrink: 1, decoupled: false, stepSize: 0.001, correction2: 0.05 };
    const steps = (withBlocks: boolean, js: boolean) => {
      const sgd = fill();
      const ad = fill();
      const k = js ? jsKernels : kernels;
      for (let t = 0; t < 5; t++) {
        k.sgdUpdate(sgd.params, sgd.grads, sgd.s1, count, 0.01, 0.9, 0.001, t % 2 === 1, withBlocks ? blocks : null);
        k.adamUpdate(ad.params, ad.grads, ad.s1, ad.s2, count, adam, withBlocks ? blocks : null);
      }
      const all = [sgd.params, sgd.s1, ad.params, ad.s1, ad.s2];
      const out = new Uint32Array(all.length * count);
      all.forEach((a, i) => out.set(bits(a), i * count));
      return out;
    };
    // The first value that differs from the reference (-1: none), a short message when one does.
    const reference = steps(false, true);
    const firstDifference = (a: Uint32Array) => a.findIndex((v, i) => v !== reference[i]);
    expect(parallelExecutor()).toBeNull();
    expect(firstDifference(steps(true, false))).toBe(-1);
    // Even shares, then shares far from even (the pool moves them towards the threads' speeds).
    const uneven = { 2: [0, 9000, SHARE_ONE], 3: [0, 40_000, 50_000, SHARE_ONE] };
    for (const threads of [2, 3] as const) {
      const local = await startKernelPool(threads);
      try {
        expect(firstDifference(steps(true, false))).toBe(-1);
        expect(firstDifference(steps(false, false))).toBe(-1);
        local.shares.set(uneven[threads]);
        expect(firstDifference(steps(true, false))).toBe(-1);
      } finally {
        await local.close();
      }
    }
  }, 60_000);

  it("gives the single-thread results through tasks of different counts of ranges back to back", async () => {
    // A product split by columns (2 ranges), relu (4: with the small end ranges), the sums of
    // squares, over and over: each task's helper, done with its last range, looks for another just
    // as the training thread writes the next task's count of ranges (see the closed ticket above).
    const m = 32, k = 8, n = 1024; // 262,144 multiply-adds: split, by columns (m < n); 2^15 outputs
    const a = allocFloat32(m * k).map((_, i) => Math.sin(i));
    const b = allocFloat32(k * n).map((_, i) => Math.cos(i) - 0.1);
    const c = allocFloat32(m * n);
    const run = (): Float32Array => {
      const sums = new Float32Array(3000);
      for (let t = 0; t < sums.length; t++) {
        kernels.matmul(a, b, c, m, k, n, null);
        kernels.relu(c, m * n);
        sums[t] = kernels.sumSquares(c, m * n);
      }
      return sums;
    };
    expect(parallelExecutor()).toBeNull();
    const single = run();
    const local = await startKernelPool(2);
    try {
      expect(bits(run())).toEqual(bits(single));
    } finally {
      await local.close();
    }
  }, 60_000);

  it("times what a helper runs of a task of owned pieces, and only that (rangeTimes: the shares' figures)", async () => {
    const m = 32, k = 64, n = 512; // split by columns into owned pieces
    const a = allocFloat32(m * k), b = allocFloat32(k * n), c = allocFloat32(m * n);
    for (let i = 0; i < a.length; i++) a[i] = Math.sin(i);
    for (let i = 0; i < b.length; i++) b[i] = Math.cos(i);
    const local = await startKernelPool(2);
    try {
      let helperRan = 0;
      for (let t = 0; t < 200; t++) {
        local.rangeTimes.fill(-1);
        kernels.matmul(a, b, c, m, k, n, null);
        // The training thread's time is never written there; the helper's busy time is, unless
        // the training thread took all its pieces first (then it stays -1 too).
        expect(local.rangeTimes[0]).toBe(-1);
        const helper = local.rangeTimes[1];
        if (helper !== -1) {
          helperRan++;
          expect(helper).toBeGreaterThan(0);
          expect(helper).toBeLessThan(1000);
        }
      }
      expect(helperRan).toBeGreaterThan(0);
    } finally {
      await local.close();
    }
  }, 60_000);

  it("gives bit-identical weights with 2 threads (MLP 784-256-128-10 and the CNN), and shuts down cleanly", async () => {
    expect(kernelsChoice()).toBe("wasm");
    const single = { W1: trainSteps(WORKLOADS.W1), W2: trainSteps(WORKLOADS.W2) };
    pool = await startKernelPool(2);
    expect(pool.threads).toBe(2);
    expect(parallelExecutor()).toBe(pool);
    for (const id of ["W1", "W2"] as const) {
      const threaded = trainSteps(WORKLOADS[id]);
      expect(bits(threaded.params)).toEqual(bits(single[id].params));
      expect(bits(threaded.predictions)).toEqual(bits(single[id].predictions));
    }
    // W1's units shared out unevenly (a thread with 5 of every 16): the same bits.
    pool.shares.set([0, 20_000, SHARE_ONE]);
    expect(bits(trainSteps(WORKLOADS.W1).params)).toEqual(bits(single.W1.params));
    await pool.close();
    expect(parallelExecutor()).toBeNull();
    // Single-threaded again afterwards.
    expect(bits(trainSteps(WORKLOADS.W1).params)).toEqual(bits(single.W1.params));
  });
});
