// A job's metrics: a page at a time (GET /v1/jobs/:id/metrics, optionally thinned for plotting)
// and live, as server-sent events (GET /v1/jobs/:id/metrics/stream).
//
// The stream reads PostgreSQL only: each open stream polls its job's row and the epochs after the
// last one it sent (STREAM_POLL_MS), so it works the same with any number of API processes and
// workers, and a client that reconnects with `Last-Event-ID: <epoch>` resumes from the database
// exactly after that epoch. Epoch rows are written in ascending order, a batch of them in one
// transaction with the job's progress, so "epochs after N, in order" never skips one: an epoch is
// visible only once every epoch before it is.
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { FastifyBaseLogger } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import * as service from "../../services/jobs.js";
import { findJob, isTerminal, type JobRow } from "../../db/jobs.js";
import { listMetricsPage, MAX_INT } from "../../db/job-history.js";
import type { AppContext } from "../context.js";
import { errorSchema, idParams, jobView, metricSchema, metricView } from "../schemas.js";

/** Epoch rows one stream reads per query (a reconnect to a long job reads them in pages). */
const STREAM_PAGE = 500;

export const metricsPageSchema = z.object({
  data: z.array(metricSchema).describe("Epochs in ascending order."),
  has_more: z.boolean().describe("True when more epochs follow this page: ask again with `after_epoch=next_after_epoch`."),
  next_after_epoch: z
    .number()
    .int()
    .describe("The last epoch of this page (the request's `after_epoch` when `data` is empty): the `after_epoch` of the next page, or, on a running job, of the next poll."),
});

const streamDescription = [
  "Server-sent events (`text/event-stream`), one event per stored epoch plus the job's status changes, read from PostgreSQL:",
  "",
  "- first `retry: <ms>` (the reconnect delay), then `event: status` with the job (as `GET /v1/jobs/:id`) as `data`;",
  "- per epoch, in ascending order: `event: epoch`, `id: <epoch>`, `data:` the epoch's metrics (as one item of `GET /v1/jobs/:id/metrics`);",
  "- `event: status` again with the job whenever its `status` or its `best_epoch` changes (after the epochs read with it, so the best epoch has been sent before);",
  "- once the job has ended (`succeeded`, `failed`, `cancelled`) and every epoch has been sent: `event: end` with the job, and the server closes the response. " +
    "EventSource reconnects when a response ends, so close it on `end`;",
  "- `: ping` comment lines while nothing else is sent (every STREAM_KEEPALIVE_MS, 15 s by default).",
  "",
  "A client that reconnects with `Last-Event-ID: <epoch>` (EventSource sends it by itself), or `?last_event_id=<epoch>` where headers cannot be set " +
    "(the header wins when both are given), receives exactly the epochs after that one, then the rest as above. " +
    "The stream starts with the job's current status each time. The server may end a stream without `end` (e.g. when it shuts down): reconnect.",
].join("\n");

export const streamRoutes = (ctx: AppContext): FastifyPluginAsyncZod => async (app) => {
  const { pollMs, keepAliveMs, retryMs } = ctx.config.stream;
  /** Ends every open stream (the server is closing: clients reconnect to another process). */
  const open = new Set<() => void>();
  app.addHook("preClose", async () => {
    for (const end of [...open]) end();
  });

  app.get("/v1/jobs/:id/metrics", {
    schema: {
      tags: ["jobs"],
      summary: "Per-epoch training and validation loss, learning rate and metrics, a page at a time",
      description:
        "Epochs after `after_epoch`, ascending, at most `limit` of them; `has_more` tells whether more follow (ask again with " +
        "`after_epoch=next_after_epoch`). `every=N` thins a long history for plotting: only epochs divisible by N, plus always the " +
        "newest stored epoch and the best one (`best_epoch` of the job).",
      params: idParams,
      querystring: z.object({
        after_epoch: z.coerce.number().int().min(0).max(MAX_INT).default(0).describe("Only epochs after this one."),
        limit: z.coerce.number().int().min(1).max(10_000).default(1_000).describe("Most epochs in one page."),
        every: z.coerce.number().int().min(1).max(MAX_INT).default(1).describe("Only every N-th epoch (epoch % N = 0), plus the newest and the best."),
      }),
      response: { 200: metricsPageSchema, 404: errorSchema },
    },
  }, async (req) => {
    const job = await service.getJob(ctx.db, req.tenant, req.params.id);
    const { after_epoch, limit, every } = req.query;
    const rows = await listMetricsPage(ctx.db, job.id, { afterEpoch: after_epoch, limit: limit + 1, every, keepEpoch: job.bestEpoch });
    const kept = rows.slice(0, limit);
    return {
      data: kept.map(metricView),
      has_more: rows.length > limit,
      next_after_epoch: kept.length > 0 ? kept[kept.length - 1].epoch : after_epoch,
    };
  });

  app.get("/v1/jobs/:id/metrics/stream", {
    schema: {
      tags: ["jobs"],
      summary: "Live metrics: server-sent events, one per epoch, plus status changes",
      description: streamDescription,
      params: idParams,
      headers: z.object({
        "last-event-id": z
          .string()
          .regex(/^\d{0,10}$/, "an epoch number")
          .optional()
          .describe("The `id` of the last epoch event received: the stream resumes after it (EventSource sends it when it reconnects)."),
      }),
      querystring: z.object({
        last_event_id: z.coerce
          .number()
          .int()
          .min(0)
          .max(MAX_INT)
          .optional()
          .describe("As the `Last-Event-ID` header, for clients that cannot set headers; the header wins when both are given."),
      }),
      response: {
        200: {
          description:
            "An event stream (see above): `event: status` / `event: epoch` (with `id: <epoch>`) / `event: end`, each with one JSON `data:` line.",
          content: { "text/event-stream": { schema: z.string() } },
        },
        404: errorSchema,
      },
    },
  }, async (req, reply) => {
    const job = await service.getJob(ctx.db, req.tenant, req.params.id);
    const afterEpoch = resumeEpoch(req.headers, req.query.last_event_id);

    // From here on the response is ours: fastify neither serializes nor compresses it, and its
    // onSend hooks do not run, so the headers they would add are written here.
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...passThroughHeaders(reply.getHeaders()),
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no", // nginx: do not buffer the stream
      "x-request-id": req.id,
    });
    res.flushHeaders();
    const stream = new MetricsStream(ctx, res, req.log, { jobId: job.id, tenant: req.tenant, afterEpoch, pollMs, keepAliveMs, retryMs });
    open.add(stream.end);
    const forget = () => open.delete(stream.end);
    req.raw.once("close", () => {
      forget();
      stream.close();
    });
    res.once("close", () => {
      forget();
      stream.close();
    });
    void stream.run(job).finally(forget);
  });
};

/** Where a (re)connecting client resumes: the Last-Event-ID header, else ?last_event_id, else 0. */
function resumeEpoch(headers: IncomingHttpHeaders, query: number | undefined): number {
  const header = headers["last-event-id"];
  if (typeof header === "string" && /^\d+$/.test(header)) return Math.min(Number(header), MAX_INT);
  return query ?? 0;
}

/** Headers set on the reply before the hijack (e.g. rate-limit headers), minus body framing. */
function passThroughHeaders(headers: Record<string, string | number | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || ["content-type", "content-length", "transfer-encoding", "content-encoding"].includes(name)) continue;
    out[name] = value;
  }
  return out;
}

/** One SSE event with one JSON data line (JSON.stringify never emits a raw newline). */
function sseEvent(event: string, data: unknown, id?: number): string {
  return `event: ${event}\n${id !== undefined ? `id: ${id}\n` : ""}data: ${JSON.stringify(data)}\n\n`;
}

interface StreamOptions {
  jobId: string;
  tenant: string;
  /** Epochs up to this one were sent to the client before (Last-Event-ID). */
  afterEpoch: number;
  pollMs: number;
  keepAliveMs: number;
  retryMs: number;
}

/** One open stream: polls its job until it ends or the client goes away. */
class MetricsStream {
  private closed = false;
  private wake: (() => void) | null = null;
  private readonly ping: NodeJS.Timeout;
  /** The newest epoch sent. */
  private sent: number;

  constructor(
    private readonly ctx: AppContext,
    private readonly res: ServerResponse,
    private readonly log: FastifyBaseLogger,
    private readonly opts: StreamOptions,
  ) {
    this.sent = opts.afterEpoch;
    this.ping = setInterval(() => {
      if (!this.closed) res.write(": ping\n\n");
    }, opts.keepAliveMs);
  }

  /** The client went away (or the response ended): stop the timers; the loop stops at its next step. */
  readonly close = (): void => {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ping);
    this.wake?.();
  };

  /** Ends the response without `end` (server shutdown): the client reconnects elsewhere. */
  readonly end = (): void => {
    if (!this.res.writableEnded) this.res.end();
    this.close();
  };

  async run(first: JobRow): Promise<void> {
    const { db } = this.ctx;
    const { jobId, tenant } = this.opts;
    let job = first;
    let shown = { status: first.status, bestEpoch: first.bestEpoch };
    await this.send(`retry: ${this.opts.retryMs}\n\n` + sseEvent("status", jobView(first)));
    for (let iteration = 0; !this.closed; iteration++) {
      try {
        if (iteration > 0) {
          const row = await findJob(db, jobId, tenant);
          if (!row) return this.end(); // deleted: nothing more will come
          job = row;
        }
        // The job row is read before its epochs: a job seen ended has all of its epochs stored, and
        // its progress (`epoch`) is updated in the same transaction as the epoch rows, so there is
        // nothing new to read while it has not passed what was sent.
        const ended = isTerminal(job.status);
        if (iteration === 0 || ended || job.epoch > this.sent) await this.sendEpochs();
        if (this.closed) return;
        if (iteration > 0 && (job.status !== shown.status || job.bestEpoch !== shown.bestEpoch)) {
          shown = { status: job.status, bestEpoch: job.bestEpoch };
          await this.send(sseEvent("status", jobView(job)));
        }
        if (ended) {
          await this.send(sseEvent("end", jobView(job)));
          return this.end();
        }
      } catch (err) {
        // PostgreSQL blinked: keep the stream (and its keep-alives) open and try again.
        this.log.warn({ err, jobId }, "metrics stream: reading the job failed; retrying");
      }
      await this.sleep(this.opts.pollMs);
    }
  }

  private async sendEpochs(): Promise<void> {
    for (;;) {
      const rows = await listMetricsPage(this.ctx.db, this.opts.jobId, { afterEpoch: this.sent, limit: STREAM_PAGE });
      for (const row of rows) {
        if (this.closed) return;
        await this.send(sseEvent("epoch", metricView(row), row.epoch));
        this.sent = row.epoch;
      }
      if (rows.length < STREAM_PAGE) return;
    }
  }

  /** Writes, waiting while the client's socket is full. */
  private async send(chunk: string): Promise<void> {
    if (this.closed || this.res.writableEnded) return;
    if (this.res.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off("drain", done);
        this.res.off("close", done);
        resolve();
      };
      this.res.on("drain", done);
      this.res.on("close", done);
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }
}
