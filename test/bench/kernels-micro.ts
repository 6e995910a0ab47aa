// Quick in-process measurements of the trainer's kernels, single-threaded: samples/s of the issue's
// four workloads and GFLOP/s of the matrix products, with the WebAssembly kernels and with the JS
// reference. Not the benchmark of record (test/bench/run.ts); a tool for working on the kernels.
//
//   npx tsx test/bench/kernels-micro.ts [--kernels wasm,js] [--only W1,W2,W3,W4,gemm] [--seconds 2]
//
// W1  MLP 784-256-128-10 relu, softmax cross-entropy, SGD momentum, batch 64
// W2  CNN 1x28x28: conv3x3 16 relu, maxpool 2, conv3x3 32 relu, maxpool 2, dense 10, batch 64
// W3  MLP 8-32-32-1 tanh, MSE, SGD, batch 32
// W4  W1's network, inference (Model.predict) at batch 1024
import { parseArgs } from "node:util";
import { buildModel, createLoss, createOptimizer, modelSchema, optimizerSchema, Rng } from "../../src/trainer/index.js";
import { jsKernels, setKernels, wasmKernels, type Kernels, type KernelsChoice } from "../../src/trainer/kernels.js";
import { allocFloat32 } from "../../src/trainer/wasm/arena.js";

const { values } = parseArgs({
  options: {
    kernels: { type: "string", default: "wasm,js" },
    only: { type: "string", default: "W1,W2,W3,W4,gemm" },
    seconds: { type: "string", default: "2" },
  },
});
const choices = values.kernels.split(",") as KernelsChoice[];
const only = new Set(values.only.split(","));
const seconds = Number(values.seconds);

/**
 * Calls/s of `fn`: the best of several trials of about `seconds`/5 each, after a warm-up (so that
 * V8 has tiered the code up). The best rather than the mean: on a shared machine other processes
 * only ever slow a trial down.
 */
function rate(fn: () => void): number {
  const trial = (limit: number) => {
    const start = performance.now();
    let calls = 0;
    while (performance.now() - start < limit * 1000) {
      fn();
      calls++;
    }
    return calls / ((performance.now() - start) / 1000);
  };
  trial(seconds / 4);
  let best = 0;
  for (let i = 0; i < 5; i++) best = Math.max(best, trial(seconds / 5));
  return best;
}

const rng = new Rng(7);
const randomInto = (a: Float32Array) => {
  for (let i = 0; i < a.length; i++) a[i] = rng.uniform(-1, 1);
  return a;
};

const MLP = [
  { type: "dense", units: 256, activation: "relu" },
  { type: "dense", units: 128, activation: "relu" },
  { type: "dense", units: 10, activation: "softmax" },
];
const CNN = [
  { type: "conv2d", filters: 16, kernel_size: 3, activation: "relu" },
  { type: "maxpool2d", pool_size: 2 },
  { type: "conv2d", filters: 32, kernel_size: 3, activation: "relu" },
  { type: "maxpool2d", pool_size: 2 },
  { type: "flatten" },
  { type: "dense", units: 10, activation: "softmax" },
];
const TINY = [
  { type: "dense", units: 32, activation: "tanh" },
  { type: "dense", units: 32, activation: "tanh" },
  { type: "dense", units: 1 },
];

interface Workload {
  layers: unknown[];
  inputShape?: number[];
  inputWidth: number;
  classes: number; // 0: regression with one output
  batch: number;
}

const WORKLOADS: Record<string, Workload> = {
  W1: { layers: MLP, inputWidth: 784, classes: 10, batch: 64 },
  W2: { layers: CNN, inputShape: [1, 28, 28], inputWidth: 784, classes: 10, batch: 64 },
  W3: { layers: TINY, inputWidth: 8, classes: 0, batch: 32 },
};

/** Training samples/s: forward, loss, backward, SGD with momentum, as train.ts does a step. */
function trainRate(w: Workload): number {
  const classification = w.classes > 0;
  const loss = createLoss(classification ? "cross_entropy" : "mse");
  const spec = modelSchema.parse({ input_shape: w.inputShape, layers: w.layers });
  const model = buildModel(spec, w.inputWidth, { seed: 1, foldOutput: classification ? "softmax" : undefined });
  const optimizer = createOptimizer(optimizerSchema.parse({ type: "sgd", lr: 0.01, momentum: 0.9 }), model);
  model.reserve(w.batch);
  const x = randomInto(allocFloat32(w.batch * w.inputWidth));
  const y = allocFloat32(w.batch * (classification ? 1 : model.outputWidth));
  for (let i = 0; i < y.length; i++) y[i] = classification ? i % w.classes : rng.uniform(-1, 1);
  const grad = allocFloat32(w.batch * model.outputWidth);
  return (
    w.batch *
    rate(() => {
      const out = model.forward(x, w.batch, true);
      loss.evaluate(out, y, w.batch, model.outputWidth, grad);
      model.backward(grad, w.batch);
      optimizer.step(0.01);
    })
  );
}

/** Inference samples/s of W1's network through Model.predict on an ordinary array. */
function predictRate(): number {
  const rows = 1024;
  const model = buildModel(modelSchema.parse({ layers: MLP }), 784, { seed: 1, foldOutput: "softmax" });
  model.reserve(rows);
  const x = randomInto(new Float32Array(rows * 784));
  return rows * rate(() => model.predict(x, rows));
}

function gemmRates(k: Kernels, [m, kk, n]: number[]): string {
  const a = randomInto(allocFloat32(m * kk));
  const b = randomInto(allocFloat32(kk * n));
  const c = allocFloat32(m * n);
  const flops = 2 * m * kk * n;
  const forms: [string, () => void][] = [
    ["matmul", () => k.matmul(a, b, c, m, kk, n, null)],
    ["transA", () => k.matmulTransA(a, b, c, m, kk, n)],
    ["transB", () => k.matmulTransB(a, b, c, m, kk, n)],
  ];
  return forms.map(([name, fn]) => `${name} ${((rate(fn) * flops) / 1e9).toFixed(1)}`).join(", ");
}

for (const choice of choices) {
  setKernels(choice);
  const results: string[] = [];
  for (const name of ["W1", "W2", "W3"]) {
    if (only.has(name)) results.push(`${name} ${Math.round(trainRate(WORKLOADS[name]))}/s`);
  }
  if (only.has("W4")) results.push(`W4 ${Math.round(predictRate())}/s`);
  console.log(`${choice}: ${results.join("  ")}`);
  if (only.has("gemm")) {
    const k = choice === "wasm" ? wasmKernels : jsKernels;
    for (const shape of [[64, 784, 256], [1024, 784, 256], [64, 256, 128], [32, 8, 32]]) {
      console.log(`  gemm ${shape.join("x")} GFLOP/s: ${gemmRates(k, shape)}`);
    }
  }
}
