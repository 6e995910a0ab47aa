// The job config: one zod schema shared by the API (validation, OpenAPI, 422 errors) and the worker
// (the trainer reads the parsed object). Field names follow DESIGN.md ("A job config").
//
// Every object is strict so a misspelt key is an error rather than a silently ignored option.
// Layers and optimizers are discriminated unions on `type`: adding conv2d, dropout, adam... means
// adding one schema to the list, and an unknown `type` reports the path `...layers.<i>.type`.
import { z } from "zod";
import { layerSchema } from "./schema/layers.js";
import { lossSchema } from "./schema/loss.js";
import { optimizerSchema } from "./schema/optimizer.js";
import { monitorSchema, scheduleSchema } from "./schema/schedule.js";
import { augmentationSchema } from "./schema/augmentation.js";
import { checkpointRetentionSchema, initFromSchema } from "./schema/checkpoints.js";

export * from "./schema/layers.js";
export * from "./schema/loss.js";
export * from "./schema/optimizer.js";
export * from "./schema/schedule.js";
export * from "./schema/augmentation.js";
export * from "./schema/checkpoints.js";

export const earlyStoppingSchema = z
  .strictObject({
    monitor: monitorSchema.default("val_loss"),
    patience: z.number().int().min(1).default(5).describe("Validations without an improvement before stopping."),
    min_delta: z.number().min(0).default(0).describe("Smallest change that counts as an improvement."),
    mode: z.enum(["auto", "min", "max"]).default("auto").describe("auto: max for accuracies, min otherwise."),
    restore_best_weights: z.boolean().default(true).describe("End with the weights of the best validation rather than the last."),
  })
  .describe("Stop when the monitored value has not improved for `patience` validations; the job then succeeds with stop_reason early_stopping. Off unless given.");
export type EarlyStoppingSpec = z.infer<typeof earlyStoppingSchema>;

export const modelSchema = z
  .strictObject({
    input_shape: z
      .array(z.number().int().positive())
      .min(1)
      .max(4)
      .optional()
      .describe(
        "Shape of one input, channels first, e.g. [1, 28, 28]. Default: the dataset's. Must agree with the dataset's: the same " +
          "shape when the dataset declares one, or the same number of values when the dataset is flat.",
      ),
    layers: z.array(layerSchema).min(1).max(64).describe("The network, first layer first. Weights are named `<index>.<param>` by position here."),
  })
  .describe("The network.");
export type ModelSpec = z.infer<typeof modelSchema>;

export const validationSchema = z
  .union([
    z.strictObject({ split: z.number().gt(0).lt(1).describe("Fraction of the training rows held out (a seeded random choice).") }),
    z.strictObject({ dataset_id: z.uuid().describe("A dataset with the same inputs, task and classes.") }),
  ])
  .default(() => ({ split: 0.2 }))
  .describe("Data to validate on: a held-out fraction, or another dataset. Default { split: 0.2 }.");
export type ValidationSpec = z.infer<typeof validationSchema>;

export const jobConfigSchema = z
  .strictObject({
    dataset_id: z.uuid().describe("The training dataset."),
    validation: validationSchema,
    model: modelSchema,
    loss: lossSchema,
    optimizer: optimizerSchema,
    lr_schedule: scheduleSchema,
    epochs: z.number().int().min(1).max(100000).default(10).describe("Full passes over the training set."),
    batch_size: z.number().int().min(1).max(65536).default(32).describe("Rows per mini-batch; an epoch's last batch may be smaller. A batch's loss is the mean over its rows."),
    shuffle: z.boolean().default(true).describe("Reshuffle the training rows every epoch."),
    seed: z
      .number()
      .int()
      .min(0)
      .max(4294967295)
      .optional()
      .describe("Seeds initialisation, the validation split, shuffling, dropout and augmentation. Default: a random one, stored with the job. The same seed gives bit-identical weights."),
    validate_every: z.number().int().min(1).default(1).describe("Validate every N epochs, and always after the last."),
    early_stopping: earlyStoppingSchema.optional(),
    augmentation: augmentationSchema,
    threads: z
      .number()
      .int()
      .min(1)
      .max(256)
      .optional()
      .describe(
        "Threads the job trains on: each batch's rows are shared out between them (results match one thread's to float32 " +
          "rounding, and are reproducible for a given count); models with dropout or batchnorm, and models whose batch uses " +
          "each parameter fewer than 256 times (all-dense nets below batch_size 256), split their matrix products and " +
          "convolutions instead (bit-identical to one thread). Default: the " +
          "worker's THREADS_PER_JOB setting (1 unless set). Clamped so that the worker's concurrent jobs never use more threads than its cores.",
      ),
    priority: z
      .number()
      .int()
      .min(-1000)
      .max(1000)
      .default(0)
      .describe("Among queued jobs, higher runs first (-1000 to 1000); equal priorities run in submission order. Default 0."),
    max_runtime_seconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86400)
      .default(86400)
      .describe(
        "Wall-clock limit counted from the job's first start. Past it the job stops between batches and fails with error code " +
          "`timeout`; the metrics and checkpoints it has written stay. Default 86400 (one day).",
      ),
    checkpoints: checkpointRetentionSchema,
    init_from: initFromSchema.optional(),
  })
  .describe("A training job.");
/** A parsed config, defaults filled in. */
export type JobConfig = z.infer<typeof jobConfigSchema>;
/** What a client may send (defaults optional). */
export type JobConfigInput = z.input<typeof jobConfigSchema>;

/**
 * The dotted path of the first issue, as the API's error `param` (e.g. "model.layers.2.units").
 * A union that failed in every branch reports only its own path, so we dig into the branch with the
 * fewest issues (the one the client most likely meant) to name the real field. An unknown key is
 * named by appending the key to the object's path.
 */
export function zodIssueParam(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? issueParam(first) : "";
}

/** The dotted path an issue is about (see zodIssueParam); "" for the root. */
export function issueParam(issue: IssueLike): string {
  return issuePath(issue, []).map(String).join(".");
}

/** The parts of a zod issue that name where it is (fastify's validation errors carry them too). */
export interface IssueLike {
  code: string;
  path: readonly PropertyKey[];
  errors?: IssueLike[][];
  keys?: string[];
}

function issuePath(issue: IssueLike, prefix: PropertyKey[]): PropertyKey[] {
  const path = [...prefix, ...issue.path];
  if (issue.code === "invalid_union" && issue.errors && issue.errors.length > 0) {
    let best = issue.errors[0];
    for (const branch of issue.errors) if (branch.length < best.length) best = branch;
    if (best.length > 0) return issuePath(best[0], path);
  }
  if (issue.code === "unrecognized_keys" && issue.keys && issue.keys.length > 0) path.push(issue.keys[0]);
  return path;
}
