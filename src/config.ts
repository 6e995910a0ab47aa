// The environment, parsed once into a frozen Config that is passed down. Nothing else reads
// process.env.
import { availableParallelism } from "node:os";
import { z } from "zod";

const envSchema = z.object({
  DATABASE_URL: z.string().url().default("postgresql://postgres@127.0.0.1:5432/trainhub"),
  REDIS_URL: z.string().url().default("redis://127.0.0.1:6379"),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default("127.0.0.1"),
  /** Largest accepted dataset upload, in bytes. */
  UPLOAD_LIMIT_BYTES: z.coerce.number().int().positive().default(512 * 1024 * 1024),
  /** Jobs one worker process trains at once (each on its own thread). */
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(1),
  /** Threads each job trains on, unless its config says `threads` (default 1). */
  THREADS_PER_JOB: z.coerce.number().int().min(1).max(256).default(1),
  /** Cores the worker may use (default: os.availableParallelism()). WORKER_CONCURRENCY jobs times
   *  their threads never exceed this: a job's threads are clamped to its share. */
  WORKER_CORES: z.coerce.number().int().min(1).max(4096).optional(),
  /** BullMQ queue name; tests use a fresh one each run. */
  QUEUE_NAME: z.string().min(1).default("training"),
  /** The key that creates and revokes API keys (POST/GET /v1/keys, DELETE /v1/keys/:id). Unset: no
   *  admin routes, keys can only be made with `npm run key`. */
  ADMIN_API_KEY: z.preprocess((v) => (v === "" ? undefined : v), z.string().min(16, "at least 16 characters").optional()),
  /** Queued plus running jobs one tenant may have at once (0: no cap). */
  MAX_ACTIVE_JOBS_PER_TENANT: z.coerce.number().int().min(0).default(20),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** When set, GET /metrics requires `Authorization: Bearer <METRICS_TOKEN>`; unset, it is open. */
  METRICS_TOKEN: z.string().min(1).optional(),
  /** Requests one client (API key, else IP) may make per RATE_LIMIT_WINDOW_MS; 0 turns the limit off. */
  RATE_LIMIT_MAX: z.coerce.number().int().min(0).default(600),
  /** The rate limit's window, in milliseconds. */
  RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(1).default(60_000),

  // --- the job system's timings (see workers/main.ts for why each default is what it is) -------
  /** How long a worker's lock on a job lasts without renewal (renewed every half of it). */
  WORKER_LOCK_MS: z.coerce.number().int().min(500).default(30_000),
  /** How often workers look for jobs whose lock expired (their worker died). */
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().min(200).default(30_000),
  /** Times a job may lose its worker (SIGKILL, OOM, power) and be taken over before it fails. */
  WORKER_MAX_STALLED_COUNT: z.coerce.number().int().min(0).default(2),
  /** Deliveries of a job that fails transiently (database or Redis down) before it fails for good. */
  JOB_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
  /** First retry delay; each later one doubles. */
  JOB_BACKOFF_MS: z.coerce.number().int().min(0).default(2_000),
  /** How often a worker checks whether the jobs it trains were cancelled. */
  CANCEL_POLL_MS: z.coerce.number().int().min(20).default(200),
  /** How often a worker records that it is still training its jobs (jobs.heartbeat_at). */
  HEARTBEAT_MS: z.coerce.number().int().min(100).default(5_000),
  /** How often a worker re-enqueues, from PostgreSQL, jobs missing from Redis (and sweeps uploads). */
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
  /** After SIGTERM, how long a worker lets the current epoch finish before stopping mid-epoch. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(20_000),
  /** How long a worker keeps retrying an epoch's writes through a database outage. */
  DB_RETRY_MS: z.coerce.number().int().min(0).default(60_000),
  /** An `uploading` dataset untouched for this long was abandoned (its API process died): deleted. */
  UPLOAD_STALE_MS: z.coerce.number().int().min(1_000).default(15 * 60_000),
  /** How long the API waits for Redis when enqueueing or removing a job before moving on. */
  QUEUE_TIMEOUT_MS: z.coerce.number().int().min(100).default(3_000),
  /** The name a worker gives itself in jobs.worker_id (default host:pid). */
  WORKER_ID: z.string().min(1).max(200).optional(),

  // --- the live metrics stream (GET /v1/jobs/:id/metrics/stream) --------------------------------
  /** How often an open stream reads its job's new epochs and status from PostgreSQL. */
  STREAM_POLL_MS: z.coerce.number().int().min(20).max(60_000).default(500),
  /** How often an open stream sends a `: ping` comment line, so proxies keep it open. */
  STREAM_KEEPALIVE_MS: z.coerce.number().int().min(20).max(300_000).default(15_000),
  /** The reconnect delay a stream tells its clients (the SSE `retry:` field). */
  STREAM_RETRY_MS: z.coerce.number().int().min(0).max(300_000).default(3_000),
});

export interface Config {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly port: number;
  readonly host: string;
  readonly uploadLimitBytes: number;
  readonly workerConcurrency: number;
  /** Default threads per job (THREADS_PER_JOB). */
  readonly threadsPerJob: number;
  /** Cores the worker may use (WORKER_CORES, or os.availableParallelism()). */
  readonly workerCores: number;
  readonly queueName: string;
  readonly logLevel: z.infer<typeof envSchema>["LOG_LEVEL"];
  /** GET /metrics requires this bearer token when set. */
  readonly metricsToken: string | undefined;
  /** Requests per client per window; 0: no rate limit. */
  readonly rateLimit: Readonly<{ max: number; windowMs: number }>;
  readonly adminApiKey: string | undefined;
  /** 0: no cap. */
  readonly maxActiveJobsPerTenant: number;
  readonly worker: Readonly<{
    lockMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
    cancelPollMs: number;
    heartbeatMs: number;
    reconcileIntervalMs: number;
    shutdownGraceMs: number;
    dbRetryMs: number;
    id: string | undefined;
  }>;
  readonly jobAttempts: number;
  readonly jobBackoffMs: number;
  readonly uploadStaleMs: number;
  readonly queueTimeoutMs: number;
  /** The live metrics stream: poll interval, keep-alive interval, the clients' reconnect delay. */
  readonly stream: Readonly<{ pollMs: number; keepAliveMs: number; retryMs: number }>;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid environment:\n  ${lines.join("\n  ")}`);
  }
  const e = parsed.data;
  return Object.freeze({
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    port: e.PORT,
    host: e.HOST,
    uploadLimitBytes: e.UPLOAD_LIMIT_BYTES,
    workerConcurrency: e.WORKER_CONCURRENCY,
    threadsPerJob: e.THREADS_PER_JOB,
    workerCores: e.WORKER_CORES ?? availableParallelism(),
    queueName: e.QUEUE_NAME,
    logLevel: e.LOG_LEVEL,
    metricsToken: e.METRICS_TOKEN,
    rateLimit: Object.freeze({ max: e.RATE_LIMIT_MAX, windowMs: e.RATE_LIMIT_WINDOW_MS }),
    adminApiKey: e.ADMIN_API_KEY,
    maxActiveJobsPerTenant: e.MAX_ACTIVE_JOBS_PER_TENANT,
    worker: Object.freeze({
      lockMs: e.WORKER_LOCK_MS,
      stalledIntervalMs: e.WORKER_STALLED_INTERVAL_MS,
      maxStalledCount: e.WORKER_MAX_STALLED_COUNT,
      cancelPollMs: e.CANCEL_POLL_MS,
      heartbeatMs: e.HEARTBEAT_MS,
      reconcileIntervalMs: e.RECONCILE_INTERVAL_MS,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
      dbRetryMs: e.DB_RETRY_MS,
      id: e.WORKER_ID,
    }),
    jobAttempts: e.JOB_ATTEMPTS,
    jobBackoffMs: e.JOB_BACKOFF_MS,
    uploadStaleMs: e.UPLOAD_STALE_MS,
    queueTimeoutMs: e.QUEUE_TIMEOUT_MS,
    stream: Object.freeze({ pollMs: e.STREAM_POLL_MS, keepAliveMs: e.STREAM_KEEPALIVE_MS, retryMs: e.STREAM_RETRY_MS }),
  });
}

/**
 * The threads a job trains on: what its config asks (`threads`), else THREADS_PER_JOB, clamped to
 * its share of the worker's cores (WORKER_CONCURRENCY jobs at once never use more threads than
 * WORKER_CORES). `clampedFrom` is the request when it was reduced.
 */
export function jobThreads(
  config: Pick<Config, "threadsPerJob" | "workerCores" | "workerConcurrency">,
  requested: number | undefined,
): { threads: number; clampedFrom: number | null } {
  const want = requested ?? config.threadsPerJob;
  const share = Math.max(1, Math.floor(config.workerCores / config.workerConcurrency));
  const threads = Math.max(1, Math.min(want, share));
  return { threads, clampedFrom: threads < want ? want : null };
}
