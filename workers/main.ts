// The worker process: a BullMQ Worker whose jobs each train on their own thread. Separate from the
// API; run as many as you like against the same Redis and PostgreSQL.
//
// Besides training it: polls for cancel requests and records heartbeats for the jobs it holds
// (job-watch.ts), re-enqueues from PostgreSQL what Redis lost and sweeps abandoned uploads
// (reconcile.ts), and on SIGTERM lets each job finish its epoch, checkpoint, and hands it back.
import { hostname } from "node:os";
import { Worker } from "bullmq";
import { jobThreads, loadConfig } from "../src/config.js";
import { createDb } from "../src/db/client.js";
import { createTrainingQueue, redisConnection, type TrainingPayload } from "../src/queue/index.js";
import { processTrainingJob, recordStallLimit, STALL_LIMIT_REASON } from "./process-job.js";
import { JobWatch } from "./job-watch.js";
import { ThreadPool } from "./training-thread.js";
import { reconcile } from "./reconcile.js";
import { Shutdown } from "./shutdown.js";
import { createLogger, errorText } from "./log.js";

const config = loadConfig();
const workerId = config.worker.id ?? `${hostname()}:${process.pid}`;
const log = createLogger(config.logLevel, { worker: workerId });
const db = createDb(config.databaseUrl);
// Used by the reconciliation sweep to look jobs up in Redis and put back the ones it lost.
const queue = createTrainingQueue(config.redisUrl, config.queueName, (err) => log.warn("queue connection error", { error: errorText(err) }));
const watch = new JobWatch(db, workerId, { pollMs: config.worker.cancelPollMs, heartbeatMs: config.worker.heartbeatMs }, log);
const shutdown = new Shutdown();
// One booted training thread per concurrent job, reused from job to job.
const threads = new ThreadPool(config.workerConcurrency);
threads.prewarm();
const deps = { db, config, workerId, watch, shutdown, threads, log };

const worker = new Worker<TrainingPayload>(config.queueName, (job, token) => processTrainingJob(deps, job, token), {
  connection: redisConnection(config.redisUrl),
  concurrency: config.workerConcurrency,
  // How a lost worker's job is taken over. The worker holds a lock on each job it runs and renews
  // it every lockDuration / 2; training runs on a thread, so the event loop is free to renew on
  // time. If the process dies (SIGKILL, OOM, a lost host) the lock expires, and the next stalled
  // check of any worker puts the job back in the queue, so takeover takes at most about
  // lockDuration + stalledInterval (45 s with the defaults).
  //  - lockDuration 30 s: long enough that an event loop held up for a while (a large dataset
  //    being assembled, a GC pause, a slow checkpoint write) or a Redis failover of a few seconds
  //    does not look like a dead worker. A false takeover would be safe (writes are idempotent) but
  //    would train the job twice at once; a shorter lock buys faster takeover with that risk.
  //  - stalledInterval 15 s: the check is one Lua script per queue (a key stops two workers from
  //    running it at once), cheap enough to run often; half the lock keeps takeover under a minute.
  //  - maxStalledCount 2: a job may lose its worker twice (a deploy without grace, a preempted
  //    host) and still go on; the third time it fails, since it may be the job that kills its
  //    workers (out of memory), and it must not take down the fleet one worker at a time.
  // A graceful shutdown (SIGTERM) hands jobs back explicitly and counts for none of this. Tests
  // set these low through WORKER_LOCK_MS and WORKER_STALLED_INTERVAL_MS.
  lockDuration: config.worker.lockMs,
  stalledInterval: config.worker.stalledIntervalMs,
  maxStalledCount: config.worker.maxStalledCount,
});
worker.on("error", (err) => log.warn("worker error", { error: errorText(err) }));
worker.on("ready", () =>
  log.info("worker ready", {
    queue: config.queueName,
    concurrency: config.workerConcurrency,
    threadsPerJob: config.threadsPerJob,
    cores: config.workerCores,
  }),
);
// Each training thread reads THREADS_PER_JOB and WORKER_CORES from the same environment and clamps
// every job's threads to its share of the cores (workers/thread.ts, jobThreads).
if (config.workerConcurrency * config.threadsPerJob > config.workerCores) {
  log.warn("WORKER_CONCURRENCY x THREADS_PER_JOB exceeds the cores: each job's threads are clamped to its share", {
    concurrency: config.workerConcurrency,
    threadsPerJob: config.threadsPerJob,
    cores: config.workerCores,
    threadsPerJobUsed: jobThreads(config, undefined).threads,
  });
}
worker.on("stalled", (jobId) => log.warn("took over a job whose worker was lost", { jobId }));
worker.on("failed", (job, err) => {
  // BullMQ fails a job past its stall limit without calling the processor: record it ourselves.
  if (job && err.message === STALL_LIMIT_REASON) {
    void recordStallLimit(deps, job.data.jobId).catch((e) => log.error("could not record a stall-limit failure", { jobId: job.data.jobId, error: errorText(e) }));
  }
});
watch.start();

// Reconciliation: at start (after a Redis restart every worker restarts its connections, and a
// freshly started worker may be the first to notice), then periodically.
let reconcileTimer: NodeJS.Timeout | undefined;
const sweep = async () => {
  try {
    const report = await reconcile({ db, queue, config, log });
    if (report.requeued + report.cancelled + report.failed > 0) log.warn("reconciliation", { ...report });
  } catch (err) {
    log.warn("reconciliation failed; will try again", { error: errorText(err) });
  } finally {
    if (!shutdown.requested) reconcileTimer = setTimeout(sweep, config.worker.reconcileIntervalMs);
  }
};
void sweep();

let closing = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    if (closing) return;
    closing = true;
    log.info("shutting down: each job finishes or checkpoints its epoch and goes back to the queue", { signal });
    clearTimeout(reconcileTimer);
    // Past the grace period jobs stop mid-epoch; past that plus a margin we give up waiting (any
    // job still held is then taken over after its lock expires).
    const deadline = setTimeout(() => {
      log.error("shutdown took too long; exiting");
      process.exit(1);
    }, config.worker.shutdownGraceMs + 15_000);
    deadline.unref();
    shutdown.request();
    try {
      await worker.close();
      watch.stop();
      await threads.close();
      await queue.close();
      await db.$disconnect();
    } catch (err) {
      log.warn("error while shutting down", { error: errorText(err) });
    } finally {
      process.exit(0);
    }
  });
}
