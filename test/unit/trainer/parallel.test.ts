// Multi-threaded kernels: a pool of helper threads (workers/kernel-pool.ts) on the arena's shared
// memory must give bit-identical weights to the single-thread run.
import { afterAll, describe, expect, it } from "vitest";
import { buildModel, createLoss, createOptimizer, modelSchema, optimizerSchema } from "../../../src/trainer/index.js";
import { parallelExecutor, rangeStart } from "../../../src/trainer/parallel.js";
import { kernelsChoice } from "../../../src/trainer/kernels.js";
import { inputWidth, syntheticData, targetWidth, WORKLOADS, type Workload } from "../../bench/workloads.js";
import { startKernelPool, type KernelPool } from "../../../workers/kernel-pool.js";
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
    await pool.close();
    expect(parallelExecutor()).toBeNull();
    // Single-threaded again afterwards.
    expect(bits(trainSteps(WORKLOADS.W1).params)).toEqual(bits(single.W1.params));
  });
});
