// The real app, in-process, on a fresh database and queue: for app.inject tests.
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { loadConfig, type Config } from "../../src/config.js";
import { createDb, type Db } from "../../src/db/client.js";
import { createTrainingQueue, type TrainingQueue } from "../../src/queue/index.js";
import { buildApp } from "../../src/api/app.js";
import { createTestDatabase, obliterateQueue, REDIS_URL, uniqueQueueName, type TestDatabase } from "./stack.js";

export interface TestApp {
  app: FastifyInstance;
  db: Db;
  queue: TrainingQueue;
  config: Config;
  close(): Promise<void>;
}

export async function startTestApp(label: string, env: Record<string, string> = {}): Promise<TestApp> {
  const database: TestDatabase = await createTestDatabase(label);
  const config = loadConfig({ DATABASE_URL: database.url, REDIS_URL, QUEUE_NAME: uniqueQueueName(label), LOG_LEVEL: "silent", ...env });
  const db = createDb(config.databaseUrl);
  const queue = createTrainingQueue(config.redisUrl, config.queueName);
  const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const app = await buildApp({ config, db, queue, redis });
  await app.ready();
  return {
    app,
    db,
    queue,
    config,
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
