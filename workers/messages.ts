// The messages between a worker process and its training thread: a small typed union each way.
import type { EpochReport, JobConfig, TrainSet } from "../src/trainer/index.js";

export type Task = "regression" | "classification";

/** Handed to the thread as workerData (its typed arrays are transferred, not copied). */
export interface ThreadStart {
  config: JobConfig;
  task: Task;
  train: TrainSet;
  /** A separate validation set, or null to split `config.validation.split` off `train`. */
  val: TrainSet | null;
  /** Int32Array over this buffer: index 0 becomes 1 when the job must stop between batches. */
  stopFlag: SharedArrayBuffer;
}

export type ThreadMessage =
  | { type: "epoch"; report: EpochReport; weights: Uint8Array }
  | { type: "done"; epochs: number; stopReason: string; bestEpoch: number; bestValLoss: number | null; restoredEpoch: number | null }
  | { type: "error"; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  /** TrainerError's code (`diverged`, `invalid_config`, `dataset_mismatch`), when it is one. */
  code?: string;
  stack?: string;
}
