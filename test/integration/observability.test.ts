// Operations, on the real app with real PostgreSQL and Redis: GET /metrics (Prometheus text, per-app
// registry, METRICS_TOKEN), the x-request-id header and log field, and the per-client rate limit
// (429 + Retry-After, keyed by API key or IP, shared through Redis, exempt probes).
import { randomBytes, randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { startRedis, startStack, waitFor, type Stack, type TestRedis } from "../helpers/stack.js";
import { regressionCsv } from "../helpers/data.js";
import { buildApp } from "../../src/api/app.js";
import { loadConfig, type Config } from "../../src/config.js";
import { createDb } from "../../src/db/client.js";
import { createTrainingQueue } from "../../src/queue/index.js";
import { createApiKey } from "../../src/services/keys.js";

// ---- a small Prometheus text-format (0.0.4) parser, strict enough to fail on malformed output ----

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

const METRIC_NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const SAMPLE_LINE = new RegExp(`^(${METRIC_NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+-?\\d+)?$`);
const LABEL_PAIR = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

/** As Prometheus reads values (Go's ParseFloat): Inf and NaN in any case (prom-client writes "Nan"). */
function parseValue(s: string): number {
  if (/^\+?inf$/i.test(s)) return Infinity;
  if (/^-inf$/i.test(s)) return -Infinity;
  if (/^nan$/i.test(s)) return NaN;
  const v = Number(s);
  if (s.trim() === "" || Number.isNaN(v)) throw new Error(`not a sample value: ${s}`);
  return v;
}

function parseLabels(s: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!s) return labels;
  LABEL_PAIR.lastIndex = 0;
  while (LABEL_PAIR.lastIndex < s.length) {
    const m = LABEL_PAIR.exec(s);
    if (!m) throw new Error(`malformed labels: {${s}}`);
    labels[m[1]] = m[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
  }
  return labels;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) throw new Error(`malformed comment line: ${line}`);
      if (m[1] === "TYPE") {
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(m[3] ?? "")) throw new Error(`bad TYPE: ${line}`);
        if (types.has(m[2])) throw new Error(`TYPE given twice for ${m[2]}`);
        types.set(m[2], m[3]!);
      }
      continue;
    }
    const m = SAMPLE_LINE.exec(line);
    if (!m) throw new Error(`malformed sample line: ${line}`);
    samples.push({ name: m[1], labels: parseLabels(m[2]), value: parseValue(m[3]) });
  }
  return { types, samples };
}

function find(e: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample's value, or undefined when there is none. */
function value(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = find(e, name, labels);
  expect(found.length, `${name} ${JSON.stringify(labels)}: ${JSON.stringify(found)}`).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

describe("the Prometheus parser used here", () => {
  it("rejects malformed exposition text (so the tests below can fail)", () => {
    expect(() => parseExposition("metric_a{x=\"1\" 3\n")).toThrow();
    expect(() => parseExposition("metric a 3\n")).toThrow();
    expect(() => parseExposition("metric_a 3 4 5\n")).toThrow();
    expect(() => parseExposition("# TYPE metric_a flavour\n")).toThrow();
    const ok = parseExposition('# HELP m h\n# TYPE m gauge\nm{a="x\\"y",b="2"} 1.5\nm_count 3\n');
    expect(ok.samples).toEqual([
      { name: "m", labels: { a: 'x"y', b: "2" }, value: 1.5 },
      { name: "m_count", labels: {}, value: 3 },
    ]);
  });
});

// ---- GET /metrics and x-request-id -----------------------------------------------------------

const METRICS_TOKEN = "metrics-" + randomBytes(12).toString("hex");

describe("GET /metrics and the request id", () => {
  let t: TestApp;
  let auth: { authorization: string };
  const bearer = { authorization: `Bearer ${METRICS_TOKEN}` };

  beforeAll(async () => {
    t = await startTestApp("obsmetrics", { METRICS_TOKEN });
    auth = { authorization: `Bearer ${(await createApiKey(t.db, "obs-tenant")).key}` };
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  async function scrape(): Promise<Exposition> {
    const res = await t.app.inject({ method: "GET", url: "/metrics", headers: bearer });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseExposition(res.body);
  }

  it("needs the METRICS_TOKEN bearer token when it is set, with the error shape otherwise", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: METRICS_TOKEN }, { authorization: `Bearer ${METRICS_TOKEN}x` }]) {
      const res = await t.app.inject({ method: "GET", url: "/metrics", headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(401);
      const body = res.json();
      expect(body.error.code).toBe("unauthorized");
      expect(typeof body.error.message).toBe("string");
      expect(res.body).not.toContain(METRICS_TOKEN);
    }
    expect((await t.app.inject({ method: "GET", url: "/metrics", headers: bearer })).statusCode).toBe(200);
  });

  it("serves parseable Prometheus text with the named metrics and their types", async () => {
    const e = await scrape();
    expect(e.types.get("http_request_duration_seconds")).toBe("histogram");
    expect(e.types.get("trainhub_jobs")).toBe("gauge");
    expect(e.types.get("trainhub_queue_jobs")).toBe("gauge");
    expect(e.types.get("trainhub_epoch_duration_seconds")).toBe("gauge");
    expect(e.types.get("trainhub_epoch_samples_per_second")).toBe("gauge");
    expect(e.types.get("trainhub_metrics_source_up")).toBe("gauge");
    expect(value(e, "trainhub_metrics_source_up", { source: "postgres" })).toBe(1);
    expect(value(e, "trainhub_metrics_source_up", { source: "redis" })).toBe(1);
    // Every job status is reported, zero included.
    for (const status of ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]) {
      expect(value(e, "trainhub_jobs", { status }), status).toBeTypeOf("number");
    }
    for (const state of ["waiting", "prioritized", "active", "delayed", "completed", "failed"]) {
      expect(value(e, "trainhub_queue_jobs", { state }), state).toBe(0);
    }
    expect(find(e, "process_cpu_user_seconds_total").length).toBe(1);
  });

  it("counts requests in the duration histogram by method, route pattern and status", async () => {
    const labels = { method: "GET", route: "/healthz", status_code: "200" };
    const before = value(await scrape(), "http_request_duration_seconds_count", labels) ?? 0;
    for (let i = 0; i < 3; i++) expect((await t.app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    const missingJob = randomUUID();
    expect((await t.app.inject({ method: "GET", url: `/v1/jobs/${missingJob}`, headers: auth })).statusCode).toBe(404);
    const strayUrl = `/no-such-route-${randomBytes(4).toString("hex")}`;
    expect((await t.app.inject({ method: "GET", url: strayUrl })).statusCode).toBe(404);

    const res = await t.app.inject({ method: "GET", url: "/metrics", headers: bearer });
    const e = parseExposition(res.body);
    expect(value(e, "http_request_duration_seconds_count", labels)).toBe(before + 3);
    const inf = value(e, "http_request_duration_seconds_bucket", { ...labels, le: "+Inf" });
    expect(inf).toBe(before + 3);
    const sum = value(e, "http_request_duration_seconds_sum", labels)!;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(60);
    // Buckets are cumulative.
    const buckets = find(e, "http_request_duration_seconds_bucket", labels).map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    // Route patterns, never raw URLs.
    expect(value(e, "http_request_duration_seconds_count", { method: "GET", route: "/v1/jobs/:id", status_code: "404" })).toBe(1);
    expect(value(e, "http_request_duration_seconds_count", { method: "GET", route: "unmatched", status_code: "404" })).toBeGreaterThanOrEqual(1);
    expect(res.body).not.toContain(missingJob);
    expect(res.body).not.toContain(strayUrl);
  });

  it("reports a job submitted through the API in jobs by status and queue depth, and running jobs' newest epoch", async () => {
    const upload = await t.app.inject({
      method: "POST",
      url: "/v1/datasets?name=obs&target=y",
      headers: { ...auth, "content-type": "text/csv" },
      payload: regressionCsv(50, 3),
    });
    expect(upload.statusCode, upload.body).toBe(201);
    const before = await scrape();
    const queuedBefore = value(before, "trainhub_jobs", { status: "queued" })!;
    const runningBefore = value(before, "trainhub_jobs", { status: "running" })!;

    const submit = await t.app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: auth,
      payload: { dataset_id: upload.json().id, model: { layers: [{ type: "dense", units: 1 }] }, loss: "mse", epochs: 2 },
    });
    expect(submit.statusCode, submit.body).toBe(201);
    const jobId: string = submit.json().id;

    const queued = await scrape();
    expect(value(queued, "trainhub_jobs", { status: "queued" })).toBe(queuedBefore + 1);
    // No worker: the job waits in Redis (every job has a priority, so BullMQ keeps it as `prioritized`).
    expect((value(queued, "trainhub_queue_jobs", { state: "waiting" }) ?? 0) + (value(queued, "trainhub_queue_jobs", { state: "prioritized" }) ?? 0)).toBe(1);
    expect(find(queued, "trainhub_epoch_duration_seconds", { job_id: jobId })).toEqual([]);

    // As a worker would record it: the job running, with two epochs stored.
    await t.db.job.update({ where: { id: jobId }, data: { status: "running", startedAt: new Date(), epoch: 2 } });
    for (const [epoch, durationMs, samplesPerSec] of [[1, 250, 160], [2, 125, 320]] as const) {
      await t.db.epochMetric.create({ data: { jobId, epoch, trainLoss: 1 / epoch, valLoss: null, lr: 0.01, metrics: {}, durationMs, samplesPerSec } });
    }
    const running = await scrape();
    expect(value(running, "trainhub_jobs", { status: "queued" })).toBe(queuedBefore);
    expect(value(running, "trainhub_jobs", { status: "running" })).toBe(runningBefore + 1);
    expect(value(running, "trainhub_epoch_duration_seconds", { job_id: jobId })).toBeCloseTo(0.125, 9);
    expect(value(running, "trainhub_epoch_samples_per_second", { job_id: jobId })).toBe(320);
    expect(value(running, "trainhub_job_epoch", { job_id: jobId })).toBe(2);

    // Once it ends it is no longer a running job's series.
    await t.db.job.update({ where: { id: jobId }, data: { status: "succeeded", finishedAt: new Date() } });
    const ended = await scrape();
    expect(value(ended, "trainhub_jobs", { status: "running" })).toBe(runningBefore);
    expect(find(ended, "trainhub_epoch_duration_seconds", { job_id: jobId })).toEqual([]);
  });

  it("keeps a registry per app: a second app in this process starts from zero", async () => {
    const redis = new Redis(t.config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    const other = await buildApp({ config: t.config, db: t.db, queue: t.queue, redis });
    try {
      await other.ready();
      const e = parseExposition((await other.inject({ method: "GET", url: "/metrics", headers: bearer })).body);
      expect(find(e, "http_request_duration_seconds_count", { route: "/healthz" })).toEqual([]);
      expect(find(await scrape(), "http_request_duration_seconds_count", { route: "/healthz" }).length).toBe(1);
    } finally {
      await other.close();
      redis.disconnect();
    }
  });

  it("is in the OpenAPI document, tagged operations, with its responses", async () => {
    const doc = (await t.app.inject({ method: "GET", url: "/openapi.json" })).json();
    const op = doc.paths["/metrics"]?.get;
    expect(op, JSON.stringify(Object.keys(doc.paths))).toBeDefined();
    expect(op.tags).toEqual(["operations"]);
    expect(op.description).toContain("Prometheus");
    expect(Object.keys(op.responses).sort()).toEqual(["200", "401"]);
    expect(Object.keys(op.responses["200"].content)).toEqual(["text/plain"]);
    expect(op.responses["401"].content["application/json"].schema).toBeDefined();
  });

  describe("x-request-id", () => {
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

    it("echoes a sane client id on every kind of answer", async () => {
      const cases = [
        { method: "GET" as const, url: "/healthz", headers: {}, status: 200 },
        { method: "GET" as const, url: "/nowhere", headers: {}, status: 404 },
        { method: "GET" as const, url: "/metrics", headers: {}, status: 401 },
        { method: "GET" as const, url: `/v1/jobs/${randomUUID()}`, headers: auth, status: 404 },
        { method: "POST" as const, url: "/v1/jobs", headers: { ...auth, "content-type": "application/json" }, status: 400, payload: "{not json" },
      ];
      for (const c of cases) {
        const id = `client id ${randomBytes(6).toString("hex")} (${c.status})`;
        const res = await t.app.inject({ method: c.method, url: c.url, headers: { ...c.headers, "x-request-id": id }, payload: c.payload });
        expect(res.statusCode, `${c.url}: ${res.body}`).toBe(c.status);
        expect(res.headers["x-request-id"], c.url).toBe(id);
      }
      const longest = "r".repeat(128);
      expect((await t.app.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": longest } })).headers["x-request-id"]).toBe(longest);
    });

    it("generates a UUID when there is none, or when the client's is too long, empty or not printable ASCII", async () => {
      const seen = new Set<string>();
      for (const given of [undefined, "", "r".repeat(129), "caf\u00e9", "tab\there"]) {
        const res = await t.app.inject({ method: "GET", url: "/healthz", headers: given === undefined ? {} : { "x-request-id": given } });
        const id = res.headers["x-request-id"];
        expect(id, JSON.stringify(given)).toMatch(UUID);
        seen.add(id as string);
      }
      expect(seen.size).toBe(5);
      // Errors too.
      expect((await t.app.inject({ method: "GET", url: "/nowhere" })).headers["x-request-id"]).toMatch(UUID);
    });
  });
});

describe("the request id in the log lines", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack("obslog", { workers: 0, env: { LOG_LEVEL: "info" } });
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
  });

  it("is the reqId of the request's pino lines, given or generated", async () => {
    const given = `log-${randomBytes(8).toString("hex")}`;
    const res = await fetch(`${stack.baseUrl}/healthz`, { headers: { "x-request-id": given } });
    expect(res.headers.get("x-request-id")).toBe(given);
    const generated = (await fetch(`${stack.baseUrl}/nowhere`)).headers.get("x-request-id")!;
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);

    const linesOf = (id: string) =>
      stack.api
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l))
        .filter((l) => l.reqId === id);
    // Both the "incoming request" and the "request completed" lines carry it.
    await waitFor(async () => linesOf(given).length >= 2 && linesOf(generated).length >= 2, 10_000, () => stack.api.output());
    expect(linesOf(given).some((l) => l.res?.statusCode === 200)).toBe(true);
    expect(linesOf(generated).some((l) => l.res?.statusCode === 404)).toBe(true);
  });
});

// ---- the rate limit ------------------------------------------------------------------------------

describe("the rate limit", () => {
  const MAX = 3;
  let t: TestApp;
  const extra: { app: FastifyInstance; redis: Redis }[] = [];

  /** Another app (as another API process would be) on the same database, queue and Redis. */
  async function anotherApp(config: Config): Promise<FastifyInstance> {
    const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    const app = await buildApp({ config, db: t.db, queue: t.queue, redis });
    await app.ready();
    extra.push({ app, redis });
    return app;
  }

  beforeAll(async () => {
    t = await startTestApp("obsrate", { RATE_LIMIT_MAX: String(MAX), RATE_LIMIT_WINDOW_MS: "60000" });
  }, 60_000);
  afterAll(async () => {
    for (const { app, redis } of extra) {
      await app.close();
      redis.disconnect();
    }
    await t?.close();
  });

  const newKey = async () => `Bearer ${(await createApiKey(t.db, `rate-${randomBytes(3).toString("hex")}`)).key}`;

  function expectLimited(res: { statusCode: number; headers: Record<string, unknown>; json(): any }) {
    expect(res.statusCode).toBe(429);
    const retryAfter = Number(res.headers["retry-after"]);
    expect(Number.isInteger(retryAfter), String(res.headers["retry-after"])).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = res.json();
    expect(Object.keys(body)).toEqual(["error"]);
    expect(body.error.code).toBe("rate_limited");
    expect(body.error.param).toBeNull();
    expect(body.error.message).toMatch(/retry/i);
    expect(res.headers["x-request-id"]).toBeTypeOf("string");
  }

  it("answers 429 with Retry-After after RATE_LIMIT_MAX requests of one key; another key is not limited", async () => {
    const a = await newKey();
    const b = await newKey();
    for (let i = 1; i <= MAX; i++) {
      const res = await t.app.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: a } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers["x-ratelimit-remaining"]).toBe(String(MAX - i));
    }
    expectLimited(await t.app.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: a } }));
    // Any route counts against the same key.
    expectLimited(await t.app.inject({ method: "GET", url: "/v1/datasets", headers: { authorization: a } }));

    const other = await t.app.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: b } });
    expect(other.statusCode, other.body).toBe(200);
    expect(other.headers["x-ratelimit-remaining"]).toBe(String(MAX - 1));
  });

  it("counts requests without an Authorization header by client IP, apart from keys", async () => {
    const fromIp = (ip: string) => t.app.inject({ method: "GET", url: "/openapi.json", remoteAddress: ip });
    for (let i = 0; i < MAX; i++) expect((await fromIp("10.0.0.7")).statusCode).toBe(200);
    expectLimited(await fromIp("10.0.0.7"));
    expect((await fromIp("10.0.0.8")).statusCode).toBe(200);
    const keyed = await t.app.inject({ method: "GET", url: "/openapi.json", remoteAddress: "10.0.0.7", headers: { authorization: await newKey() } });
    expect(keyed.statusCode).toBe(200);
  });

  it("never limits /healthz, /readyz and /metrics", async () => {
    const a = await newKey();
    for (let i = 0; i <= MAX; i++) await t.app.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: a } });
    expectLimited(await t.app.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: a } }));
    for (const url of ["/healthz", "/readyz", "/metrics"]) {
      for (let i = 0; i < MAX * 3; i++) {
        const res = await t.app.inject({ method: "GET", url, headers: { authorization: a } });
        expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
        expect(res.headers["x-ratelimit-limit"]).toBeUndefined();
      }
    }
  });

  it("shares the count between API processes through Redis", async () => {
    const a = await newKey();
    const second = await anotherApp(t.config);
    for (let i = 0; i < MAX; i++) {
      const app = i % 2 === 0 ? t.app : second;
      expect((await app.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: a } })).statusCode).toBe(200);
    }
    expectLimited(await second.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: a } }));
    expectLimited(await t.app.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: a } }));
  });

  it("is off with RATE_LIMIT_MAX=0", async () => {
    const off = await anotherApp({ ...t.config, rateLimit: { max: 0, windowMs: 60_000 } });
    const a = await newKey();
    for (let i = 0; i < MAX * 3; i++) {
      const res = await off.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: a } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers["x-ratelimit-limit"]).toBeUndefined();
    }
  });
});

// ---- Redis down: the scrape answers, and the limiter lets requests through ----------------------

describe("with Redis down", () => {
  let redisServer: TestRedis;
  let t: TestApp;
  let app: FastifyInstance;
  let redis: Redis;
  let queue: ReturnType<typeof createTrainingQueue>;
  let db: ReturnType<typeof createDb>;

  beforeAll(async () => {
    redisServer = await startRedis();
    // The database of a test app; the queue, the readiness connection and the limiter on our own Redis.
    t = await startTestApp("obsredis");
    const config = loadConfig({
      DATABASE_URL: t.config.databaseUrl,
      REDIS_URL: redisServer.url,
      QUEUE_NAME: t.config.queueName,
      LOG_LEVEL: "silent",
      RATE_LIMIT_MAX: "2",
    });
    db = createDb(config.databaseUrl);
    queue = createTrainingQueue(config.redisUrl, config.queueName);
    redis = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    redis.on("error", () => undefined);
    await redis.connect();
    app = await buildApp({ config, db, queue, redis });
    await app.ready();
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await redisServer?.start().catch(() => undefined);
    await queue?.close();
    redis?.disconnect();
    await db?.$disconnect();
    await t?.close();
    await redisServer?.kill();
  });

  it("still scrapes, reporting Redis down and PostgreSQL's values; requests are not refused by the limiter", async () => {
    await redisServer.kill();
    const res = await app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode, res.body).toBe(200);
    const e = parseExposition(res.body);
    expect(value(e, "trainhub_metrics_source_up", { source: "redis" })).toBe(0);
    expect(value(e, "trainhub_metrics_source_up", { source: "postgres" })).toBe(1);
    expect(find(e, "trainhub_queue_jobs")).toEqual([]);
    expect(value(e, "trainhub_jobs", { status: "queued" })).toBe(0);

    for (let i = 0; i < 5; i++) {
      const r = await app.inject({ method: "GET", url: "/openapi.json" });
      expect(r.statusCode).toBe(200);
    }
  });
});
