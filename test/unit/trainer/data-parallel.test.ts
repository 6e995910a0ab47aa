// Data-parallel steps (src/trainer/data-parallel.ts): with helper threads, each batch is cut into
// chunks of rows that the model and replicas on the helpers train, whichever is free. The
// gradients, losses and weights must match the single-thread run to float32 rounding (a weight's
// gradient is a sum over the rows, added up in parts), and be the same bit for bit whatever the
// threads; models whose rows are not independent, or whose batches use each parameter too few
// times (MIN_PARAM_REUSE: dense nets below 256 rows), must keep the single-thread pass.
import { afterAll, describe, expect, it } from "vitest";
import { buildModel, createLoss, createOptimizer, modelSchema, optimizerSchema, type LossConfig } from "../../../src/trainer/index.js";
import { chunkRowsFor, createGradientPass, forwardMacsPerRow, MIN_CHUNK_REUSE, MIN_PARAM_REUSE, MIN_SHARED_MACS, reusesParams, splitsBatches } from "../../../src/trainer/data-parallel.js";
import { MAX_ARGS, MAX_FARGS, MAX_REPLICA_CHUNKS, TASK_REPLICA_STEP, parallelExecutor, setParallelExecutor, type ParallelExecutor } from "../../../src/trainer/parallel.js";
import { allocFloat32 } from "../../../src/trainer/wasm/arena.js";
import { Rng } from "../../../src/trainer/rng.js";
import { startKernelPool, type KernelPool } from "../../../workers/kernel-pool.js";
import { inputWidth, syntheticData, targetWidth, WORKLOADS } from "../../bench/workloads.js";

interface Case {
  layers: unknown[];
  inputShape: number[];
  loss: LossConfig;
  batch: number;
  /** Regression targets (width = the last layer's units), else class labels. */
  classes: number | null;
}

const STEPS = 4;

/** A seeded data set of `STEPS` batches for a case. */
function dataFor(c: Case, outputWidth: number): { x: Float32Array; y: Float32Array } {
  const rng = new Rng(11, 0);
  const width = c.inputShape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: STEPS * c.batch * width }, () => rng.uniform(-1, 1));
  const y =
    c.classes === null
      ? Float32Array.from({ length: STEPS * c.batch * outputWidth }, () => rng.uniform(-1, 1))
      : Float32Array.from({ length: STEPS * c.batch }, () => Math.floor(rng.uniform(0, c.classes!)));
  return { x, y };
}

interface Run {
  threads: number;
  losses: number[];
  /** The gradients of the first batch. */
  grads: Float32Array;
  params: Float32Array;
}

/** STEPS steps as train.ts takes them (gradient pass, then the optimizer), batches in the arena. */
function trainWithPass(c: Case, rowsOf: (step: number) => number = () => c.batch): Run {
  const spec = modelSchema.parse({ input_shape: c.inputShape, layers: c.layers });
  const loss = createLoss(c.loss);
  const width = c.inputShape.reduce((a, b) => a * b, 1);
  const model = buildModel(spec, width, { seed: 5, foldOutput: loss.foldsOutput ?? undefined });
  const optimizer = createOptimizer(optimizerSchema.parse({ type: "sgd", lr: 0.05, momentum: 0.9 }), model);
  const tw = loss.targetWidth(model.outputWidth);
  const data = dataFor(c, model.outputWidth);
  model.reserve(c.batch);
  const lossGrad = allocFloat32(c.batch * model.outputWidth);
  const bx = allocFloat32(c.batch * width);
  const by = allocFloat32(c.batch * tw);
  const pass = createGradientPass(model, loss, c.loss, lossGrad, c.batch);
  const losses: number[] = [];
  let grads = new Float32Array(0);
  for (let s = 0; s < STEPS; s++) {
    const rows = rowsOf(s);
    bx.set(data.x.subarray(s * c.batch * width, s * c.batch * width + rows * width));
    by.set(data.y.subarray(s * c.batch * tw, s * c.batch * tw + rows * tw));
    losses.push(pass.run(bx, by, rows));
    if (s === 0) grads = Float32Array.from(model.grads as Float32Array);
    optimizer.step(0.05);
  }
  return { threads: pass.threads, losses, grads, params: Float32Array.from(model.params as Float32Array) };
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
/** The largest difference, relative to the largest value. */
const relDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0) / maxAbs(b);
};
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Matches the single-thread run to float32 rounding, but is not the same run bit for bit. */
function expectClose(threaded: Run, single: Run): void {
  expect(relDiff(threaded.grads, single.grads)).toBeLessThan(2e-6);
  for (let s = 0; s < STEPS; s++) expect(Math.abs(threaded.losses[s] - single.losses[s]) / single.losses[s]).toBeLessThan(1e-6);
  expect(relDiff(threaded.params, single.params)).toBeLessThan(1e-5);
}

const w1 = WORKLOADS.W1;
const w2 = WORKLOADS.W2;
/** W1's dense net at batch 256: each weight used 256 times a batch, enough to share rows out. */
const MLP: Case = { layers: w1.layers, inputShape: w1.inputShape, loss: "cross_entropy", batch: 256, classes: 10 };
const CNN: Case = { layers: w2.layers, inputShape: w2.inputShape, loss: "cross_entropy", batch: 64, classes: 10 };
/** Other layers and a regression loss: same-padded strided conv, average pooling, tanh, mse. */
const REGRESSION: Case = {
  layers: [
    { type: "conv2d", filters: 16, kernel_size: 3, stride: 2, padding: "same", activation: "tanh" },
    { type: "avgpool2d", pool_size: 2 },
    { type: "flatten" },
    { type: "dense", units: 12, activation: "gelu" },
    { type: "dense", units: 3, activation: "linear" },
  ],
  inputShape: [2, 16, 16],
  loss: { type: "huber", delta: 0.5 },
  batch: 61,
  classes: null,
};

describe("data-parallel gradient passes", () => {
  let pool: KernelPool | null = null;
  afterAll(async () => {
    await pool?.close();
  });

  it("shares out only models whose rows are independent", () => {
    const spec = (layers: unknown[]) => modelSchema.parse({ input_shape: [4], layers });
    expect(splitsBatches(spec([{ type: "dense", units: 3, activation: "relu" }]))).toBe(true);
    expect(splitsBatches(spec([{ type: "dense", units: 3, activation: "relu" }, { type: "dropout", rate: 0.5 }, { type: "dense", units: 2, activation: "linear" }]))).toBe(false);
    expect(splitsBatches(spec([{ type: "dense", units: 3, activation: "linear" }, { type: "batchnorm" }]))).toBe(false);
  });

  it("counts a row's forward multiply-adds, and keeps small batches on one thread", async () => {
    const spec = modelSchema.parse({ input_shape: [2, 16, 16], layers: REGRESSION.layers });
    const model = buildModel(spec, 512, { seed: 1 });
    // conv: 16 filters of 2×3×3 (+ bias) at 8×8 positions; dense 256→12 and 12→3 (+ biases).
    expect(forwardMacsPerRow(model)).toBe((16 * 18 + 16) * 64 + (256 * 12 + 12) + (12 * 3 + 3));
    expect(REGRESSION.batch * forwardMacsPerRow(model)).toBeGreaterThanOrEqual(MIN_SHARED_MACS);
    // The convolution uses each of its weights at 64 positions: 61 rows use the parameters 402
    // times on average, enough to share rows out (a dense net would need 256 rows).
    expect(reusesParams(model, REGRESSION.batch)).toBe(true);
    const tiny: Case = { ...MLP, inputShape: [8], layers: WORKLOADS.W3.layers, loss: "mse", batch: 32, classes: null };
    const single = trainWithPass(tiny);
    pool = await startKernelPool(2);
    const threaded = trainWithPass(tiny);
    expect(threaded.threads).toBe(1);
    expect(bits(threaded.params)).toEqual(bits(single.params));
    await pool.close();
    pool = null;
  }, 60_000);

  it("trains on one thread when a helper cannot build its replica", () => {
    let built = 0;
    const failing: ParallelExecutor = {
      threads: 2,
      args: new Int32Array(MAX_ARGS),
      fargs: new Float64Array(MAX_FARGS),
      results: new Float64Array(1),
      postReplica: () => void built++,
      start: () => undefined,
      claim: () => false,
      from: 0,
      to: 0,
      at: 0,
      fresh: true,
      finish: () => {
        throw new Error("a kernel helper thread failed: replica: its region of the arena is too small");
      },
    };
    const spec = modelSchema.parse({ input_shape: MLP.inputShape, layers: MLP.layers });
    const loss = createLoss(MLP.loss);
    const model = buildModel(spec, 784, { seed: 5, foldOutput: "softmax" });
    model.reserve(MLP.batch);
    setParallelExecutor(failing);
    try {
      const pass = createGradientPass(model, loss, MLP.loss, allocFloat32(MLP.batch * 10), MLP.batch);
      expect(built).toBe(1);
      expect(pass.threads).toBe(1);
    } finally {
      setParallelExecutor(null);
    }
  });

  it("without helper threads is the single-thread pass", () => {
    expect(parallelExecutor()).toBeNull();
    expect(trainWithPass(MLP).threads).toBe(1);
  });

  it("matches the single-thread run to float32 rounding with 2 and 3 threads (MLP, CNN, regression), the same bit for bit with either", async () => {
    const cases = [["MLP", MLP], ["CNN", CNN], ["REGRESSION", REGRESSION]] as const;
    const single = { MLP: trainWithPass(MLP), CNN: trainWithPass(CNN), REGRESSION: trainWithPass(REGRESSION) };
    const byThreads = new Map<number, Record<string, Run>>();
    for (const threads of [2, 3]) {
      pool = await startKernelPool(threads);
      const runs: Record<string, Run> = {};
      for (const [name, c] of cases) {
        const threaded = (runs[name] = trainWithPass(c));
        expect(threaded.threads, name).toBe(threads);
        expectClose(threaded, single[name]);
        // Shared out, not merely repeated: the sums came out in another order somewhere.
        expect(bits(threaded.params), name).not.toEqual(bits(single[name].params));
      }
      byThreads.set(threads, runs);
      await pool.close();
      pool = null;
    }
    // The chunks are cut by the batch alone and added in their order, whichever thread trained them.
    for (const [name] of cases) {
      const [two, three] = [byThreads.get(2)![name], byThreads.get(3)![name]];
      expect(bits(three.params), name).toEqual(bits(two.params));
      expect(bits(three.grads), name).toEqual(bits(two.grads));
      expect(three.losses, name).toEqual(two.losses);
    }
  }, 60_000);

  it("gives the same bits when the training thread trains every chunk itself (helpers that never come)", async () => {
    // An executor whose helpers never claim anything: every range falls to the calling thread, the
    // chunks after the first on its own replica.
    let bounds: number[] = [];
    let next = 0;
    let chunksTrained = 0;
    let chunked = false;
    const lone: ParallelExecutor = {
      threads: 2,
      args: new Int32Array(MAX_ARGS),
      fargs: new Float64Array(MAX_FARGS),
      results: new Float64Array(MAX_REPLICA_CHUNKS),
      from: 0,
      to: 0,
      at: 0,
      fresh: true,
      postReplica: () => undefined,
      start(task, total, align) {
        chunked = task === TASK_REPLICA_STEP;
        bounds = [0];
        if (chunked) for (let r = align; r < total; r += align) bounds.push(r);
        bounds.push(total);
        next = 0;
      },
      claim() {
        if (next >= bounds.length - 1) return false;
        Object.assign(lone, { at: next, from: bounds[next], to: bounds[next + 1], fresh: next === 0 });
        if (chunked) chunksTrained++;
        next++;
        return true;
      },
      finish: () => undefined,
    };
    setParallelExecutor(lone);
    let alone: Run;
    try {
      alone = trainWithPass(CNN);
    } finally {
      setParallelExecutor(null);
    }
    expect(chunksTrained).toBe(STEPS * MAX_REPLICA_CHUNKS);
    pool = await startKernelPool(2);
    const shared = trainWithPass(CNN);
    await pool.close();
    pool = null;
    expect(bits(alone.params)).toEqual(bits(shared.params));
    expect(alone.losses).toEqual(shared.losses);
  }, 60_000);

  it("cuts a batch into chunks by its size and the model alone", () => {
    const spec = (c: Case) => modelSchema.parse({ input_shape: c.inputShape, layers: c.layers });
    const cnn = buildModel(spec(CNN), 784, { seed: 1 });
    const mlp = buildModel(spec(MLP), 784, { seed: 1 });
    // The CNN uses each parameter ~52 times a row: 2 rows reach MIN_CHUNK_REUSE, and 64 rows make
    // MAX_REPLICA_CHUNKS chunks of 4.
    expect(forwardMacsPerRow(cnn) / cnn.params.length).toBeGreaterThan(MIN_CHUNK_REUSE / 2);
    expect(chunkRowsFor(cnn, 64)).toBe(64 / MAX_REPLICA_CHUNKS);
    expect(chunkRowsFor(cnn, 8)).toBe(2);
    // A dense net uses each weight once a row: chunks of MIN_CHUNK_REUSE rows.
    expect(chunkRowsFor(mlp, 256)).toBe(MIN_CHUNK_REUSE);
    expect(chunkRowsFor(mlp, 4096)).toBe(4096 / MAX_REPLICA_CHUNKS);
  });

  it("trains batches of any size: uneven shares, and fewer rows than threads alone", async () => {
    const rowsOf = (s: number) => [256, 253, 2, 1][s];
    const single = trainWithPass(MLP, rowsOf);
    pool = await startKernelPool(3);
    const threaded = trainWithPass(MLP, rowsOf);
    expect(threaded.threads).toBe(3);
    expectClose(threaded, single);
    await pool.close();
    pool = null;
  }, 60_000);

  it("keeps the single-thread pass, bit for bit, for dropout and batchnorm models", async () => {
    const dropout: Case = { ...MLP, layers: [{ type: "dense", units: 32, activation: "relu" }, { type: "dropout", rate: 0.3 }, { type: "dense", units: 10, activation: "softmax" }] };
    const batchnorm: Case = { ...MLP, layers: [{ type: "dense", units: 32, activation: "linear" }, { type: "batchnorm" }, { type: "dense", units: 10, activation: "softmax" }] };
    const single = [trainWithPass(dropout), trainWithPass(batchnorm)];
    pool = await startKernelPool(2);
    const threaded = [trainWithPass(dropout), trainWithPass(batchnorm)];
    for (let i = 0; i < 2; i++) {
      expect(threaded[i].threads).toBe(1);
      expect(bits(threaded[i].params)).toEqual(bits(single[i].params));
      expect(threaded[i].losses).toEqual(single[i].losses);
    }
    await pool.close();
    pool = null;
  }, 60_000);

  it("keeps a dense net's batches under 256 rows on the split kernels, bit for bit (W1 at batch 64)", async () => {
    const w1At64: Case = { ...MLP, batch: 64 };
    const spec = modelSchema.parse({ input_shape: w1.inputShape, layers: w1.layers });
    const model = buildModel(spec, inputWidth(w1), { seed: 1 });
    expect(forwardMacsPerRow(model)).toBe(model.params.length);
    expect(reusesParams(model, 64)).toBe(false);
    expect(reusesParams(model, MIN_PARAM_REUSE)).toBe(true);
    expect(64 * forwardMacsPerRow(model)).toBeGreaterThanOrEqual(MIN_SHARED_MACS);
    const single = trainWithPass(w1At64);
    pool = await startKernelPool(2);
    const threaded = trainWithPass(w1At64);
    expect(threaded.threads).toBe(1);
    expect(bits(threaded.params)).toEqual(bits(single.params));
    expect(threaded.losses).toEqual(single.losses);
    await pool.close();
    pool = null;
  }, 60_000);

  it("works with the bench's W1 data (at batch 256) through a fresh pool after another model's replicas", async () => {
    pool = await startKernelPool(2);
    trainWithPass(CNN); // a replica the helper discards for the next
    const w1 = { ...WORKLOADS.W1, batch: 256 };
    const spec = modelSchema.parse({ input_shape: w1.inputShape, layers: w1.layers });
    const loss = createLoss(w1.loss);
    const model = buildModel(spec, inputWidth(w1), { seed: 3, foldOutput: "softmax" });
    model.reserve(w1.batch);
    const pass = createGradientPass(model, loss, w1.loss, allocFloat32(w1.batch * 10), w1.batch);
    expect(pass.threads).toBe(2);
    const data = syntheticData(w1, 3);
    const x = allocFloat32(w1.batch * inputWidth(w1));
    const y = allocFloat32(w1.batch * targetWidth(w1));
    x.set(data.x.subarray(0, x.length));
    y.set(data.y.subarray(0, y.length));
    const threadedLoss = pass.run(x, y, w1.batch);
    const threadedGrads = Float32Array.from(model.grads as Float32Array);
    await pool.close();
    pool = null;
    const alone = createGradientPass(model, loss, w1.loss, allocFloat32(w1.batch * 10), w1.batch);
    expect(alone.threads).toBe(1);
    expect(Math.abs(alone.run(x, y, w1.batch) - threadedLoss)).toBeLessThan(1e-6 * threadedLoss);
    expect(relDiff(threadedGrads, model.grads as Float32Array)).toBeLessThan(2e-6);
  }, 60_000);
});
