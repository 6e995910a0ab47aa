// The real app, in-process, on a fresh database and queue: for app.inject tests.
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { Redis } from "ioredis";
import { loadConfig, type Config } from "../../src/config.js";
import { createDb, type Db } from "../../src/db/client.js";
import { createTrainingQueue, type TrainingQueue } from "../../src/queue/index.js";
import { buildApp } from "../../src/api/app.js";
import { createApiKey } from "../../src/services/keys.js";
import { createTestDatabase, obliterateQueue, REDIS_URL, TEST_ADMIN_KEY, uniqueQueueName, type TestDatabase } from "./stack.js";

export interface TestApp {
  app: FastifyInstance;
  db: Db;
  queue: TrainingQueue;
  config: Config;
  /** A key of the tenant `tenant` (made directly in the database). */
  key: string;
  tenant: string;
  /** app.inject with `Authorization: Bearer <key>` unless the request sets its own. */
  inject(opts: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function startTestApp(label: string, env: Record<string, string> = {}): Promise<TestApp> {
  const database: TestDatabase = await createTestDatabase(label);
  const config = loadConfig({
    DATABASE_URL: database.url,
    REDIS_URL,
    QUEUE_NAME: uniqueQueueName(label),
    LOG_LEVEL: "silent",
    ADMIN_API_KEY: TEST_ADMIN_KEY,
    // Tests make many requests with one key; the rate limit has tests of its own.
    RATE_LIMIT_MAX: "0",
    ...env,
  });
  const db = createDb(config.databaseUrl);
  const queue = createTrainingQueue(config.redisUrl, config.queueName);
  const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const app = await buildApp({ config, db, queue, redis });
  await app.ready();
  const tenant = "tenant-a";
  const { key } = await createApiKey(db, tenant);
  return {
    app,
    db,
    queue,
    config,
    key,
    tenant,
    inject: (opts) => app.inject({ ...opts, headers: { authorization: `Bearer ${key}`, ...opts.headers } }),
    async close() {
      await app.close();
      await queue.close();
      await obliterateQueue(config.queueName);
      redis.disconnect();
      await db.$disconnect();
      await database.drop();
    },
  };
}
