import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { AppError } from "../../errors.js";
import { jobConfigSchema } from "../../trainer/index.js";
import * as service from "../../services/jobs.js";
import { findCheckpoint, listJobs } from "../../db/jobs.js";
import type { AppContext } from "../context.js";
import { errorSchema, idParams, jobSchema, jobView, page, pageSchema } from "../schemas.js";

const statuses = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"] as const;

export const jobRoutes = (ctx: AppContext): FastifyPluginAsyncZod => async (app) => {
  app.post("/v1/jobs", {
    config: { bodyErrorCode: "invalid_config" },
    schema: {
      tags: ["jobs"],
      summary: "Submit a training job",
      description:
        "The config is checked against the dataset before anything is queued: a config that cannot work is a 422 naming the field. " +
        "With an `Idempotency-Key` header, repeating the request (same key, same body) returns the job the first one created " +
        "(200 instead of 201, same id); the same key with a different body is a 422 `idempotency_key_reused`.",
      headers: z.object({
        "idempotency-key": z
          .string()
          .min(1)
          .max(255)
          .optional()
          .describe("A client-chosen unique string (e.g. a UUID) that makes retrying this request safe."),
      }),
      body: jobConfigSchema,
      response: { 200: jobSchema, 201: jobSchema, 404: errorSchema, 409: errorSchema, 422: errorSchema },
    },
  }, async (req, reply) => {
    const submitted = await service.submitJob(ctx, req.tenant, req.body, { idempotencyKey: req.headers["idempotency-key"] });
    if (!submitted.enqueued) {
      req.log.warn({ jobId: submitted.job.id }, "job stored but Redis is unavailable; a worker's reconciliation will enqueue it");
    }
    if (!submitted.created) void reply.header("idempotent-replayed", "true");
    return reply.code(submitted.created ? 201 : 200).send(jobView(submitted.job));
  });

  app.post("/v1/jobs/:id/cancel", {
    schema: {
      tags: ["jobs"],
      summary: "Cancel a queued or running job",
      description:
        "A queued job is taken out of the queue and is `cancelled` at once (200). A running job becomes `cancelling` (202) and its " +
        "worker stops it between batches, usually well within a second; it then ends `cancelled`, keeping the metrics and " +
        "checkpoints written so far. Cancelling a job that has already ended is a 409 `job_finished`.",
      params: idParams,
      response: { 200: jobSchema, 202: jobSchema, 404: errorSchema, 409: errorSchema },
    },
  }, async (req, reply) => {
    const job = await service.cancelJob(ctx, req.tenant, req.params.id);
    return reply.code(job.status === "cancelling" ? 202 : 200).send(jobView(job));
  });

  app.get("/v1/jobs", {
    schema: {
      tags: ["jobs"],
      summary: "List jobs, most recent first",
      querystring: z.object({
        after: z.string().optional().describe("Cursor: the `last_id` of the previous page."),
        limit: z.coerce.number().int().min(1).max(100).default(20),
        status: z.enum(statuses).optional(),
      }),
      response: { 200: pageSchema(jobSchema) },
    },
  }, async (req) => {
    const { after, limit, status } = req.query;
    return page(await listJobs(ctx.db, req.tenant, { after, limit, status }), limit, jobView);
  });

  app.get("/v1/jobs/:id", {
    schema: { tags: ["jobs"], summary: "A job's status and progress", params: idParams, response: { 200: jobSchema, 404: errorSchema } },
  }, async (req) => jobView(await service.getJob(ctx.db, req.tenant, req.params.id)));

  // GET /v1/jobs/:id/metrics (paged, thinned) and /metrics/stream (server-sent events): routes/stream.ts.

  app.get("/v1/jobs/:id/weights", {
    schema: {
      tags: ["jobs"],
      summary: "Download trained weights as safetensors",
      description:
        "Little-endian F32 tensors named `<layer index>.<param>` in PyTorch layouts (dense `weight` is `[units, in_features]`); " +
        "the model spec is in `__metadata__`.",
      params: idParams,
      querystring: z.object({
        checkpoint: z.string().regex(/^(best|last|\d+)$/, "best, last or an epoch number").default("best"),
      }),
      response: { 200: z.any().describe("application/octet-stream: the safetensors file"), 404: errorSchema },
    },
  }, async (req, reply) => {
    const job = await service.getJob(ctx.db, req.tenant, req.params.id);
    const which = /^\d+$/.test(req.query.checkpoint) ? Number(req.query.checkpoint) : (req.query.checkpoint as "best" | "last");
    const cp = await findCheckpoint(ctx.db, job.id, which);
    if (!cp) throw new AppError("checkpoint_not_found", `Job ${job.id} has no \`${req.query.checkpoint}\` checkpoint yet.`, "checkpoint");
    return reply
      .header("content-type", "application/octet-stream")
      .header("content-disposition", `attachment; filename="job-${job.id}-epoch-${cp.epoch}.safetensors"`)
      .header("x-checkpoint-epoch", String(cp.epoch))
      .send(Buffer.from(cp.weights));
  });
};
