// The reconciliation sweep, run by every worker at start and every RECONCILE_INTERVAL_MS.
// PostgreSQL is the source of truth and Redis only carries work in flight, so Redis may lose jobs
// (a restart of a Redis that keeps nothing on disk empties it). The sweep puts back what it lost:
//   - a `queued` job that Redis does not know is enqueued again (BullMQ job id = job id, so two
//     workers sweeping at once add it once);
//   - a `running` job that Redis does not know, and whose worker has stopped beating its heart, is
//     enqueued again and resumes from its last checkpoint (while the heartbeat is fresh its worker
//     is still training it, and will finish it without Redis' help);
//   - a `cancelling` job that Redis does not know and no live worker holds is cancelled here;
//   - a job BullMQ failed while PostgreSQL still has it unfinished (the worker could not record
//     the failure, typically because PostgreSQL was down too) is ended if it exhausted its stall
//     limit, and otherwise enqueued again with a fresh set of attempts.
// It also deletes dataset uploads abandoned midway.
import type { Config } from "../src/config.js";
import type { Db } from "../src/db/client.js";
import * as jobs from "../src/db/jobs.js";
import { sweepAbandonedUploads } from "../src/services/datasets.js";
import { cancelledEvent } from "../src/services/jobs.js";
import { enqueueTraining, withTimeout, type TrainingQueue } from "../src/queue/index.js";
import { recordStallLimit, STALL_LIMIT_REASON } from "./process-job.js";
import { errorText, type Logger } from "./log.js";

export interface ReconcileDeps {
  db: Db;
  queue: TrainingQueue;
  config: Config;
  log: Logger;
}

export interface ReconcileReport {
  checked: number;
  requeued: number;
  cancelled: number;
  failed: number;
  uploadsDeleted: number;
}

/** Jobs younger than this are left alone: the API may be enqueueing them right now. */
const GRACE_MS = 5_000;
/** Unfinished jobs read from PostgreSQL per query, and at most per sweep. */
const PAGE = 2_000;
const MAX_PER_SWEEP = 50_000;
/** Redis calls in flight at once for the jobs that need a closer look. */
const PARALLEL = 20;
/** Every BullMQ state in which a job is still in Redis. */
const HELD_STATES = ["waiting", "prioritized", "delayed", "active", "waiting-children", "failed"] as const;

type Row = Awaited<ReturnType<typeof jobs.listUnfinishedJobs>>[number];

export async function reconcile(deps: ReconcileDeps): Promise<ReconcileReport> {
  const { db, queue, config, log } = deps;
  const report: ReconcileReport = { checked: 0, requeued: 0, cancelled: 0, failed: 0, uploadsDeleted: 0 };
  const now = Date.now();
  const timeout = Math.max(config.queueTimeoutMs, 5_000);

  // The ids Redis holds, in one atomic read; failed ones again (a failed job stays failed until we
  // act on it, so a second read cannot miss one). Only jobs absent or failed get a closer look.
  const held = new Set(await withTimeout(queue.getRanges([...HELD_STATES], 0, -1), timeout, "job ids"));
  const failed = new Set(await withTimeout(queue.getRanges(["failed"], 0, -1), timeout, "failed job ids"));
  const suspects: Row[] = [];
  let after: { createdAt: Date; id: string } | undefined;
  for (let read = 0; read < MAX_PER_SWEEP; ) {
    const rows = await jobs.listUnfinishedJobs(db, { createdBefore: new Date(now - GRACE_MS), limit: PAGE, after });
    for (const row of rows) if (!held.has(row.id) || failed.has(row.id)) suspects.push(row);
    report.checked += rows.length;
    read += rows.length;
    if (rows.length < PAGE) break;
    after = rows[rows.length - 1];
  }

  for (let i = 0; i < suspects.length; i += PARALLEL) {
    const results = await Promise.allSettled(suspects.slice(i, i + PARALLEL).map((row) => settle(deps, row, report, now, timeout)));
    for (const r of results) if (r.status === "rejected") log.warn("reconciliation: could not check a job", { error: errorText(r.reason) });
  }
  report.uploadsDeleted = await sweepAbandonedUploads(db, config.uploadStaleMs);
  if (report.uploadsDeleted > 0) log.warn("deleted abandoned dataset uploads", { count: report.uploadsDeleted });
  return report;
}

/** Puts right one unfinished job that Redis seems to have lost, or failed. */
async function settle(deps: ReconcileDeps, row: Row, report: ReconcileReport, now: number, timeout: number): Promise<void> {
  const { db, queue, config, log } = deps;
  const policy = { attempts: config.jobAttempts, backoffMs: config.jobBackoffMs };
  // A closer look, one job at a time: it may have moved since the snapshot.
  const state = await withTimeout(queue.getJobState(row.id), timeout, `state of job ${row.id}`);
  if (state === "unknown") {
    // A heartbeat is missed only if the worker (or its database connection) is gone.
    const alive = row.status !== "queued" && row.heartbeatAt !== null && row.heartbeatAt.getTime() > now - 3 * config.worker.heartbeatMs;
    if (alive) return;
    if (row.status === "cancelling") {
      const job = await jobs.findJob(db, row.id);
      if (job && (await jobs.finishJob(db, row.id, { status: "cancelled" }, [cancelledEvent(job.epoch)], ["cancelling"]))) report.cancelled++;
      return;
    }
    await withTimeout(enqueueTraining(queue, row, policy), timeout, `enqueue job ${row.id}`);
    report.requeued++;
    await jobs.addEvent(db, row.id, {
      level: "warn",
      type: "requeued",
      message:
        "The job was missing from the queue (Redis lost it, e.g. in a restart) and was queued again" +
        (row.status === "running" ? "; it resumes from its last checkpoint." : "."),
    });
    log.warn("re-enqueued a job Redis had lost", { jobId: row.id, status: row.status });
    return;
  }
  if (state === "failed") {
    const bull = await withTimeout(queue.getJob(row.id), timeout, `job ${row.id}`);
    if (!bull || (bull.finishedOn ?? 0) > now - GRACE_MS) return; // the worker may be recording it now
    if (bull.failedReason === STALL_LIMIT_REASON) {
      await recordStallLimit(deps, row.id);
      report.failed++;
      return;
    }
    await withTimeout(queue.remove(row.id), timeout, `remove job ${row.id}`);
    await withTimeout(enqueueTraining(queue, row, policy), timeout, `enqueue job ${row.id}`);
    report.requeued++;
    await jobs.addEvent(db, row.id, {
      level: "warn",
      type: "requeued",
      message: "The job's attempts ran out while its failure could not be recorded (the database was unavailable); it was queued again.",
    });
    log.warn("re-enqueued a job whose failure was never recorded", { jobId: row.id, failedReason: bull.failedReason });
  }
}
