// A job's event log (GET /v1/jobs/:id/events): what happened to it, oldest first, a page at a time.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import * as service from "../../services/jobs.js";
import { listEventsPage } from "../../db/job-history.js";
import type { EventLevel, JobEventRow } from "../../db/jobs.js";
import type { AppContext } from "../context.js";
import { errorSchema, idParams } from "../schemas.js";

const LEVELS = ["info", "warn", "error"] as const;

export const eventSchema = z.object({
  id: z.string().describe("Increasing within a job: the cursor (`after`)."),
  level: z.enum(LEVELS),
  type: z
    .string()
    .describe(
      "`started`, `resumed` (from a checkpoint; `warn` after a lost worker), `restarted` (from the beginning), `retry`, " +
        "`epoch_finished` (one per epoch), `new_best`, `threads` (with a run's first epoch: `{ threads, shared_by }`), `overfitting_suspected` (`warn`), `early_stopping`, `handed_back` " +
        "(worker shutdown), `attempt_failed` (`warn`), `succeeded`, `cancelled`, `failed` (`error`; `data.code` is the reason).",
    ),
  message: z.string().describe("A sentence for people."),
  epoch: z.number().int().nullable().describe("The epoch the event is about, if any."),
  data: z.record(z.string(), z.unknown()).nullable().describe("Details for programs, by type (e.g. `{ since }` for overfitting_suspected, `{ code }` for failed)."),
  created_at: z.string(),
});

export const eventsPageSchema = z.object({
  data: z.array(eventSchema).describe("Oldest first."),
  has_more: z.boolean().describe("True when more events follow: ask again with `after=last_id`."),
  last_id: z.string().nullable().describe("The id of the last event of this page (null when it is empty): the next page's `after`."),
});

export function eventView(e: JobEventRow): z.infer<typeof eventSchema> {
  return {
    id: e.id.toString(),
    level: e.level,
    type: e.type,
    message: e.message,
    epoch: e.epoch,
    data: e.data !== null && typeof e.data === "object" && !Array.isArray(e.data) ? (e.data as Record<string, unknown>) : null,
    created_at: e.createdAt.toISOString(),
  };
}

export const eventRoutes = (ctx: AppContext): FastifyPluginAsyncZod => async (app) => {
  app.get("/v1/jobs/:id/events", {
    schema: {
      tags: ["jobs"],
      summary: "A job's events, oldest first, a page at a time",
      description:
        "What happened to the job: started or resumed, each finished epoch, each new best, overfitting suspected, early stopping, " +
        "retries, and how it ended (succeeded, cancelled, failed with the reason). Cursor-paginated: pass the page's `last_id` as " +
        "`after` for the next one (on a running job, to poll for new events).",
      params: idParams,
      querystring: z.object({
        after: z.string().regex(/^\d{1,18}$/, "an event id").optional().describe("Only events after this id (the `last_id` of the previous page)."),
        limit: z.coerce.number().int().min(1).max(1_000).default(100),
        level: z
          .string()
          .regex(/^(info|warn|error)(,(info|warn|error))*$/, "info, warn, error, or a comma-separated list of them")
          .optional()
          .describe("Only events of this level, or of these levels (comma-separated, e.g. `warn,error`)."),
      }),
      response: { 200: eventsPageSchema, 404: errorSchema },
    },
  }, async (req) => {
    const job = await service.getJob(ctx.db, req.tenant, req.params.id);
    const { after, limit, level } = req.query;
    const levels = level ? ([...new Set(level.split(","))] as EventLevel[]) : undefined;
    const rows = await listEventsPage(ctx.db, job.id, { after: after !== undefined ? BigInt(after) : null, limit: limit + 1, levels });
    const kept = rows.slice(0, limit);
    return {
      data: kept.map(eventView),
      has_more: rows.length > limit,
      last_id: kept.length > 0 ? kept[kept.length - 1].id.toString() : null,
    };
  });
};
