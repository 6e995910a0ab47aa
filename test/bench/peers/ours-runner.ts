// Our trainer as a bench peer, through its public API (src/trainer/index.ts), with helper threads
// started as the worker starts them (workers/kernel-pool.ts), so faster kernels and threads show up
// here without changing the bench. One training step is exactly
// train.ts's: model.forward (training mode), loss.evaluate (mean loss and dLoss/dOutput),
// model.backward, optimizer.step(lr). The model is built as train.ts builds it, with a final softmax
// folded into cross_entropy; the first layer computes no input gradient (the model sees to that).
//
// Used in a child process by peers/ours.ts and in-process by service.ts.
import {
  buildModel,
  createLoss,
  createOptimizer,
  kernelsChoice,
  modelSchema,
  optimizerSchema,
  setKernels,
  type Loss,
  type ModelSpec,
} from "../../../src/trainer/index.js";
import { createGradientPass } from "../../../src/trainer/data-parallel.js";
import { allocFloat32 } from "../../../src/trainer/wasm/arena.js";
import { startKernelPool, type KernelPool } from "../../../workers/kernel-pool.js";
import { inputWidth, syntheticData, targetWidth, type Workload } from "../workloads.js";

export interface OursOptions {
  /** "default": whatever the trainer uses by default; "js": the plain JS reference kernels. */
  kernels: "default" | "js";
  threads: number;
  seed: number;
}

export interface OursRunner {
  /** One batch: a training step, or an inference forward pass (W4). Returns the batch loss (training). */
  step(): number;
  samplesPerStep: number;
  info: Record<string, string>;
  /** Stops the helper threads, if any. */
  close(): Promise<void>;
}

/** Thrown when the trainer cannot run what was asked (e.g. helper threads without WebAssembly). */
export class NotAvailable extends Error {}

/**
 * The kernels: "default" leaves the trainer's default (WebAssembly SIMD when available), "js" forces
 * the plain JS reference kernels with the trainer's switch. Each child process is fresh, so nothing
 * needs restoring.
 */
function selectKernels(choice: OursOptions["kernels"]): Record<string, string> {
  if (choice === "js") setKernels("js");
  return { kernels: kernelsChoice() };
}

/**
 * Threads: the trainer runs its big products and convolutions on helper threads when a parallel
 * executor is installed (src/trainer/parallel.ts); the worker installs one per training thread from
 * the job's `threads` (workers/kernel-pool.ts, startKernelPool). The bench does exactly that. A pool
 * that comes up with fewer threads (no WebAssembly kernels) makes the row n/a rather than a wrong
 * figure.
 */
async function selectThreads(threads: number): Promise<{ pool: KernelPool | null; info: Record<string, string> }> {
  if (threads === 1) return { pool: null, info: { threads: "1" } };
  const pool = await startKernelPool(threads);
  if (pool.threads !== threads) {
    await pool.close();
    throw new NotAvailable(`the kernel pool started ${pool.threads} thread(s), not ${threads} (WebAssembly kernels unavailable?)`);
  }
  return { pool, info: { threads: String(pool.threads), threadPool: "workers/kernel-pool.ts" } };
}

/** Which activation train.ts folds into the loss: the last activation, when the loss applies it itself. */
function foldedOutput(spec: ModelSpec, loss: Loss): "softmax" | "sigmoid" | undefined {
  if (!loss.foldsOutput) return undefined;
  for (let i = spec.layers.length - 1; i >= 0; i--) {
    const layer = spec.layers[i];
    if ("activation" in layer) return layer.activation === loss.foldsOutput ? loss.foldsOutput : undefined;
  }
  return undefined;
}

export async function createOursRunner(w: Workload, options: OursOptions): Promise<OursRunner> {
  const kernelInfo = selectKernels(options.kernels);
  const { pool, info: threadInfo } = await selectThreads(options.threads);
  const info: Record<string, string> = { ...kernelInfo, ...threadInfo };
  const close = async () => void (await pool?.close());
  const spec = modelSchema.parse({ input_shape: w.inputShape, layers: w.layers });
  const loss = createLoss(w.loss);
  const width = inputWidth(w);
  const model = buildModel(spec, width, { seed: options.seed, foldOutput: foldedOutput(spec, loss) });
  const optimizer = createOptimizer(optimizerSchema.parse(w.optimizer), model);
  const data = syntheticData(w, options.seed);
  const batch = w.batch;
  const batches = Math.floor(data.rows / batch);
  const tw = targetWidth(w);
  model.reserve(batch);
  const lossGrad = allocFloat32(batch * model.outputWidth);
  let next = 0;

  if (w.mode === "infer") {
    return {
      samplesPerStep: batch,
      info,
      close,
      step() {
        const b = next++ % batches;
        // The public inference call: batches of the reserved 1024 rows, softmax applied.
        model.predict(data.x.subarray(b * batch * width, (b + 1) * batch * width), batch);
        return 0;
      },
    };
  }
  const lr = w.optimizer.lr;
  // The batch buffers, in the kernels' arena, as train.ts has them (it gathers shuffled rows there).
  const bx = allocFloat32(batch * width);
  const by = allocFloat32(batch * tw);
  const pass = createGradientPass(model, loss, w.loss, lossGrad, batch);
  info.batchThreads = String(pass.threads);
  return {
    samplesPerStep: batch,
    info,
    close,
    step() {
      const b = next++ % batches;
      bx.set(data.x.subarray(b * batch * width, (b + 1) * batch * width));
      by.set(data.y.subarray(b * batch * tw, (b + 1) * batch * tw));
      const batchLoss = pass.run(bx, by, batch);
      if (!Number.isFinite(batchLoss)) throw new Error(`${w.id}: the loss became ${batchLoss}`);
      optimizer.step(lr);
      return batchLoss;
    },
  };
}
