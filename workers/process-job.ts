// One delivery of one training job: mark it running, load its data, train on a thread, persist
// every epoch, and record how it ended. Safe to run twice for the same job: every write is keyed
// by (job, epoch), and a job that has already ended is left alone.
import { UnrecoverableError, type Job as BullJob } from "bullmq";
import { jobConfigSchema, type TrainSet } from "../src/trainer/index.js";
import type { Db } from "../src/db/client.js";
import * as jobs from "../src/db/jobs.js";
import { loadDatasetRows } from "../src/services/datasets.js";
import { AppError } from "../src/errors.js";
import type { TrainingPayload } from "../src/queue/index.js";
import { startTraining, ThreadError } from "./training-thread.js";
import type { Task } from "./messages.js";

/** Trainer error codes that no retry can fix. */
const PERMANENT_CODES = new Set(["diverged", "invalid_config", "dataset_mismatch"]);

export interface ProcessDeps {
  db: Db;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

export async function processTrainingJob(deps: ProcessDeps, bullJob: BullJob<TrainingPayload>): Promise<string> {
  const { db, log } = deps;
  const { jobId } = bullJob.data;
  const job = await jobs.markRunning(db, jobId);
  if (!job) {
    log("job already finished or unknown; nothing to do", { jobId });
    return "skipped";
  }
  try {
    const parsed = jobConfigSchema.safeParse(job.config);
    if (!parsed.success) throw new AppError("invalid_config", `stored config is invalid: ${parsed.error.message}`);
    const config = parsed.data;
    await jobs.addEvent(db, jobId, {
      type: job.attempts > 1 ? "restarted" : "started",
      message: job.attempts > 1 ? `Training restarted (attempt ${job.attempts}).` : "Training started.",
    });

    const train = await loadSet(db, job.datasetId);
    const val = job.validationDatasetId ? await loadSet(db, job.validationDatasetId) : null;
    const started = Date.now();
    const run = startTraining({ config, task: train.task, train: train.set, val: val?.set ?? null }, async (m) => {
      const r = m.report;
      await jobs.recordEpoch(db, jobId, {
        epoch: r.epoch,
        trainLoss: r.trainLoss,
        valLoss: r.valLoss,
        lr: r.lr,
        metrics: r.metrics,
        durationMs: r.durationMs,
        samplesPerSec: r.samplesPerSec,
        weights: m.weights,
        isBest: r.isBest,
      });
      if (r.isBest && r.valLoss !== null) {
        await jobs.addEvent(db, jobId, { type: "new_best", message: `New best validation loss ${r.valLoss.toPrecision(6)} at epoch ${r.epoch}.`, epoch: r.epoch });
      }
      if (r.overfittingSince !== undefined) {
        await jobs.addEvent(db, jobId, {
          level: "warn",
          type: "overfitting_suspected",
          message: `Overfitting suspected since epoch ${r.overfittingSince}: validation loss has risen while training loss fell.`,
          epoch: r.epoch,
          data: { since: r.overfittingSince },
        });
      }
      await bullJob.updateProgress({ epoch: r.epoch, epochs: config.epochs });
    });
    const done = await run.done;
    if (done.stopReason === "early_stopping") {
      await jobs.addEvent(db, jobId, {
        type: "early_stopping",
        message:
          `Early stopping after epoch ${done.epochs}: ${config.early_stopping?.monitor} did not improve for ${config.early_stopping?.patience} validations` +
          (done.restoredEpoch ? `; the weights of epoch ${done.restoredEpoch} were restored.` : "."),
        epoch: done.epochs,
        data: { restored_epoch: done.restoredEpoch },
      });
    }
    await jobs.finishJob(db, jobId, { status: "succeeded", stopReason: done.stopReason });
    await jobs.addEvent(db, jobId, {
      type: "succeeded",
      message: `Training finished after ${done.epochs} epochs (${done.stopReason}) in ${((Date.now() - started) / 1000).toFixed(1)} s; best epoch ${done.bestEpoch}.`,
      epoch: done.epochs,
    });
    log("job succeeded", { jobId, epochs: done.epochs });
    return "succeeded";
  } catch (err) {
    const code = errorCode(err);
    const permanent = code !== "internal";
    const lastAttempt = bullJob.attemptsMade + 1 >= (bullJob.opts.attempts ?? 1);
    const message = err instanceof Error ? err.message : String(err);
    log("job attempt failed", { jobId, code, message, permanent, lastAttempt });
    if (permanent || lastAttempt) {
      await jobs.finishJob(db, jobId, { status: "failed", errorCode: code, errorMessage: permanent ? message : "Training failed on our side." });
      await jobs.addEvent(db, jobId, { level: "error", type: "failed", message: `Training failed: ${message}` });
    }
    if (permanent) throw new UnrecoverableError(message);
    throw err;
  }
}

async function loadSet(db: Db, datasetId: string): Promise<{ task: Task; set: TrainSet }> {
  const d = await loadDatasetRows(db, datasetId);
  return {
    task: d.meta.task as Task,
    set: { x: d.x, y: d.y, rows: d.rows, inputWidth: d.meta.inputWidth, targetWidth: d.meta.targetWidth },
  };
}

function errorCode(err: unknown): string {
  if (err instanceof ThreadError && err.code && PERMANENT_CODES.has(err.code)) return err.code;
  if (err instanceof AppError) {
    if (err.code === "invalid_config") return "invalid_config";
    if (err.code === "dataset_not_found" || err.code === "dataset_mismatch") return "dataset_mismatch";
  }
  return "internal";
}
