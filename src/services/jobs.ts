// Use cases for jobs: submit (check the config against the data before anything is queued;
// idempotent with a key), read, cancel.
import { createHash, randomInt } from "node:crypto";
import { AppError } from "../errors.js";
import type { Config } from "../config.js";
import { checkFit, jobConfigSchema, type JobConfig } from "../trainer/index.js";
import type { Db } from "../db/client.js";
import * as datasets from "../db/datasets.js";
import * as jobs from "../db/jobs.js";
import { enqueueTraining, withTimeout, type TrainingQueue } from "../queue/index.js";

export interface JobServiceDeps {
  db: Db;
  queue: TrainingQueue;
  config: Pick<Config, "jobAttempts" | "jobBackoffMs" | "queueTimeoutMs" | "maxActiveJobsPerTenant">;
}

export interface Submitted {
  job: jobs.JobRow;
  /** False when an earlier request with the same Idempotency-Key and body created the job. */
  created: boolean;
  /** False when Redis could not be reached: the job is stored and a worker's reconciliation
   *  sweep enqueues it once Redis is back. */
  enqueued: boolean;
}

/**
 * Stores a job and queues it. A job is accepted once it is in PostgreSQL: if Redis is down the
 * enqueue is left to the workers' reconciliation, which re-enqueues every queued job Redis lacks.
 *
 * With an Idempotency-Key, the same key and the same body (compared as canonical JSON after
 * defaults, before a random seed is drawn) return the job the first request created; the same key
 * with another body is a 422.
 */
export async function submitJob(
  deps: JobServiceDeps,
  tenant: string,
  parsed: JobConfig,
  opts: { idempotencyKey?: string } = {},
): Promise<Submitted> {
  const { db } = deps;
  const key = opts.idempotencyKey;
  const requestHash = key === undefined ? null : hashRequest(parsed);
  // Both lookups at once; a replay wins over whatever the dataset lookup says (the dataset may
  // have changed since the first request).
  const [earlier, datasetResult] = await Promise.all([
    key !== undefined ? jobs.findJobByIdempotencyKey(db, tenant, key) : null,
    readyDataset(db, tenant, parsed.dataset_id, "dataset_id").then(
      (row) => ({ row }),
      (error: unknown) => ({ error }),
    ),
  ]);
  if (earlier) return replay(deps, earlier, requestHash!);
  if ("error" in datasetResult) throw datasetResult.error;
  const dataset = datasetResult.row;
  let validationDatasetId: string | null = null;
  if ("dataset_id" in parsed.validation) {
    const val = await readyDataset(db, tenant, parsed.validation.dataset_id, "validation.dataset_id");
    const same =
      val.task === dataset.task &&
      val.inputWidth === dataset.inputWidth &&
      val.targetWidth === dataset.targetWidth &&
      val.classes.join("\u0000") === dataset.classes.join("\u0000");
    if (!same) {
      throw new AppError(
        "dataset_mismatch",
        `The validation dataset (${describe(val)}) does not match the training dataset (${describe(dataset)}).`,
        "validation.dataset_id",
      );
    }
    validationDatasetId = val.id;
  }
  const misfit = checkFit(parsed, {
    task: dataset.task as "regression" | "classification",
    inputWidth: dataset.inputWidth,
    inputShape: dataset.inputShape,
    targetWidth: dataset.targetWidth,
    classes: dataset.classes.length,
  });
  if (misfit) throw new AppError("dataset_mismatch", misfit.message, misfit.param);

  // A job without a seed gets one now, stored with its config, so every run of it is reproducible.
  // The input shape defaults to the dataset's, so the stored config (and the weights' metadata)
  // describes the whole model.
  const config: JobConfig = {
    ...parsed,
    model: { ...parsed.model, input_shape: parsed.model.input_shape ?? dataset.inputShape },
    seed: parsed.seed ?? randomInt(0, 2 ** 31),
  };
  if (config.init_from) await checkInitFrom(db, tenant, config);
  const row = { tenant, config, classes: dataset.classes, datasetId: dataset.id, validationDatasetId, priority: config.priority, idempotencyKey: key ?? null, requestHash };
  let job: jobs.JobRow | null;
  try {
    job = await jobs.createJob(db, row, deps.config.maxActiveJobsPerTenant);
  } catch (err) {
    if (err instanceof jobs.TooManyJobs) {
      throw new AppError(
        "too_many_jobs",
        `You have ${err.active} queued or running jobs, the most allowed at once; wait for one to finish or cancel one.`,
        null,
      );
    }
    throw err;
  }
  if (!job) {
    // A concurrent request with the same key won the unique index.
    const earlier = await jobs.findJobByIdempotencyKey(db, tenant, key!);
    if (!earlier) throw new Error(`idempotency key ${JSON.stringify(key)} is taken but its job cannot be read`);
    return replay(deps, earlier, requestHash!);
  }
  return { job, created: true, enqueued: await tryEnqueue(deps, job) };
}

/**
 * init_from must name a job of the tenant's that has the checkpoint, with the same model: the same
 * input shape and the same layers (after defaults), so that every tensor fits.
 */
async function checkInitFrom(db: Db, tenant: string, config: JobConfig): Promise<void> {
  const from = config.init_from!;
  const source = await jobs.findJob(db, from.job_id, tenant);
  if (!source) throw new AppError("job_not_found", `No job has id ${from.job_id}.`, "init_from.job_id");
  const parsed = jobConfigSchema.safeParse(source.config);
  if (!parsed.success) throw new AppError("invalid_config", `Job ${from.job_id}'s stored config cannot be read.`, "init_from.job_id");
  const difference = modelDifference(config.model, parsed.data.model);
  if (difference) {
    throw new AppError(
      "architecture_mismatch",
      `init_from: job ${from.job_id}'s model differs at ${difference.param}: it has ${difference.theirs}, this job ${difference.ours}. ` +
        "Its weights fit only a model with the same input_shape and layers.",
      difference.param,
    );
  }
  if ((await jobs.checkpointEpoch(db, source.id, from.checkpoint)) === null) {
    throw new AppError("checkpoint_not_found", `Job ${from.job_id} has no \`${from.checkpoint}\` checkpoint.`, "init_from.checkpoint");
  }
}

/** The first field where two model specs differ (compared after defaults), or null. */
export function modelDifference(ours: JobConfig["model"], theirs: JobConfig["model"]): { param: string; ours: string; theirs: string } | null {
  const show = (v: unknown) => (v === undefined ? "nothing" : JSON.stringify(v));
  if (canonicalJson(ours.input_shape) !== canonicalJson(theirs.input_shape)) {
    return { param: "model.input_shape", ours: show(ours.input_shape), theirs: show(theirs.input_shape) };
  }
  if (ours.layers.length !== theirs.layers.length) {
    return { param: "model.layers", ours: `${ours.layers.length} layers`, theirs: `${theirs.layers.length} layers` };
  }
  for (let i = 0; i < ours.layers.length; i++) {
    const a = ours.layers[i] as Record<string, unknown>;
    const b = theirs.layers[i] as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort((x, y) => (x === "type" ? -1 : y === "type" ? 1 : x < y ? -1 : 1));
    for (const key of keys) {
      if (canonicalJson(a[key]) !== canonicalJson(b[key])) return { param: `model.layers.${i}.${key}`, ours: show(a[key]), theirs: show(b[key]) };
    }
  }
  return null;
}

async function replay(deps: JobServiceDeps, earlier: jobs.JobRow, requestHash: string): Promise<Submitted> {
  if (earlier.requestHash !== requestHash) {
    throw new AppError(
      "idempotency_key_reused",
      `This Idempotency-Key was first used for job ${earlier.id} with a different body; use a new key for a different job.`,
      "Idempotency-Key",
    );
  }
  // The first request may have stored the job without reaching Redis: try again (a no-op if it did).
  const enqueued = earlier.status === "queued" ? await tryEnqueue(deps, earlier) : true;
  return { job: earlier, created: false, enqueued };
}

async function tryEnqueue(deps: JobServiceDeps, job: jobs.JobRow): Promise<boolean> {
  const policy = { attempts: deps.config.jobAttempts, backoffMs: deps.config.jobBackoffMs };
  try {
    await withTimeout(enqueueTraining(deps.queue, job, policy), deps.config.queueTimeoutMs, `enqueue job ${job.id}`);
    return true;
  } catch {
    return false;
  }
}

/** sha256 of the request's canonical JSON (keys sorted at every level). */
export function hashRequest(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A job of the tenant's; another tenant's job is "not found", exactly like a missing one. */
export async function getJob(db: Db, tenant: string, id: string): Promise<jobs.JobRow> {
  const job = await jobs.findJob(db, id, tenant);
  if (!job) throw new AppError("job_not_found", `No job has id ${id}.`, "id");
  return job;
}

/** BullMQ states in which no worker holds the job, so removing it from Redis ends it. */
const UNHELD_STATES = new Set(["waiting", "prioritized", "delayed", "waiting-children", "failed"]);

/**
 * Cancels a queued or running job, from any API process, whichever worker has it.
 *
 * The row becomes `cancelling` first (one conditional UPDATE), so the cancel is never lost: a
 * worker picking the job up at that moment sees `cancelling` when it claims the job, and a worker
 * already training it sees `cancel_requested_at` within its poll interval and stops the thread
 * between batches. Then, if the job is only waiting in Redis, it is removed there and cancelled
 * here at once. Returns the job as it stands: `cancelled`, or still `cancelling` while the cancel
 * is on its way to a worker.
 */
export async function cancelJob(deps: JobServiceDeps, tenant: string, id: string): Promise<jobs.JobRow> {
  const { db, queue } = deps;
  const before = await getJob(db, tenant, id);
  if (jobs.isTerminal(before.status)) throw finished(before);
  const job = await jobs.requestCancel(db, id);
  if (!job) throw new AppError("job_not_found", `No job has id ${id}.`, "id");
  if (jobs.isTerminal(job.status)) throw finished(job);

  let removed = false;
  try {
    const t = deps.config.queueTimeoutMs;
    const state = await withTimeout(queue.getJobState(id), t, `state of job ${id}`);
    // `unknown`: Redis lost it (a restart); the reconciliation sweep ends it, or a worker does.
    if (UNHELD_STATES.has(state)) removed = (await withTimeout(queue.remove(id), t, `remove job ${id}`)) === 1;
  } catch {
    // Redis is unavailable: the job stays `cancelling`; whoever touches it next ends it.
  }
  if (removed) {
    await jobs.finishJob(db, id, { status: "cancelled" }, [cancelledEvent(job.epoch)], ["cancelling"]);
  }
  return getJob(db, tenant, id);
}

export function cancelledEvent(epoch: number): jobs.EventWrite {
  return {
    type: "cancelled",
    key: "cancelled",
    message:
      epoch > 0
        ? `Cancelled after epoch ${epoch}; the metrics and checkpoints written so far are kept.`
        : "Cancelled before training started.",
    epoch: epoch > 0 ? epoch : undefined,
  };
}

function finished(job: jobs.JobRow): AppError {
  return new AppError("job_finished", `Job ${job.id} has already ended (${job.status}); there is nothing to cancel.`, "id");
}

async function readyDataset(db: Db, tenant: string, id: string, param: string): Promise<datasets.DatasetRow> {
  const row = await datasets.findDataset(db, id, tenant);
  if (!row || row.status === "failed") throw new AppError("dataset_not_found", `No dataset has id ${id}.`, param);
  if (row.status !== "ready") throw new AppError("dataset_not_ready", `Dataset ${id} is still ${row.status}.`, param);
  return row;
}

function describe(d: datasets.DatasetRow): string {
  return d.task === "classification"
    ? `classification, ${d.inputWidth} inputs, classes [${d.classes.join(", ")}]`
    : `regression, ${d.inputWidth} inputs, ${d.targetWidth} targets`;
}
