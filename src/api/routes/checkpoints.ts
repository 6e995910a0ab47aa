// A job's kept checkpoints, and prediction from any of them. Like every /v1 route, a job of another
// tenant is a 404, exactly like a missing one (service.getJob).
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { checkpointRefSchema } from "../../trainer/index.js";
import * as service from "../../services/jobs.js";
import { MAX_PREDICT_INPUTS, predict } from "../../services/predict.js";
import { listCheckpoints } from "../../db/jobs.js";
import type { AppContext } from "../context.js";
import { errorSchema, idParams } from "../schemas.js";

/** Predict bodies may be larger than the app's 1 MiB default (1024 inputs of 784 values is ~5 MB). */
const PREDICT_BODY_LIMIT = 32 * 1024 * 1024;

const checkpointSchema = z.object({
  epoch: z.number().int(),
  kind: z
    .string()
    .describe(
      "Why it is kept: `last` (among the keep_last newest epochs; the newest also holds the resume state), `best` (among the keep_best " +
        "lowest losses), `periodic` (every_epochs). An epoch kept for several reasons is listed once per reason.",
    ),
  val_loss: z.number().nullable().describe("The epoch's validation loss; null without validation data or on an epoch that did not validate."),
  bytes: z.number().int().describe("Size of the safetensors file."),
  created_at: z.string(),
});

const predictBody = z.strictObject({
  inputs: z
    .array(z.unknown().describe("One input: a flat array of input_width numbers, or nested arrays matching the model's input_shape (e.g. [1][28][28])."))
    .min(1)
    .max(MAX_PREDICT_INPUTS)
    .describe(`The inputs to predict, 1 to ${MAX_PREDICT_INPUTS}.`),
  checkpoint: checkpointRefSchema.default("best").describe("Whose weights: `best` (default), `last` or a kept epoch's number."),
});

const predictionSchema = z.object({
  checkpoint_epoch: z.number().int().describe("The epoch whose weights answered."),
  outputs: z
    .array(z.array(z.number()))
    .describe("Per input, the model's outputs in inference mode: logits for cross_entropy and binary_cross_entropy models (before the softmax or sigmoid the loss applies), values for regression."),
  probabilities: z
    .array(z.array(z.number()))
    .optional()
    .describe("cross_entropy: the softmax of the outputs; binary_cross_entropy: the sigmoid of each output. Absent for regression."),
  labels: z.array(z.string()).optional().describe("cross_entropy: the class of the largest output, by the training dataset's labels."),
});

export const checkpointRoutes = (ctx: AppContext): FastifyPluginAsyncZod => async (app) => {
  app.get("/v1/jobs/:id/checkpoints", {
    schema: {
      tags: ["jobs"],
      summary: "The job's kept checkpoints, newest epoch first",
      description:
        "Which epochs are kept follows the job config's `checkpoints` (keep_last, keep_best, every_epochs). Each is downloadable " +
        "with GET /v1/jobs/:id/weights?checkpoint=<epoch>. No weight bytes here.",
      params: idParams,
      response: { 200: z.object({ data: z.array(checkpointSchema) }), 404: errorSchema },
    },
  }, async (req) => {
    const job = await service.getJob(ctx.db, req.tenant, req.params.id);
    const rows = await listCheckpoints(ctx.db, job.id);
    return {
      data: rows.map((c) => ({ epoch: c.epoch, kind: c.kind, val_loss: c.valLoss, bytes: c.bytes, created_at: c.createdAt.toISOString() })),
    };
  });

  app.post("/v1/jobs/:id/predict", {
    bodyLimit: PREDICT_BODY_LIMIT,
    config: { bodyErrorCode: "invalid_input" },
    schema: {
      tags: ["jobs"],
      summary: "Predict with a checkpoint of the job",
      description:
        `Runs up to ${MAX_PREDICT_INPUTS} inputs through the trainer's forward pass in inference mode (no dropout; batchnorm's running ` +
        "statistics) with the chosen checkpoint's weights. An input of the wrong shape, or holding anything but finite numbers, is a 422 " +
        "`invalid_input` whose param names it (`inputs.3`). Bodies up to 32 MiB.",
      params: idParams,
      body: predictBody,
      response: { 200: predictionSchema, 404: errorSchema, 422: errorSchema },
    },
  }, async (req) => {
    const job = await service.getJob(ctx.db, req.tenant, req.params.id);
    return predict(ctx.db, job, req.body);
  });
};
