// Starts the API: builds the context and the app, listens, and drains on SIGTERM/SIGINT: the
// listener closes (no new connections; requests arriving on kept-alive ones get a 503 and
// `connection: close`), requests in flight (an upload being streamed, a submission) run to their
// end, idle kept-alive connections are closed, then the process exits.
import { Redis } from "ioredis";
import { loadConfig } from "../config.js";
import { createDb } from "../db/client.js";
import { createTrainingQueue } from "../queue/index.js";
import { buildApp } from "./app.js";

const config = loadConfig();
const db = createDb(config.databaseUrl);
/** Requests in flight get this long to finish after SIGTERM before the process exits anyway. */
const DRAIN_TIMEOUT_MS = 30_000;

const queue = createTrainingQueue(config.redisUrl, config.queueName, () => undefined); // readiness reports Redis
const redis = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
redis.on("error", () => undefined); // readiness reports it; no crash on a Redis blink
await redis.connect().catch(() => undefined);

const app = await buildApp({ config, db, queue, redis });

let closing = false;
// A request that was in flight when the drain began is answered with `Connection: close`, so its
// kept-alive socket does not hold the process open after the answer.
app.addHook("onSend", async (_req, reply) => {
  if (closing) void reply.header("connection", "close");
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, "shutting down: no new requests, draining open ones");
    setTimeout(() => {
      app.log.error("requests still open after the drain timeout; exiting");
      process.exit(1);
    }, DRAIN_TIMEOUT_MS).unref();
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
