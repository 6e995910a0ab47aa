// Jobs, their per-epoch metrics, checkpoints and events. Every write a training run makes is
// idempotent by (job, epoch): BullMQ delivers at least once, and a job processed twice must end
// with one metrics row per epoch.
import { isId, type Db } from "./client.js";
import type {
  Job as JobRow,
  EpochMetric as EpochMetricRow,
  Checkpoint as CheckpointRow,
  JobEvent as JobEventRow,
  JobStatus,
  EventLevel,
} from "../generated/prisma/client.js";

export type { JobRow, EpochMetricRow, CheckpointRow, JobEventRow, JobStatus, EventLevel };

export const TERMINAL_STATUSES: readonly JobStatus[] = ["succeeded", "failed", "cancelled"];

export async function createJob(
  db: Db,
  data: { config: object; datasetId: string; validationDatasetId: string | null; priority: number },
): Promise<JobRow> {
  return db.job.create({ data });
}

export async function findJob(db: Db, id: string): Promise<JobRow | null> {
  return isId(id) ? db.job.findUnique({ where: { id } }) : null;
}

export async function listJobs(db: Db, opts: { after?: string; limit: number; status?: JobStatus }): Promise<JobRow[]> {
  const cursor = isId(opts.after) ? await db.job.findUnique({ where: { id: opts.after }, select: { createdAt: true, id: true } }) : null;
  return db.job.findMany({
    where: {
      ...(opts.status ? { status: opts.status } : {}),
      ...(cursor
        ? { OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] }
        : {}),
    },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: opts.limit + 1,
  });
}

export async function deleteJob(db: Db, id: string): Promise<void> {
  await db.job.deleteMany({ where: { id } });
}

/**
 * Moves a job to `running` unless it has already ended. Returns null for a finished job, so a
 * duplicate delivery does nothing.
 */
export async function markRunning(db: Db, id: string): Promise<JobRow | null> {
  const res = await db.job.updateMany({
    where: { id, status: { in: ["queued", "running"] } },
    data: { status: "running", attempts: { increment: 1 } },
  });
  if (res.count === 0) return null;
  // started_at keeps the first start across retries.
  await db.job.updateMany({ where: { id, startedAt: null }, data: { startedAt: new Date() } });
  return isId(id) ? db.job.findUnique({ where: { id } }) : null;
}

export interface EpochWrite {
  epoch: number;
  trainLoss: number;
  valLoss: number | null;
  lr: number;
  metrics: Record<string, number>;
  durationMs: number;
  samplesPerSec: number;
  /** Safetensors bytes of the weights after this epoch. */
  weights: Uint8Array;
  isBest: boolean;
}

/**
 * Stores one finished epoch in one transaction: its metrics row, the job's progress, the `last`
 * checkpoint and, when it improved, the `best` one. Replaying the same epoch leaves the same rows.
 */
export async function recordEpoch(db: Db, jobId: string, e: EpochWrite): Promise<void> {
  const weights = new Uint8Array(e.weights);
  await db.$transaction(async (tx) => {
    const metric = {
      trainLoss: e.trainLoss,
      valLoss: e.valLoss,
      lr: e.lr,
      metrics: e.metrics,
      durationMs: e.durationMs,
      samplesPerSec: e.samplesPerSec,
    };
    await tx.epochMetric.upsert({
      where: { jobId_epoch: { jobId, epoch: e.epoch } },
      create: { jobId, epoch: e.epoch, ...metric },
      update: metric,
    });
    const kinds = e.isBest ? ["last", "best"] : ["last"];
    for (const kind of kinds) {
      await tx.checkpoint.deleteMany({ where: { jobId, kind, epoch: { not: e.epoch } } });
      await tx.checkpoint.upsert({
        where: { jobId_epoch_kind: { jobId, epoch: e.epoch, kind } },
        create: { jobId, epoch: e.epoch, kind, valLoss: e.valLoss, weights, bytes: weights.byteLength },
        update: { valLoss: e.valLoss, weights, bytes: weights.byteLength },
      });
    }
    await tx.job.update({
      where: { id: jobId },
      data: {
        epoch: e.epoch,
        ...(e.isBest ? { bestEpoch: e.epoch, bestValLoss: e.valLoss ?? e.trainLoss } : {}),
      },
    });
  }, { timeout: 60_000 });
}

export async function finishJob(
  db: Db,
  id: string,
  outcome: { status: "succeeded" | "failed" | "cancelled"; stopReason?: string; errorCode?: string; errorMessage?: string },
): Promise<void> {
  await db.job.update({
    where: { id },
    data: {
      status: outcome.status,
      stopReason: outcome.stopReason ?? null,
      errorCode: outcome.errorCode ?? null,
      errorMessage: outcome.errorMessage ?? null,
      finishedAt: new Date(),
    },
  });
}

export async function addEvent(
  db: Db,
  jobId: string,
  e: { level?: EventLevel; type: string; message: string; epoch?: number; data?: object },
): Promise<void> {
  await db.jobEvent.create({ data: { jobId, level: e.level ?? "info", type: e.type, message: e.message, epoch: e.epoch, data: e.data } });
}

export async function listMetrics(db: Db, jobId: string, afterEpoch = 0): Promise<EpochMetricRow[]> {
  return db.epochMetric.findMany({ where: { jobId, epoch: { gt: afterEpoch } }, orderBy: { epoch: "asc" } });
}

export async function listEvents(db: Db, jobId: string): Promise<JobEventRow[]> {
  return db.jobEvent.findMany({ where: { jobId }, orderBy: { id: "asc" } });
}

export async function findCheckpoint(db: Db, jobId: string, which: "best" | "last" | number): Promise<CheckpointRow | null> {
  if (typeof which === "number") {
    return db.checkpoint.findFirst({ where: { jobId, epoch: which }, orderBy: { createdAt: "desc" } });
  }
  return db.checkpoint.findFirst({ where: { jobId, kind: which }, orderBy: { epoch: "desc" } });
}
