// One delivery of one training job: claim it, start or resume it from its last checkpoint, train
// on a thread, persist every epoch, and end it: succeeded, failed, cancelled, or handed back to the
// queue (shutdown, or a transient failure BullMQ will retry).
//
// Safe to run twice for the same job, or after a worker died mid-way: every write is keyed by
// (job, epoch), status changes are compare-and-set, and a job that has already ended is left alone.
import { DelayedError, UnrecoverableError, type Job as BullJob } from "bullmq";
import { jobConfigSchema, type JobConfig, type TrainSet } from "../src/trainer/index.js";
import { retainedExtras, retentionOf } from "../src/trainer/retention.js";
import type { TrainingThreads } from "../src/trainer/train.js";
import type { Config } from "../src/config.js";
import type { Db } from "../src/db/client.js";
import * as jobs from "../src/db/jobs.js";
import { isTransientDbError, withDbRetry } from "../src/db/retry.js";
import { loadDatasetRows } from "../src/services/datasets.js";
import { cancelledEvent } from "../src/services/jobs.js";
import { AppError } from "../src/errors.js";
import type { TrainingPayload } from "../src/queue/index.js";
import { startTraining, ThreadError, type DoneMessage, type PendingEpoch, type ThreadPool, type TrainingRun } from "./training-thread.js";
import type { JobWatch } from "./job-watch.js";
import type { Shutdown } from "./shutdown.js";
import { errorText, type Logger } from "./log.js";
import type { Task } from "./messages.js";

/** Trainer error codes that no retry can fix. */
const PERMANENT_CODES = new Set(["diverged", "invalid_config", "dataset_mismatch"]);

/** BullMQ's failedReason for a job whose worker was lost more than maxStalledCount times. */
export const STALL_LIMIT_REASON = "job stalled more than allowable limit";

export interface ProcessDeps {
  db: Db;
  config: Config;
  /** host:pid, stored in jobs.worker_id while this process holds a job. */
  workerId: string;
  watch: JobWatch;
  shutdown: Shutdown;
  threads: ThreadPool;
  log: Logger;
}

/**
 * Why we raised the thread's stop flag; a stronger cause overrides a weaker one. `superseded`:
 * another worker has claimed the job (this one was presumed dead), so this one stops and leaves
 * every write to it.
 */
type StopCause = "shutdown" | "timeout" | "cancel" | "superseded";
const STOP_RANK: Record<StopCause, number> = { shutdown: 1, timeout: 2, cancel: 3, superseded: 4 };

export async function processTrainingJob(deps: ProcessDeps, bullJob: BullJob<TrainingPayload>, token: string | undefined): Promise<string> {
  const { db, log, config } = deps;
  const { jobId } = bullJob.data;
  // Fetched just as we began to shut down: give it straight back.
  if (deps.shutdown.requested) return handBack(deps, bullJob, token, null);

  let claim: jobs.Claim | null = null;
  let lastEpoch = 0;
  let stopCause: StopCause | null = null;
  let run: TrainingRun | null = null;
  const timers: NodeJS.Timeout[] = [];
  const cleanups: (() => void)[] = [];

  /** Raises the thread's stop flag for `cause` (now, or at the epoch's end for a shutdown). */
  const applyStop = () => {
    if (!run || !stopCause) return;
    // Another worker owns the job now: drop this run and every write it has pending.
    if (stopCause === "superseded") return void run.terminate();
    if (stopCause !== "shutdown") {
      // Cancel and time limit end the job now: the epochs still waiting to be written keep their
      // metrics but not their checkpoints, so no megabytes stand between the stop and the end.
      run.skipPendingCheckpoints();
      return run.stop();
    }
    run.stopAtEpochEnd();
    // An epoch may be long: past the grace period, stop mid-epoch (the last checkpoint remains).
    timers.push(setTimeout(() => run?.stop(), config.worker.shutdownGraceMs));
  };
  const requestStop = (cause: StopCause) => {
    if (stopCause && STOP_RANK[stopCause] >= STOP_RANK[cause]) return;
    stopCause = cause;
    log.info("stopping the job", { jobId, cause });
    applyStop();
  };

  try {
    claim = await jobs.claimJob(db, jobId, deps.workerId);
    if (claim.kind === "missing") {
      log.warn("job is not in the database; dropping the delivery", { jobId });
      return "skipped";
    }
    if (claim.kind === "finished") {
      log.info("job already ended; nothing to do", { jobId, status: claim.job.status });
      return "skipped";
    }
    if (claim.kind === "cancel") {
      await jobs.finishJob(db, jobId, { status: "cancelled" }, [cancelledEvent(claim.job.epoch)], ["cancelling"]);
      log.info("job was cancelled before it started", { jobId });
      return "cancelled";
    }
    const job = claim.job;
    const delivery = job.attempts;
    const parsed = jobConfigSchema.safeParse(job.config);
    if (!parsed.success) throw new AppError("invalid_config", `The stored config is invalid: ${parsed.error.message}`);
    const jobConfig = parsed.data;

    cleanups.push(deps.watch.watch(jobId, { onCancel: () => requestStop("cancel"), onSuperseded: () => requestStop("superseded") }));
    cleanups.push(deps.shutdown.subscribe(() => requestStop("shutdown")));
    armDeadline(job.startedAt!.getTime() + jobConfig.max_runtime_seconds * 1000, () => requestStop("timeout"), timers);

    const attempts = bullJob.opts.attempts ?? 1;
    const startEvents: jobs.EventWrite[] = [];
    if (bullJob.attemptsMade > 0) {
      startEvents.push({
        level: "warn",
        type: "retry",
        key: `retry:${delivery}`,
        message: `Attempt ${bullJob.attemptsMade + 1} of ${attempts}: the previous attempt failed (${publicReason(bullJob.failedReason)}).`,
      });
    }
    const checkpoint = await jobs.findResumeCheckpoint(db, jobId);
    const lost = claim.previousStatus === "running";
    if (checkpoint) {
      lastEpoch = checkpoint.epoch;
      startEvents.push({
        level: lost ? "warn" : "info",
        type: "resumed",
        key: `resumed:${delivery}`,
        epoch: checkpoint.epoch,
        message: `Resumed from epoch ${checkpoint.epoch}${lost ? " after a worker was lost" : ""}.`,
        data: { from_epoch: checkpoint.epoch, ...(lost && job.workerId ? { lost_worker: job.workerId } : {}) },
      });
    } else {
      startEvents.push(
        delivery === 1
          ? { type: "started", key: "started", message: "Training started." }
          : {
              level: lost ? "warn" : "info",
              type: "restarted",
              key: `restarted:${delivery}`,
              message: `Training restarted from the beginning${lost ? " after a worker was lost" : ""} (no checkpoint yet).`,
            },
      );
    }
    // init_from: another job's weights, unless this job resumes from its own checkpoint.
    const init = !checkpoint && jobConfig.init_from ? await loadInitWeights(db, jobConfig.init_from) : null;
    if (init) {
      startEvents.push({
        type: "initialised",
        key: "initialised",
        message: `Starting from the weights of job ${jobConfig.init_from!.job_id}, epoch ${init.epoch}.`,
        data: { job_id: jobConfig.init_from!.job_id, epoch: init.epoch },
      });
    }
    await addEvents(db, jobId, startEvents);
    log.info(checkpoint ? "job resumed" : "job started", { jobId, delivery, fromEpoch: checkpoint?.epoch ?? 0 });

    if (stopCause) return await endStopped(deps, bullJob, token, jobId, stopCause, lastEpoch, jobConfig);
    // A dataset cannot be deleted while a job using it is unfinished; this is only reachable if
    // that rule is broken from outside the API.
    if (!job.datasetId) throw new AppError("dataset_not_found", "The job's dataset has been deleted.", "dataset_id");
    const train = await loadSet(db, job.datasetId);
    const val = job.validationDatasetId ? await loadSet(db, job.validationDatasetId) : null;
    if (stopCause) return await endStopped(deps, bullJob, token, jobId, stopCause, lastEpoch, jobConfig);

    const started = Date.now();
    run = startTraining(
      deps.threads,
      { config: jobConfig, task: train.task, train: train.set, val: val?.set ?? null, resume: checkpoint?.state ?? null, resumeWeights: checkpoint?.weights ?? null, init: init?.weights ?? null },
      async (batch) => {
        await persistEpochs(deps, bullJob, jobId, jobConfig, batch);
        lastEpoch = batch[batch.length - 1].report.epoch;
      },
    );
    applyStop(); // a stop requested while the data loaded
    const done = await run.done;
    if (done.stopReason === "cancelled" && stopCause) {
      return await endStopped(deps, bullJob, token, jobId, stopCause, done.epochs, jobConfig);
    }
    await finishSucceeded(deps, jobId, jobConfig, done, Date.now() - started);
    log.info("job succeeded", { jobId, epochs: done.epochs });
    return "succeeded";
  } catch (err) {
    // Our own ways out: a hand-back, or an end already recorded.
    if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
    if (stopCause === "superseded") return await endStopped(deps, bullJob, token, jobId, "superseded", lastEpoch, null);
    return await failAttempt(deps, bullJob, claim?.kind === "claimed" ? claim.job.attempts : null, lastEpoch, err);
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const c of cleanups) c();
    if (run) void run.terminate().catch(() => undefined);
  }
}

/** Calls `onDeadline` at `deadline` (epoch ms), in steps a timer can hold. */
function armDeadline(deadline: number, onDeadline: () => void, timers: NodeJS.Timeout[]): void {
  const check = () => {
    const left = deadline - Date.now();
    if (left <= 0) return onDeadline();
    timers.push(setTimeout(check, Math.min(left, 2 ** 31 - 1)));
  };
  check();
}

/** One per epoch, written with the epoch's metrics (keyed, so a replayed epoch writes it once). */
function epochFinishedEvent(r: PendingEpoch["report"]): jobs.EventWrite {
  const losses = `training loss ${r.trainLoss.toPrecision(6)}` + (r.valLoss !== null ? `, validation loss ${r.valLoss.toPrecision(6)}` : "");
  return {
    type: "epoch_finished",
    key: `epoch:${r.epoch}`,
    message: `Epoch ${r.epoch} finished in ${(r.durationMs / 1000).toFixed(2)} s: ${losses}.`,
    epoch: r.epoch,
    data: { train_loss: r.trainLoss, val_loss: r.valLoss, duration_ms: r.durationMs },
  };
}

/** The threads a run trains on, written with its first epoch. */
function threadsEvent(epoch: number, t: TrainingThreads): jobs.EventWrite {
  const how =
    t.sharedBy === "rows"
      ? ": each batch's rows are shared out between them"
      : t.sharedBy === "kernels"
        ? ": its large matrix products and convolutions are split between them"
        : "";
  return {
    type: "threads",
    key: `threads:${epoch}`,
    message: `Training on ${t.count} thread${t.count === 1 ? "" : "s"}${how}.`,
    epoch,
    data: { threads: t.count, shared_by: t.sharedBy },
  };
}

/** Finished epochs' metrics, checkpoints and events, retried through a database outage. */
async function persistEpochs(deps: ProcessDeps, bullJob: BullJob<TrainingPayload>, jobId: string, config: JobConfig, batch: PendingEpoch[]) {
  const events: jobs.EventWrite[] = [];
  let best: jobs.EpochsWrite["best"] = null;
  for (const { report: r, weights } of batch) {
    if (r.threads) events.push(threadsEvent(r.epoch, r.threads));
    events.push(epochFinishedEvent(r));
    if (r.isBest) best = { epoch: r.epoch, valLoss: r.valLoss, trackedLoss: r.valLoss ?? r.trainLoss, weights };
    if (r.isBest && r.valLoss !== null) {
      events.push({ type: "new_best", key: `new_best:${r.epoch}`, message: `New best validation loss ${r.valLoss.toPrecision(6)} at epoch ${r.epoch}.`, epoch: r.epoch });
    }
    if (r.overfittingSince !== undefined) {
      events.push({
        level: "warn",
        type: "overfitting_suspected",
        key: `overfitting_suspected:${r.epoch}`,
        message: `Overfitting suspected since epoch ${r.overfittingSince}: validation loss has risen while training loss fell.`,
        epoch: r.epoch,
        data: { since: r.overfittingSince },
      });
    }
  }
  const newest = batch[batch.length - 1];
  const last = newest.weights && newest.state ? { epoch: newest.report.epoch, valLoss: newest.report.valLoss, weights: newest.weights, state: newest.state } : null;
  // `best` of the same epoch as `last` is copied inside the database; without `last` (metrics
  // only) no checkpoint is written at all.
  if (!last || (best && best.weights === null)) best = null;
  else if (best && best.epoch === last.epoch) best = { ...best, weights: null };
  // The other weights the thread held on to for the checkpoint retention, and the loss each
  // validated epoch ranks by for `best`.
  const { kept, ranked } = retainedExtras(config, batch, last ? [last.epoch, ...(best ? [best.epoch] : [])] : null);
  const write: jobs.EpochsWrite = {
    retention: retentionOf(config),
    kept,
    ranked,
    metrics: batch.map(({ report: r }) => ({
      epoch: r.epoch,
      trainLoss: r.trainLoss,
      valLoss: r.valLoss,
      lr: r.lr,
      metrics: r.metrics,
      durationMs: r.durationMs,
      samplesPerSec: r.samplesPerSec,
    })),
    last,
    best,
    events,
  };
  await withDbRetry(() => jobs.recordEpochs(deps.db, jobId, write), {
    maxMs: deps.config.worker.dbRetryMs,
    onRetry: (err, attempt, delayMs) =>
      deps.log.warn("epoch write failed; retrying", { jobId, epochs: write.metrics.map((m) => m.epoch), attempt, delayMs, error: errorText(err) }),
  });
  reportProgress(bullJob, { epoch: newest.report.epoch, epochs: config.epochs });
}

const progressInFlight = new WeakSet<object>();
/** Progress in Redis is a nicety: never wait for it (Redis may be restarting), never fail on it. */
function reportProgress(bullJob: BullJob<TrainingPayload>, progress: { epoch: number; epochs: number }): void {
  if (progressInFlight.has(bullJob)) return;
  progressInFlight.add(bullJob);
  void bullJob
    .updateProgress(progress)
    .catch(() => undefined)
    .finally(() => progressInFlight.delete(bullJob));
}

async function finishSucceeded(deps: ProcessDeps, jobId: string, config: JobConfig, done: DoneMessage, ms: number): Promise<void> {
  const events: jobs.EventWrite[] = [];
  if (done.stopReason === "early_stopping") {
    events.push({
      type: "early_stopping",
      key: "early_stopping",
      message:
        `Early stopping after epoch ${done.epochs}: ${config.early_stopping?.monitor} did not improve for ${config.early_stopping?.patience} validations` +
        (done.restoredEpoch ? `; the weights of epoch ${done.restoredEpoch} were restored.` : "."),
      epoch: done.epochs,
      data: { restored_epoch: done.restoredEpoch },
    });
  }
  events.push({
    type: "succeeded",
    key: "succeeded",
    message: `Training finished after ${done.epochs} epochs (${done.stopReason}); best epoch ${done.bestEpoch}. This delivery took ${(ms / 1000).toFixed(1)} s.`,
    epoch: done.epochs,
  });
  await withDbRetry(() => jobs.finishJob(deps.db, jobId, { status: "succeeded", stopReason: done.stopReason }, events), { maxMs: deps.config.worker.dbRetryMs });
}

/** The thread stopped because we asked it to: record why. */
async function endStopped(
  deps: ProcessDeps,
  bullJob: BullJob<TrainingPayload>,
  token: string | undefined,
  jobId: string,
  cause: StopCause,
  epoch: number,
  config: JobConfig | null,
): Promise<string> {
  const retry = { maxMs: deps.config.worker.dbRetryMs };
  if (cause === "superseded") {
    deps.log.warn("another worker has taken this job over; stopped training it here", { jobId, epoch });
    return "superseded";
  }
  if (cause === "cancel") {
    await withDbRetry(() => jobs.finishJob(deps.db, jobId, { status: "cancelled" }, [cancelledEvent(epoch)]), retry);
    deps.log.info("job cancelled", { jobId, epoch });
    return "cancelled";
  }
  if (cause === "timeout") {
    const message =
      `The job exceeded its max_runtime_seconds (${config?.max_runtime_seconds} s) and was stopped` +
      (epoch > 0 ? ` after epoch ${epoch}; its metrics and checkpoints are kept.` : " before completing an epoch.");
    await withDbRetry(
      () =>
        jobs.finishJob(deps.db, jobId, { status: "failed", errorCode: "timeout", errorMessage: message }, [
          { level: "error", type: "failed", key: "failed", message, epoch: epoch > 0 ? epoch : undefined, data: { code: "timeout" } },
        ]),
      retry,
    );
    deps.log.info("job timed out", { jobId, epoch });
    // Not retried: more time would be needed, not another try.
    throw new UnrecoverableError(message);
  }
  return handBack(deps, bullJob, token, epoch);
}

/**
 * Gives the job back to the queue without counting a failed attempt, so another worker (or this
 * one, restarted) resumes it from its last checkpoint at once instead of after a stall timeout.
 * `epoch` is null when this worker never claimed it.
 */
async function handBack(deps: ProcessDeps, bullJob: BullJob<TrainingPayload>, token: string | undefined, epoch: number | null): Promise<never> {
  const { jobId } = bullJob.data;
  if (epoch !== null) {
    const event: jobs.EventWrite = {
      type: "handed_back",
      message: `The worker is shutting down; the job goes back to the queue${epoch > 0 ? ` and resumes from epoch ${epoch}` : ""}.`,
      epoch: epoch > 0 ? epoch : undefined,
    };
    // If the database is away too, the job stays `running` and the next worker treats it as lost.
    await withDbRetry(() => jobs.releaseJob(deps.db, jobId, event), { maxMs: 5_000 }).catch((err) =>
      deps.log.warn("could not mark the job queued before handing it back", { jobId, error: errorText(err) }),
    );
  }
  // Delayed by zero, rather than moveToWait: in BullMQ 6.7 moving a prioritised job back to wait
  // does not wake idle workers (they notice only at their next blocking timeout, up to 5 s later),
  // while a delayed job does. moveToDelayed counts no attempt.
  await bullJob.moveToDelayed(Date.now(), token);
  deps.log.info("job handed back to the queue", { jobId, epoch });
  // Tells BullMQ the job has been moved: not a failure, no attempt counted.
  throw new DelayedError();
}

/**
 * A delivery failed. Failures no retry can fix (invalid config, data that does not fit, divergence)
 * end the job now, without retry. Anything else (the database or Redis unavailable, or an
 * unexpected error) is retried by BullMQ with exponential backoff, each retry resuming from the
 * last checkpoint, until the attempts run out.
 */
async function failAttempt(deps: ProcessDeps, bullJob: BullJob<TrainingPayload>, delivery: number | null, lastEpoch: number, err: unknown): Promise<never> {
  const { db, log } = deps;
  const { jobId } = bullJob.data;
  const code = permanentCode(err);
  const message = err instanceof Error ? err.message : String(err);
  const bestEffort = (what: string, fn: () => Promise<unknown>) =>
    withDbRetry(fn, { maxMs: 5_000 }).catch((e) => log.warn(`could not record ${what}`, { jobId, error: errorText(e) }));

  if (code) {
    log.warn("job failed permanently", { jobId, code, message });
    await bestEffort("the failure", () =>
      jobs.finishJob(db, jobId, { status: "failed", errorCode: code, errorMessage: message }, [
        { level: "error", type: "failed", key: "failed", message: `Training failed (${code}): ${message} This cannot succeed on retry, so the job was not retried.`, data: { code } },
      ]),
    );
    throw new UnrecoverableError(message);
  }

  const attempt = bullJob.attemptsMade + 1;
  const attempts = bullJob.opts.attempts ?? 1;
  const reason = publicReason(err);
  log.warn("job attempt failed", { jobId, attempt, attempts, error: errorText(err) });
  if (attempt >= attempts) {
    const text = `Training failed on our side: attempt ${attempt} of ${attempts} failed (${reason}) and no attempts are left.`;
    await bestEffort("the failure", () =>
      jobs.finishJob(db, jobId, { status: "failed", errorCode: "internal", errorMessage: "Training failed on our side." }, [
        { level: "error", type: "failed", key: "failed", message: text, data: { code: "internal" } },
      ]),
    );
  } else if (delivery !== null) {
    const delaySeconds = Math.round(((bullJob.opts.backoff as { delay?: number } | undefined)?.delay ?? 0) * 2 ** (attempt - 1) / 1000);
    await bestEffort("the failed attempt", () =>
      jobs.releaseJob(db, jobId, {
        level: "warn",
        type: "attempt_failed",
        key: `attempt_failed:${delivery}`,
        message:
          `Attempt ${attempt} of ${attempts} failed (${reason}); retrying in about ${delaySeconds} s` +
          (lastEpoch > 0 ? `, from the checkpoint of epoch ${lastEpoch}.` : "."),
      }),
    );
  }
  throw err;
}

function permanentCode(err: unknown): string | null {
  if (err instanceof ThreadError && err.code && PERMANENT_CODES.has(err.code)) return err.code;
  if (err instanceof AppError) {
    if (err.code === "invalid_config") return "invalid_config";
    if (err.code === "dataset_not_found" || err.code === "dataset_mismatch") return "dataset_mismatch";
  }
  return null;
}

/** What a user may read about a transient failure (no internals). */
function publicReason(err: unknown): string {
  const text = typeof err === "string" ? err : err instanceof Error ? err.message : "";
  if (isTransientDbError(err) || /database|postgres|prisma|P10\d\d/i.test(text)) return "the database was unavailable";
  if (/redis|ECONNREFUSED.*6379|Connection is closed|QueueTimeout/i.test(text)) return "Redis was unavailable";
  if (/training thread exited/i.test(text)) return "the training thread stopped unexpectedly";
  return "an internal error";
}

async function addEvents(db: Db, jobId: string, events: jobs.EventWrite[]): Promise<void> {
  for (const e of events) await jobs.addEvent(db, jobId, e);
}

/** The weights init_from names; a checkpoint gone since submission fails the job (no retry helps). */
async function loadInitWeights(db: Db, from: NonNullable<JobConfig["init_from"]>): Promise<{ epoch: number; weights: Uint8Array }> {
  const cp = await jobs.findCheckpoint(db, from.job_id, from.checkpoint);
  if (!cp) {
    throw new AppError("invalid_config", `init_from: job ${from.job_id} no longer has its \`${from.checkpoint}\` checkpoint.`, "init_from.checkpoint");
  }
  return { epoch: cp.epoch, weights: cp.weights };
}

async function loadSet(db: Db, datasetId: string): Promise<{ task: Task; set: TrainSet }> {
  const d = await loadDatasetRows(db, datasetId);
  return {
    task: d.meta.task as Task,
    set: { x: d.x, y: d.y, rows: d.rows, inputWidth: d.meta.inputWidth, targetWidth: d.meta.targetWidth },
  };
}

/**
 * A job whose worker was lost more times than maxStalledCount: BullMQ fails it without calling
 * us (the job may be what kills its workers). Record that in PostgreSQL.
 */
export async function recordStallLimit(deps: Pick<ProcessDeps, "db" | "config" | "log">, jobId: string): Promise<void> {
  const times = deps.config.worker.maxStalledCount + 1;
  const text =
    `The worker training this job was lost ${times === 1 ? "once" : `${times} times`} (its process died mid-training, ` +
    "e.g. killed or out of memory); the job is not retried again, in case it is what kills its workers.";
  const ended = await withDbRetry(
    () =>
      jobs.finishJob(deps.db, jobId, { status: "failed", errorCode: "internal", errorMessage: text }, [
        { level: "error", type: "failed", key: "failed", message: text, data: { code: "internal", reason: "stalled" } },
      ]),
    { maxMs: deps.config.worker.dbRetryMs },
  );
  if (ended) deps.log.warn("job failed: its workers were lost too often", { jobId, times });
}
