// The messages between a worker process and its training thread: a small typed union each way.
import type { EpochReport, JobConfig, TrainSet } from "../src/trainer/index.js";

export type Task = "regression" | "classification";

/** Values of the stop flag (an Int32Array over ThreadStart.stopFlag, index 0). */
export const StopFlag = {
  /** Keep training. */
  run: 0,
  /** Stop before the next batch (cancel, time limit, or a shutdown out of patience). */
  now: 1,
  /** Stop at the next epoch boundary, once the current epoch is reported (graceful shutdown). */
  atEpochEnd: 2,
} as const;

/** One training run, posted to a thread (its typed arrays are transferred, not copied). */
export interface ThreadStart {
  config: JobConfig;
  task: Task;
  train: TrainSet;
  /** A separate validation set, or null to split `config.validation.split` off `train`. */
  val: TrainSet | null;
  /** The encoded TrainerSnapshot to continue from (workers/snapshot-codec.ts), or null to start. */
  resume: Uint8Array | null;
  /** The weights (safetensors) of the checkpoint `resume` comes from: states leave them out. */
  resumeWeights?: Uint8Array | null;
  /** Safetensors weights to start from instead of the seeded initialisation (init_from); ignored
   *  when resuming. */
  init?: Uint8Array | null;
  /** See StopFlag. */
  stopFlag: SharedArrayBuffer;
}

export type ThreadMessage =
  | {
      type: "epoch";
      report: EpochReport;
      /** Safetensors bytes of the weights after this epoch (what users download). */
      weights: Uint8Array;
      /** The encoded TrainerSnapshot after this epoch (what a resumed run continues from). */
      state: Uint8Array;
    }
  | {
      type: "done";
      epochs: number;
      /** `cancelled` means the stop flag ended the run; the worker knows why it raised it. */
      stopReason: "max_epochs" | "early_stopping" | "cancelled";
      bestEpoch: number;
      bestValLoss: number | null;
      restoredEpoch: number | null;
    }
  | { type: "error"; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  /** TrainerError's code (`diverged`, `invalid_config`, `dataset_mismatch`), when it is one. */
  code?: string;
  stack?: string;
}
