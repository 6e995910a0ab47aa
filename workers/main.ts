// The worker process: a BullMQ Worker whose jobs each train on their own thread. Separate from the
// API; run as many as you like against the same Redis and PostgreSQL.
import { Worker } from "bullmq";
import { loadConfig } from "../src/config.js";
import { createDb } from "../src/db/client.js";
import { redisConnection, type TrainingPayload } from "../src/queue/index.js";
import { processTrainingJob } from "./process-job.js";

const config = loadConfig();
const db = createDb(config.databaseUrl);
const log = (msg: string, fields: Record<string, unknown> = {}) => {
  if (config.logLevel !== "silent") console.log(JSON.stringify({ time: new Date().toISOString(), pid: process.pid, msg, ...fields }));
};

const worker = new Worker<TrainingPayload>(config.queueName, (job) => processTrainingJob({ db, log }, job), {
  connection: redisConnection(config.redisUrl),
  concurrency: config.workerConcurrency,
  // Training runs on its own thread, so lock renewal is never starved; a killed worker's job is
  // noticed within a lock duration and handed to another worker.
  lockDuration: 30_000,
  stalledInterval: 15_000,
  maxStalledCount: 2,
});
worker.on("error", (err) => log("worker error", { error: err.message }));
worker.on("ready", () => log("worker ready", { queue: config.queueName, concurrency: config.workerConcurrency }));

let closing = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    if (closing) return;
    closing = true;
    log("shutting down: finishing the jobs in hand", { signal });
    try {
      await worker.close();
      await db.$disconnect();
    } finally {
      process.exit(0);
    }
  });
}
