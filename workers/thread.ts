// The worker_threads entry: runs the trainer on the data it was handed and reports each epoch.
// No I/O here: the parent process persists what this thread reports.
import { parentPort, workerData } from "node:worker_threads";
import { encodeSafetensors, modelMetadata, splitValidation, train, TrainerError } from "../src/trainer/index.js";
import type { ThreadMessage, ThreadStart } from "./messages.js";

const start = workerData as ThreadStart;
const post = (m: ThreadMessage, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);

try {
  const { config, task } = start;
  const stop = new Int32Array(start.stopFlag);
  const seed = config.seed ?? 0;
  const data =
    start.val !== null
      ? { train: start.train, val: start.val }
      : splitValidation(start.train, "split" in config.validation ? config.validation.split : 0.2, seed);
  const result = train(config, { train: data.train, val: data.val, task }, {
    onEpoch(report, model) {
      const weights = encodeSafetensors(model.exportTensors(), modelMetadata(config, { epoch: String(report.epoch) }));
      post({ type: "epoch", report, weights }, [weights.buffer as ArrayBuffer]);
    },
    shouldStop: () => Atomics.load(stop, 0) !== 0,
  });
  post({
    type: "done",
    epochs: result.epochs,
    stopReason: result.stopReason,
    bestEpoch: result.bestEpoch,
    bestValLoss: result.bestValLoss,
    restoredEpoch: result.restoredEpoch,
  });
} catch (err) {
  const e = err instanceof Error ? err : new Error(String(err));
  post({
    type: "error",
    error: { name: e.name, message: e.message, stack: e.stack, code: err instanceof TrainerError ? err.code : undefined },
  });
}
