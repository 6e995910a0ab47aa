// Jobs, their per-epoch metrics, checkpoints and events. Every write a training run makes is
// idempotent by (job, epoch): BullMQ delivers at least once, a job may be resumed after its worker
// died, and a job processed twice must end with one metrics row (and one of each per-epoch event)
// per epoch. Status changes are compare-and-set, so two processes racing (a cancel arriving while a
// worker picks the job up, two workers after a Redis restart) cannot undo each other.
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
export const UNFINISHED_STATUSES: readonly JobStatus[] = ["queued", "running", "cancelling"];

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export interface EventWrite {
  level?: EventLevel;
  type: string;
  message: string;
  epoch?: number;
  data?: object;
  /** Events with the same key are written once per job (e.g. `new_best:7`, `succeeded`). */
  key?: string;
}

export interface NewJob {
  tenant: string;
  config: object;
  /** The dataset's class labels (classification). */
  classes: string[];
  datasetId: string;
  validationDatasetId: string | null;
  priority: number;
  idempotencyKey?: string | null;
  requestHash?: string | null;
}

/** Thrown by createJob when the tenant already has `maxActive` unfinished jobs. */
export class TooManyJobs extends Error {
  constructor(readonly active: number) {
    super(`tenant has ${active} unfinished jobs`);
  }
}

/**
 * Stores a new job. With `maxActive` > 0, the tenant's queued, running and cancelling jobs are
 * counted first, under a per-tenant lock held to the end of the transaction, so concurrent
 * submissions cannot overshoot the cap (TooManyJobs). With an Idempotency-Key, returns null when
 * another job of the tenant already holds that key (the unique index settles concurrent
 * submissions with the same key).
 */
export async function createJob(db: Db, data: NewJob, maxActive = 0): Promise<JobRow | null> {
  try {
    return await db.$transaction(async (tx) => {
      if (maxActive > 0) {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${"jobs:" + data.tenant}))`;
        const active = await tx.job.count({ where: { tenant: data.tenant, status: { in: [...UNFINISHED_STATUSES] } } });
        if (active >= maxActive) throw new TooManyJobs(active);
      }
      return tx.job.create({ data });
    });
  } catch (err) {
    if (data.idempotencyKey != null && (err as { code?: string }).code === "P2002") return null;
    throw err;
  }
}

/** A job by id; with `tenant`, only if it belongs to that tenant (the API always passes it). */
export async function findJob(db: Db, id: string, tenant?: string): Promise<JobRow | null> {
  return isId(id) ? db.job.findFirst({ where: { id, ...(tenant !== undefined ? { tenant } : {}) } }) : null;
}

export async function findJobByIdempotencyKey(db: Db, tenant: string, key: string): Promise<JobRow | null> {
  return db.job.findUnique({ where: { tenant_idempotencyKey: { tenant, idempotencyKey: key } } });
}

export async function listJobs(db: Db, tenant: string, opts: { after?: string; limit: number; status?: JobStatus }): Promise<JobRow[]> {
  const cursor = isId(opts.after)
    ? await db.job.findFirst({ where: { id: opts.after, tenant }, select: { createdAt: true, id: true } })
    : null;
  return db.job.findMany({
    where: {
      tenant,
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

export type Claim =
  | { kind: "missing" }
  | { kind: "finished"; job: JobRow }
  /** A cancel was requested before any worker got the job: end it, don't train. */
  | { kind: "cancel"; job: JobRow }
  /** The job is now `running` on this worker. `previousStatus` is `running` when the worker that
   *  had it before vanished without handing it back. */
  | { kind: "claimed"; job: JobRow; previousStatus: JobStatus };

/**
 * A worker takes a delivered job: `queued` or `running` (a lost worker's) becomes `running` here,
 * counting the delivery. Compare-and-set on (status, attempts), so a cancel that lands at the same
 * moment is never overwritten: it is either seen here or by the worker's cancel polling.
 */
export async function claimJob(db: Db, id: string, workerId: string): Promise<Claim> {
  for (;;) {
    const row = isId(id) ? await db.job.findUnique({ where: { id } }) : null;
    if (!row) return { kind: "missing" };
    if (isTerminal(row.status)) return { kind: "finished", job: row };
    if (row.status === "cancelling") return { kind: "cancel", job: row };
    const now = new Date();
    const data = { status: "running" as const, attempts: row.attempts + 1, workerId, heartbeatAt: now, startedAt: row.startedAt ?? now };
    const res = await db.job.updateMany({ where: { id, status: row.status, attempts: row.attempts }, data });
    if (res.count === 1) return { kind: "claimed", job: { ...row, ...data }, previousStatus: row.status };
  }
}

/**
 * A worker gives a job back to the queue (graceful shutdown, or a failed attempt that will be
 * retried): `running` becomes `queued`. A job being cancelled stays `cancelling`.
 */
export async function releaseJob(db: Db, id: string, event?: EventWrite): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const res = await tx.job.updateMany({ where: { id, status: "running" }, data: { status: "queued", workerId: null, heartbeatAt: null } });
    if (event && res.count === 1) await insertEvents(tx, id, [event]);
    return res.count === 1;
  });
}

/**
 * Records a cancel request: `queued` or `running` becomes `cancelling` (the first request's time
 * is kept). Returns the row afterwards, or null when the job does not exist.
 */
export async function requestCancel(db: Db, id: string): Promise<JobRow | null> {
  if (!isId(id)) return null;
  // One statement: a job already `cancelling` keeps its first request time.
  await db.job.updateMany({ where: { id, status: { in: ["queued", "running"] } }, data: { status: "cancelling", cancelRequestedAt: new Date() } });
  return db.job.findUnique({ where: { id } });
}

export interface Outcome {
  status: "succeeded" | "failed" | "cancelled";
  stopReason?: string;
  errorCode?: string;
  errorMessage?: string;
}

/**
 * Ends a job, with its closing events, unless it has already ended (a duplicate delivery, or the
 * API and a worker both finishing a cancel). `from` narrows which statuses may end this way.
 * Returns true when this call ended it.
 */
export async function finishJob(
  db: Db,
  id: string,
  outcome: Outcome,
  events: EventWrite[] = [],
  from: readonly JobStatus[] = UNFINISHED_STATUSES,
): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const res = await tx.job.updateMany({
      where: { id, status: { in: [...from] } },
      data: {
        status: outcome.status,
        stopReason: outcome.stopReason ?? null,
        errorCode: outcome.errorCode ?? null,
        errorMessage: outcome.errorMessage ?? null,
        finishedAt: new Date(),
        heartbeatAt: null,
      },
    });
    if (res.count === 1) await insertEvents(tx, id, events);
    return res.count === 1;
  });
}

/** The worker's liveness for the jobs it trains. */
export async function heartbeat(db: Db, ids: string[], workerId: string): Promise<void> {
  if (ids.length === 0) return;
  await db.job.updateMany({ where: { id: { in: ids }, status: { in: ["running", "cancelling"] }, workerId }, data: { heartbeatAt: new Date() } });
}

/** What a worker polls for the jobs it trains: a cancel request, and who holds each job now. */
export async function watchState(db: Db, ids: string[]): Promise<{ id: string; cancelRequested: boolean; workerId: string | null }[]> {
  if (ids.length === 0) return [];
  const rows = await db.job.findMany({ where: { id: { in: ids } }, select: { id: true, cancelRequestedAt: true, workerId: true } });
  return rows.map((r) => ({ id: r.id, cancelRequested: r.cancelRequestedAt !== null, workerId: r.workerId }));
}

/**
 * Unfinished jobs created before `createdBefore`, oldest first, a page at a time (`after`: the
 * last row of the previous page): what the reconciliation checks.
 */
export async function listUnfinishedJobs(
  db: Db,
  opts: { createdBefore: Date; limit: number; after?: { createdAt: Date; id: string } },
): Promise<Pick<JobRow, "id" | "status" | "priority" | "heartbeatAt" | "createdAt">[]> {
  const after = opts.after;
  return db.job.findMany({
    where: {
      status: { in: [...UNFINISHED_STATUSES] },
      createdAt: { lt: opts.createdBefore },
      ...(after ? { OR: [{ createdAt: { gt: after.createdAt } }, { createdAt: after.createdAt, id: { gt: after.id } }] } : {}),
    },
    select: { id: true, status: true, priority: true, heartbeatAt: true, createdAt: true },
    orderBy: [{ createdAt: "asc" }, { id: "asc" }],
    take: opts.limit,
  });
}

export interface EpochMetricWrite {
  epoch: number;
  trainLoss: number;
  valLoss: number | null;
  lr: number;
  metrics: Record<string, number>;
  durationMs: number;
  samplesPerSec: number;
}

/**
 * Finished epochs to store at once: every epoch's metrics, but only the newest checkpoints (only
 * `last` and `best` are ever kept, so when the writer falls behind the trainer, intermediate
 * weights are not worth writing).
 */
export interface EpochsWrite {
  /** One per epoch, ascending. */
  metrics: EpochMetricWrite[];
  /** The newest epoch's weights (safetensors) and trainer snapshot (what a resume starts from);
   *  null to store metrics only (a job being cancelled does not wait for checkpoint bytes). */
  last: { epoch: number; valLoss: number | null; weights: Uint8Array; state: Uint8Array } | null;
  /** The newest epoch that improved, if any did and `last` is given; `weights` null when it is
   *  `last.epoch`. */
  best: { epoch: number; valLoss: number | null; trackedLoss: number; weights: Uint8Array | null } | null;
  /** The epochs' events (new best, overfitting); keyed so a replay writes them once. */
  events: EventWrite[];
}

/**
 * Stores finished epochs in one transaction: their metrics rows, the job's progress, the `last`
 * checkpoint (with the state to resume from), the `best` one when it improved, and the events.
 * Replaying the same epochs leaves the same rows. Checkpoint bytes go through raw SQL: Prisma's
 * model API is several times slower with megabytes of Bytes, and `best`, when it is the same
 * epoch as `last`, is copied inside the database rather than sent twice.
 */
export async function recordEpochs(db: Db, jobId: string, w: EpochsWrite): Promise<void> {
  await db.$transaction(async (tx) => {
    for (const m of w.metrics) {
      const metric = { trainLoss: m.trainLoss, valLoss: m.valLoss, lr: m.lr, metrics: m.metrics, durationMs: m.durationMs, samplesPerSec: m.samplesPerSec };
      await tx.epochMetric.upsert({ where: { jobId_epoch: { jobId, epoch: m.epoch } }, create: { jobId, epoch: m.epoch, ...metric }, update: metric });
    }
    const newestEpoch = w.metrics[w.metrics.length - 1].epoch;
    if (!w.last) {
      await tx.job.update({ where: { id: jobId }, data: { epoch: newestEpoch } });
      await insertEvents(tx, jobId, w.events);
      return;
    }
    const weights = toBytes(w.last.weights);
    const state = toBytes(w.last.state);
    await tx.$executeRaw`DELETE FROM checkpoints WHERE job_id = ${jobId}::uuid AND kind = 'last' AND epoch <> ${w.last.epoch}`;
    await tx.$executeRaw`
      INSERT INTO checkpoints (id, job_id, epoch, kind, val_loss, weights, state, bytes)
      VALUES (gen_random_uuid(), ${jobId}::uuid, ${w.last.epoch}, 'last', ${w.last.valLoss}, ${weights}, ${state}, ${weights.byteLength})
      ON CONFLICT (job_id, epoch, kind) DO UPDATE
        SET val_loss = EXCLUDED.val_loss, weights = EXCLUDED.weights, state = EXCLUDED.state, bytes = EXCLUDED.bytes`;
    if (w.best) {
      const b = w.best;
      await tx.$executeRaw`DELETE FROM checkpoints WHERE job_id = ${jobId}::uuid AND kind = 'best' AND epoch <> ${b.epoch}`;
      if (b.weights === null) {
        await tx.$executeRaw`
          INSERT INTO checkpoints (id, job_id, epoch, kind, val_loss, weights, state, bytes)
          SELECT gen_random_uuid(), job_id, epoch, 'best', val_loss, weights, NULL, bytes
            FROM checkpoints WHERE job_id = ${jobId}::uuid AND epoch = ${b.epoch} AND kind = 'last'
          ON CONFLICT (job_id, epoch, kind) DO UPDATE
            SET val_loss = EXCLUDED.val_loss, weights = EXCLUDED.weights, bytes = EXCLUDED.bytes`;
      } else {
        const bestWeights = toBytes(b.weights);
        await tx.$executeRaw`
          INSERT INTO checkpoints (id, job_id, epoch, kind, val_loss, weights, state, bytes)
          VALUES (gen_random_uuid(), ${jobId}::uuid, ${b.epoch}, 'best', ${b.valLoss}, ${bestWeights}, NULL, ${bestWeights.byteLength})
          ON CONFLICT (job_id, epoch, kind) DO UPDATE
            SET val_loss = EXCLUDED.val_loss, weights = EXCLUDED.weights, bytes = EXCLUDED.bytes`;
      }
    }
    await tx.job.update({
      where: { id: jobId },
      data: { epoch: newestEpoch, ...(w.best ? { bestEpoch: w.best.epoch, bestValLoss: w.best.trackedLoss } : {}) },
    });
    await insertEvents(tx, jobId, w.events);
  }, { timeout: 60_000 });
}

/** The checkpoint a resumed run continues from: the `last` one, with its state. */
export async function findResumeCheckpoint(db: Db, jobId: string): Promise<{ epoch: number; state: Uint8Array } | null> {
  const row = await db.checkpoint.findFirst({
    where: { jobId, kind: "last", state: { not: null } },
    orderBy: { epoch: "desc" },
    select: { epoch: true, state: true },
  });
  return row && row.state ? { epoch: row.epoch, state: row.state } : null;
}

export async function addEvent(db: Db, jobId: string, e: EventWrite): Promise<void> {
  await insertEvents(db, jobId, [e]);
}

/** Inserts events, skipping any whose key the job already has. */
async function insertEvents(db: Pick<Db, "jobEvent">, jobId: string, events: EventWrite[]): Promise<void> {
  if (events.length === 0) return;
  await db.jobEvent.createMany({
    data: events.map((e) => ({
      jobId,
      level: e.level ?? "info",
      type: e.type,
      message: e.message,
      epoch: e.epoch,
      data: e.data,
      key: e.key,
    })),
    skipDuplicates: true,
  });
}

export async function listMetrics(db: Db, jobId: string, afterEpoch = 0): Promise<EpochMetricRow[]> {
  return db.epochMetric.findMany({ where: { jobId, epoch: { gt: afterEpoch } }, orderBy: { epoch: "asc" } });
}

export async function listEvents(db: Db, jobId: string): Promise<JobEventRow[]> {
  return db.jobEvent.findMany({ where: { jobId }, orderBy: { id: "asc" } });
}

export async function findCheckpoint(db: Db, jobId: string, which: "best" | "last" | number): Promise<Omit<CheckpointRow, "state"> | null> {
  // The resume state is for workers; a download never needs it.
  if (typeof which === "number") {
    return db.checkpoint.findFirst({ where: { jobId, epoch: which }, orderBy: { createdAt: "desc" }, omit: { state: true } });
  }
  return db.checkpoint.findFirst({ where: { jobId, kind: which }, orderBy: { epoch: "desc" }, omit: { state: true } });
}

// Prisma's Bytes fields want a Uint8Array backed by a plain ArrayBuffer.
function toBytes(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return u.buffer instanceof ArrayBuffer ? (u as Uint8Array<ArrayBuffer>) : new Uint8Array(u);
}
