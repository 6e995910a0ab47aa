// The worker_threads entry: each message is one training run (ThreadStart). The thread runs the
// trainer on the data it was handed (from the start, or from a checkpoint's snapshot), reports each
// epoch with its weights and full training state, ends with `done` or `error`, and waits for the
// next run. No I/O here: the parent process persists what this thread reports.
import { parentPort } from "node:worker_threads";
import {
  decodeSafetensors,
  encodeSafetensors,
  modelMetadata,
  splitValidation,
  train,
  TrainerError,
  type JobConfig,
  type TrainerSnapshot,
} from "../src/trainer/index.js";
import { jobThreads, loadConfig, type Config } from "../src/config.js";
import { StopFlag, type ThreadMessage, type ThreadStart } from "./messages.js";
import { decodeSnapshot, encodeSnapshot } from "./snapshot-codec.js";
import { startKernelPool, type KernelPool } from "./kernel-pool.js";
import { createLogger, errorText } from "./log.js";

// The worker's settings (this thread shares the process's environment, already validated by main.ts).
let settings: Config | null = null;
try {
  settings = loadConfig();
} catch {
  settings = null; // (not reachable from main.ts; without settings a job runs on one thread)
}
const log = createLogger(settings?.logLevel ?? "info", { thread: "training" });

/**
 * The kernel helper threads for a run, when its threads come to more than 1 (the job's `threads`,
 * else THREADS_PER_JOB, clamped to the worker's share of cores), or null.
 */
async function kernelPoolFor(config: JobConfig): Promise<KernelPool | null> {
  const { threads, clampedFrom } = settings
    ? jobThreads(settings, config.threads)
    : { threads: 1, clampedFrom: config.threads !== undefined && config.threads > 1 ? config.threads : null };
  if (clampedFrom !== null) {
    log.warn("job threads clamped to this worker's share of cores", {
      dataset_id: config.dataset_id,
      requested: clampedFrom,
      threads,
      workerCores: settings?.workerCores,
      workerConcurrency: settings?.workerConcurrency,
    });
  }
  if (threads <= 1) return null;
  try {
    return await startKernelPool(threads);
  } catch (err) {
    log.warn("kernel helper threads failed to start; training on one thread", { error: errorText(err) });
    return null;
  }
}

const post = (m: ThreadMessage, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);

/**
 * A snapshot taken at the epoch where early stopping fired: resuming it must not train on. The
 * trainer decides to stop inside that epoch, after reporting it, so the snapshot only shows it as
 * a patience used up.
 */
function stoppedEarly(config: JobConfig, snap: TrainerSnapshot): boolean {
  const early = snap.tracking.early;
  return config.early_stopping !== undefined && early !== null && early.wait >= config.early_stopping.patience;
}

/**
 * The snapshot to resume from. States written since the weights were left out of them carry no
 * tensors: those come from the checkpoint's weights file, which holds exactly the exported tensors
 * (parameters and batchnorm statistics, float32, bit for bit). Older states still carry their own.
 */
function resumeSnapshot(state: Uint8Array, weights: Uint8Array | null): TrainerSnapshot {
  const snap = decodeSnapshot<TrainerSnapshot>(state);
  if (snap.tensors.length > 0) return snap;
  if (!weights) throw new Error("the checkpoint's state has no tensors and no weights came with it");
  const tensors = Object.entries(decodeSafetensors(weights).tensors).map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
  return { ...snap, tensors };
}

function run(start: ThreadStart): void {
  const { config, task } = start;
  const stop = new Int32Array(start.stopFlag);
  const seed = config.seed ?? 0;
  const data =
    start.val !== null
      ? { train: start.train, val: start.val }
      : splitValidation(start.train, "split" in config.validation ? config.validation.split : 0.2, seed);
  const resume = start.resume ? resumeSnapshot(start.resume, start.resumeWeights ?? null) : undefined;
  const init = !resume && start.init ? decodeSafetensors(start.init).tensors : undefined;

  if (resume && stoppedEarly(config, resume)) {
    const restore = config.early_stopping?.restore_best_weights && resume.tracking.early?.weights;
    post({
      type: "done",
      epochs: resume.epoch,
      stopReason: "early_stopping",
      bestEpoch: resume.tracking.bestEpoch,
      bestValLoss: resume.tracking.bestValLoss,
      restoredEpoch: restore ? resume.tracking.early!.bestEpoch : null,
    });
    return;
  }

  // Batches run since the last epoch boundary: "stop at the epoch's end" stops only at 0.
  let batchesThisEpoch = 0;
  const result = train(
    config,
    { train: data.train, val: data.val, task, init },
    {
      onEpoch(report, model, snapshot) {
        batchesThisEpoch = 0;
        const weights = encodeSafetensors(model.exportTensors(), modelMetadata(config, { epoch: String(report.epoch) }));
        // The state leaves the weights out: they are stored next to it, in the same checkpoint row
        // (`weights`), and a resume takes them from there (resumeSnapshot).
        const state = encodeSnapshot({ ...snapshot(), tensors: [] });
        // Copied, not transferred: transferring detaches the buffers, and the first ArrayBuffer
        // ever detached in a thread makes V8 check every typed-array access of its optimized
        // code from then on (its "array buffer detaching protector"), which made every epoch
        // after the first ~15% slower. A copy of a few MB per epoch costs about a millisecond.
        post({ type: "epoch", report, weights, state });
      },
      shouldStop: () => {
        const flag = Atomics.load(stop, 0);
        if (flag === StopFlag.now || (flag === StopFlag.atEpochEnd && batchesThisEpoch === 0)) return true;
        batchesThisEpoch++;
        return false;
      },
    },
    resume,
  );
  post({
    type: "done",
    epochs: result.epochs,
    stopReason: result.stopReason,
    bestEpoch: result.bestEpoch,
    bestValLoss: result.bestValLoss,
    restoredEpoch: result.restoredEpoch,
  });
}

// train() is synchronous: a run holds the thread, and the next message waits until it has ended
// (the parent only posts a run to an idle thread). The kernel helpers, when the job has more than
// one thread, live for the run: started before, stopped after, whatever the outcome.
parentPort!.on("message", async (start: ThreadStart) => {
  let pool: KernelPool | null = null;
  try {
    pool = await kernelPoolFor(start.config);
    run(start);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    post({
      type: "error",
      error: { name: e.name, message: e.message, stack: e.stack, code: err instanceof TrainerError ? err.code : undefined },
    });
  } finally {
    await pool?.close();
  }
});
