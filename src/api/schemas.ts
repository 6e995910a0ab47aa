// Response shapes, as zod schemas (they also feed the OpenAPI document), and the mappers from
// database rows to them.
import { z } from "zod";
import type { DatasetRow } from "../db/datasets.js";
import type { JobRow, EpochMetricRow } from "../db/jobs.js";

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().describe("Stable machine-readable code, e.g. `dataset_not_found`."),
      message: z.string(),
      param: z.string().nullable().describe("The parameter or field the error is about, if any."),
    }),
  })
  .describe("Error");

export const columnSchema = z.object({ name: z.string(), min: z.number(), max: z.number(), mean: z.number(), std: z.number() });

export const datasetSchema = z.object({
  id: z.string(),
  name: z.string(),
  status: z.enum(["uploading", "ready", "failed"]).describe("`uploading` while the file is still being received (not usable by jobs; an abandoned upload is deleted); `ready` once all of it is stored."),
  format: z.string(),
  rows: z.number().int(),
  input_shape: z.array(z.number().int()),
  input_width: z.number().int(),
  task: z.enum(["regression", "classification"]).or(z.literal("")),
  classes: z.array(z.string()).nullable().describe("Class labels (classification); a target is an index into this list."),
  target_width: z.number().int().nullable().describe("Number of target values per row (regression)."),
  feature_names: z.array(z.string()),
  target_names: z.array(z.string()),
  columns: z.array(columnSchema),
  sha256: z.string().nullable().describe("SHA-256 of the uploaded file's bytes: the same file uploaded twice has the same hash (see `GET /v1/datasets?sha256=`)."),
  bytes: z.number().int(),
  created_at: z.string(),
});

export function datasetView(d: DatasetRow): z.infer<typeof datasetSchema> {
  const classification = d.task === "classification";
  return {
    id: d.id,
    name: d.name,
    status: d.status,
    format: d.format,
    rows: d.rows,
    input_shape: d.inputShape,
    input_width: d.inputWidth,
    task: d.task as "regression" | "classification" | "",
    classes: classification ? d.classes : null,
    target_width: classification ? null : d.targetWidth,
    feature_names: d.featureNames,
    target_names: d.targetNames,
    columns: d.columns as z.infer<typeof columnSchema>[],
    sha256: d.sha256,
    bytes: Number(d.bytes),
    created_at: d.createdAt.toISOString(),
  };
}

export const jobSchema = z.object({
  id: z.string(),
  status: z
    .enum(["queued", "running", "cancelling", "succeeded", "failed", "cancelled"])
    .describe("`queued -> running -> succeeded | failed | cancelled`; `cancelling` while a cancel is on its way to the worker."),
  stop_reason: z.string().nullable().describe("Why a succeeded job stopped: `max_epochs`, `early_stopping`."),
  error: z
    .object({ code: z.string(), message: z.string() })
    .nullable()
    .describe("Why a failed job failed: `diverged`, `invalid_config`, `dataset_mismatch`, `timeout` (max_runtime_seconds), `internal`."),
  priority: z.number().int().describe("Higher runs first among queued jobs."),
  config: z.record(z.string(), z.unknown()).describe("The job config as stored, with every default filled in."),
  dataset_id: z.string().nullable().describe("null once the dataset has been deleted (possible only after the job ended)."),
  validation_dataset_id: z.string().nullable(),
  epoch: z.number().int().describe("Last epoch whose metrics are stored."),
  best_epoch: z.number().int().nullable(),
  best_val_loss: z.number().nullable(),
  attempts: z.number().int().describe("Deliveries to a worker so far (retries, resumes after a lost worker and hand-backs each count)."),
  created_at: z.string(),
  started_at: z.string().nullable().describe("When a worker first started it; max_runtime_seconds counts from here."),
  finished_at: z.string().nullable(),
  cancel_requested_at: z.string().nullable(),
});

export function jobView(j: JobRow): z.infer<typeof jobSchema> {
  return {
    id: j.id,
    status: j.status,
    stop_reason: j.stopReason,
    error: j.errorCode ? { code: j.errorCode, message: j.errorMessage ?? "" } : null,
    priority: j.priority,
    config: j.config as Record<string, unknown>,
    dataset_id: j.datasetId,
    validation_dataset_id: j.validationDatasetId,
    epoch: j.epoch,
    best_epoch: j.bestEpoch,
    best_val_loss: j.bestValLoss,
    attempts: j.attempts,
    created_at: j.createdAt.toISOString(),
    started_at: j.startedAt?.toISOString() ?? null,
    finished_at: j.finishedAt?.toISOString() ?? null,
    cancel_requested_at: j.cancelRequestedAt?.toISOString() ?? null,
  };
}

export const metricSchema = z.object({
  epoch: z.number().int(),
  train_loss: z.number(),
  val_loss: z.number().nullable().describe("null on epochs that did not validate (validate_every)."),
  lr: z.number().describe("The learning rate of the epoch's last step."),
  metrics: z.record(z.string(), z.number()).describe("On the validation set: `accuracy` (and `top5_accuracy` past 5 classes) for classification, `accuracy` per label for binary_cross_entropy, `mae` and `rmse` for regression; empty on epochs that did not validate."),
  duration_ms: z.number(),
  samples_per_sec: z.number(),
});

export function metricView(m: EpochMetricRow): z.infer<typeof metricSchema> {
  return {
    epoch: m.epoch,
    train_loss: m.trainLoss,
    val_loss: m.valLoss,
    lr: m.lr,
    metrics: m.metrics as Record<string, number>,
    duration_ms: m.durationMs,
    samples_per_sec: m.samplesPerSec,
  };
}

/** `{ data, has_more, last_id }` from a query that fetched one row more than the page. */
export function page<R extends { id: string }, V>(rows: R[], limit: number, view: (r: R) => V) {
  const has_more = rows.length > limit;
  const kept = rows.slice(0, limit);
  return { data: kept.map(view), has_more, last_id: kept.length > 0 ? kept[kept.length - 1].id : null };
}

export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), has_more: z.boolean(), last_id: z.string().nullable() });
}

export const idParams = z.object({ id: z.string().describe("The resource's id (a UUID).") });
