// The environment, parsed once into a frozen Config that is passed down. Nothing else reads
// process.env.
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
  /** BullMQ queue name; tests use a fresh one each run. */
  QUEUE_NAME: z.string().min(1).default("training"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export interface Config {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly port: number;
  readonly host: string;
  readonly uploadLimitBytes: number;
  readonly workerConcurrency: number;
  readonly queueName: string;
  readonly logLevel: z.infer<typeof envSchema>["LOG_LEVEL"];
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
    queueName: e.QUEUE_NAME,
    logLevel: e.LOG_LEVEL,
  });
}
