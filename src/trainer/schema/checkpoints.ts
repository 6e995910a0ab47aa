// The `checkpoints` field (which epochs' weights a job keeps) and `init_from` (start training from
// another job's weights). A checkpoint is named `best`, `last` or by its epoch number.
import { z } from "zod";

/** A checkpoint of a job: `best` (lowest monitored loss), `last` (newest) or an epoch number. */
export const checkpointRefSchema = z
  .union([z.enum(["best", "last"]), z.number().int().min(1).max(100000)])
  .describe("`best` (the epoch with the lowest validation loss, or training loss without validation data), `last` (the newest kept epoch) or an epoch number.");
export type CheckpointRef = z.infer<typeof checkpointRefSchema>;

export const checkpointRetentionSchema = z
  .strictObject({
    keep_last: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe("How many of the newest epochs keep their weights (kind `last`); the newest also holds the state a resume continues from. Default 1."),
    keep_best: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe(
        "How many of the best epochs keep their weights (kind `best`), ranked by validation loss (training loss without validation data) " +
          "among the epochs that validated. Default 1.",
      ),
    every_epochs: z
      .number()
      .int()
      .min(0)
      .max(100000)
      .default(0)
      .describe("Also keep the weights of every N-th epoch (N, 2N, ...) for good (kind `periodic`). Default 0: none."),
  })
  .prefault({})
  .describe("Which epochs' weights the job keeps (each is listed by GET /v1/jobs/:id/checkpoints and downloadable). Default: the newest and the best.");
export type CheckpointRetention = z.infer<typeof checkpointRetentionSchema>;

export const initFromSchema = z
  .strictObject({
    job_id: z.uuid().describe("A job of yours whose model has the same input_shape and layers."),
    checkpoint: checkpointRefSchema.default("last").describe("Which of its checkpoints to start from: `best`, `last` or an epoch number. Default `last`."),
  })
  .describe(
    "Start from another job's weights (batchnorm running statistics included) instead of a seeded initialisation; the optimizer, " +
      "schedule and epoch count start afresh. A resume from this job's own checkpoint takes precedence. Off unless given.",
  );
export type InitFromSpec = z.infer<typeof initFromSchema>;
