// Operations: the request id every request carries (and every log line of it, as `reqId`), and
// GET /metrics in Prometheus text format.
//
// Each app gets its own prom-client Registry, so several apps in one process (the tests) keep
// separate counts. HTTP durations are observed as requests end; everything read from PostgreSQL or
// Redis (jobs by status, queue depth, the epochs of running jobs) is read when /metrics is scraped,
// each read bounded by a timeout so that an outage makes the scrape report the source as down
// (`trainhub_metrics_source_up`) instead of hanging it.
import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { z } from "zod";
import { AppError } from "../errors.js";
import { withTimeout } from "../queue/index.js";
import type { AppContext } from "./context.js";
import { errorSchema, jobSchema } from "./schemas.js";

export const REQUEST_ID_HEADER = "x-request-id";

/** A client's request id is kept when it is 1 to 128 printable ASCII characters. */
const SANE_REQUEST_ID = /^[\x20-\x7e]{1,128}$/;

/** The request's id: the client's `x-request-id` when it is sane, else a fresh UUID. */
export function requestIdFor(raw: IncomingMessage): string {
  const given = raw.headers[REQUEST_ID_HEADER];
  return typeof given === "string" && SANE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** Fastify options for the request id (spread into the Fastify constructor's options); the log
 *  lines of a request carry it as `reqId` (Fastify's default label). */
export const requestIdOptions = {
  // Our genReqId reads the header itself, so that an insane value is replaced, not trusted.
  requestIdHeader: false as const,
  genReqId: requestIdFor,
};

/** BullMQ states reported by `trainhub_queue_jobs`. */
const QUEUE_STATES = ["waiting", "prioritized", "active", "delayed", "waiting-children", "completed", "failed"] as const;
const JOB_STATUSES = jobSchema.shape.status.options;
/** How long one scrape waits for PostgreSQL or Redis before reporting it down. */
const SCRAPE_SOURCE_TIMEOUT_MS = 1_500;

/** The label for requests that matched no route, so that random URLs do not make new series. */
const UNMATCHED_ROUTE = "unmatched";

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<"method" | "route" | "status_code">;
  /** Reads the scrape-time values (jobs, queue, epochs) into the gauges. */
  refresh(): Promise<void>;
}

export function createMetrics(ctx: AppContext): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const httpDuration = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request durations, by method, route pattern and status code.",
    labelNames: ["method", "route", "status_code"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const jobs = new Gauge({
    name: "trainhub_jobs",
    help: "Jobs in PostgreSQL by status (all tenants), read at scrape time.",
    labelNames: ["status"] as const,
    registers: [registry],
  });
  const queueJobs = new Gauge({
    name: "trainhub_queue_jobs",
    help: "BullMQ jobs in the training queue by state, read from Redis at scrape time.",
    labelNames: ["state"] as const,
    registers: [registry],
  });
  const epochDuration = new Gauge({
    name: "trainhub_epoch_duration_seconds",
    help: "Duration of the newest stored epoch of each running job, read at scrape time.",
    labelNames: ["job_id"] as const,
    registers: [registry],
  });
  const epochSamples = new Gauge({
    name: "trainhub_epoch_samples_per_second",
    help: "Training samples per second of the newest stored epoch of each running job, read at scrape time.",
    labelNames: ["job_id"] as const,
    registers: [registry],
  });
  const jobEpoch = new Gauge({
    name: "trainhub_job_epoch",
    help: "The newest stored epoch of each running job, read at scrape time.",
    labelNames: ["job_id"] as const,
    registers: [registry],
  });
  const sourceUp = new Gauge({
    name: "trainhub_metrics_source_up",
    help: "1 when the last scrape could read the source (postgres, redis), 0 when it failed or timed out.",
    labelNames: ["source"] as const,
    registers: [registry],
  });

  async function readPostgres(): Promise<void> {
    const [byStatus, running] = await withTimeout(
      Promise.all([
        ctx.db.job.groupBy({ by: ["status"], _count: { _all: true } }),
        ctx.db.job.findMany({
          where: { status: { in: ["running", "cancelling"] } },
          select: { id: true, metrics: { orderBy: { epoch: "desc" }, take: 1, select: { epoch: true, durationMs: true, samplesPerSec: true } } },
        }),
      ]),
      SCRAPE_SOURCE_TIMEOUT_MS,
      "metrics: jobs",
    );
    jobs.reset();
    for (const status of JOB_STATUSES) jobs.set({ status }, 0);
    for (const row of byStatus) jobs.set({ status: row.status }, row._count._all);
    epochDuration.reset();
    epochSamples.reset();
    jobEpoch.reset();
    for (const job of running) {
      const last = job.metrics[0];
      if (!last) continue;
      epochDuration.set({ job_id: job.id }, last.durationMs / 1000);
      epochSamples.set({ job_id: job.id }, last.samplesPerSec);
      jobEpoch.set({ job_id: job.id }, last.epoch);
    }
  }

  async function readRedis(): Promise<void> {
    const counts = await withTimeout(ctx.queue.getJobCounts(...QUEUE_STATES), SCRAPE_SOURCE_TIMEOUT_MS, "metrics: queue depth");
    queueJobs.reset();
    for (const state of QUEUE_STATES) queueJobs.set({ state }, counts[state] ?? 0);
  }

  /** Runs a read; on failure the source's series are dropped (not left stale) and it is marked down. */
  async function read(source: "postgres" | "redis", fn: () => Promise<void>, clear: Gauge<string>[]): Promise<void> {
    try {
      await fn();
      sourceUp.set({ source }, 1);
    } catch {
      for (const g of clear) g.reset();
      sourceUp.set({ source }, 0);
    }
  }

  return {
    registry,
    async refresh() {
      await Promise.all([
        read("postgres", readPostgres, [jobs, epochDuration, epochSamples, jobEpoch]),
        read("redis", readRedis, [queueJobs]),
      ]);
    },
    httpDuration,
  };
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** True when the request carries `Authorization: Bearer <token>`; compared in constant time. */
function hasBearer(req: FastifyRequest, token: string): boolean {
  const header = req.headers.authorization;
  const match = typeof header === "string" ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
  return match !== null && timingSafeEqual(sha256(match[1]!), sha256(token));
}

/**
 * Installs the request id header, the HTTP duration histogram and GET /metrics on the root app.
 * Call it before the routes are registered.
 */
export function registerObservability(app: FastifyInstance, ctx: AppContext): Metrics {
  const metrics = createMetrics(ctx);

  // On the raw response, so that every answer carries it: errors, 404s, and responses a route
  // writes itself.
  app.addHook("onRequest", async (req, reply) => {
    reply.raw.setHeader(REQUEST_ID_HEADER, req.id);
  });
  app.addHook("onSend", async (req, reply) => {
    if (!reply.hasHeader(REQUEST_ID_HEADER)) void reply.header(REQUEST_ID_HEADER, req.id);
  });
  app.addHook("onResponse", async (req: FastifyRequest, reply: FastifyReply) => {
    metrics.httpDuration.observe(
      { method: req.method, route: req.routeOptions.url ?? UNMATCHED_ROUTE, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  const token = ctx.config.metricsToken;
  app.withTypeProvider<ZodTypeProvider>().get("/metrics", {
    schema: {
      tags: ["operations"],
      summary: "Prometheus metrics",
      description:
        "The service's metrics in Prometheus text format: `http_request_duration_seconds` (histogram by method, route pattern, " +
        "status code), `trainhub_jobs` (jobs by status), `trainhub_queue_jobs` (BullMQ jobs by state), " +
        "`trainhub_epoch_duration_seconds`, `trainhub_epoch_samples_per_second` and `trainhub_job_epoch` (the newest epoch of " +
        "each running job), `trainhub_metrics_source_up` (whether PostgreSQL and Redis could be read), and the process's " +
        "`process_*` / `nodejs_*` metrics. Job, queue and epoch values are read at scrape time. Open, unless the server " +
        "sets `METRICS_TOKEN`: then it takes `Authorization: Bearer <METRICS_TOKEN>`. Not rate-limited.",
      response: {
        200: {
          description: "The metrics, in Prometheus text exposition format 0.0.4.",
          content: { "text/plain": { schema: z.string() } },
        },
        401: errorSchema.describe("`METRICS_TOKEN` is set and the request does not carry it."),
      },
    },
    onRequest: async (req) => {
      if (token !== undefined && !hasBearer(req, token)) {
        throw new AppError("unauthorized", "Send the metrics token as `Authorization: Bearer <METRICS_TOKEN>`.", "authorization");
      }
    },
  }, async (_req, reply) => {
    await metrics.refresh();
    const body = await metrics.registry.metrics();
    return reply.header("content-type", metrics.registry.contentType).send(body);
  });
  return metrics;
}
