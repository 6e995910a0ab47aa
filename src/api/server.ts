// Starts the API: builds the context and the app, listens, and drains on SIGTERM/SIGINT.
import { Redis } from "ioredis";
import { loadConfig } from "../config.js";
import { createDb } from "../db/client.js";
import { createTrainingQueue } from "../queue/index.js";
import { buildApp } from "./app.js";

const config = loadConfig();
const db = createDb(config.databaseUrl);
const queue = createTrainingQueue(config.redisUrl, config.queueName);
const redis = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
redis.on("error", () => undefined); // readiness reports it; no crash on a Redis blink
await redis.connect().catch(() => undefined);

const app = await buildApp({ config, db, queue, redis });

let closing = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, "shutting down: no new requests, draining open ones");
    try {
      await app.close();
      await queue.close();
      redis.disconnect();
      await db.$disconnect();
    } finally {
      process.exit(0);
    }
  });
}

await app.listen({ port: config.port, host: config.host });
