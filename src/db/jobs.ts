// Jobs, their per-epoch metrics, checkpoints and events. Every write a training run makes is
// idempotent by (job, epoch): BullMQ delivers at least once, a job may be resumed after its worker
// died, and a job processed twice must end with one metrics row (and one of each per-epoch event)
// per epoch. Status changes are compare-and-set, so two processes racing (a cancel arriving while a
// worker picks the job up, two workers after a Redis restart) cannot undo each other.
import { isId, type Db } from "./client.js";
import { Prisma } from "../generated/prisma/client.js";
import { bestEpochs, inLastWindow, isPeriodic, type CheckpointKind } from "../trainer/retention.js";
import type { CheckpointRetention } from "../trainer/schema/checkpoints.js";
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
 * Finished epochs to store at once: every epoch's metrics, but only the checkpoints the job's
 * retention keeps (when the writer falls behind the trainer, other intermediate weights are not
 * worth writing).
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
  /** The job's checkpoint retention (`checkpoints` in its config); default: 1 last, 1 best, no periodic. */
  retention?: CheckpointRetention;
  /** Other epochs of the batch whose weights the retention may keep (older ones among the newest
   *  keep_last, best candidates, periodic epochs); used only with `last`. */
  kept?: { epoch: number; valLoss: number | null; weights: Uint8Array }[];
  /** The batch's epochs that validated, with the loss `best` ranks them by; default: `best` alone. */
  ranked?: { epoch: number; tracked: number }[];
}

const DEFAULT_RETENTION: CheckpointRetention = { keep_last: 1, keep_best: 1, every_epochs: 0 };

/**
 * Stores finished epochs in one transaction: their metrics rows, the job's progress, the
 * checkpoints the retention keeps (see writeCheckpoints) and the events. Replaying the same epochs
 * leaves the same rows. Checkpoint bytes go through raw SQL: Prisma's model API is several times
 * slower with megabytes of Bytes, and an epoch kept for several reasons (`best` and `last`, say)
 * has its bytes sent once and copied inside the database for the other rows.
 */
export async function recordEpochs(db: Db, jobId: string, w: EpochsWrite): Promise<void> {
  await db.$transaction(async (tx) => {
    await upsertMetrics(tx, jobId, w.metrics);
    const newestEpoch = w.metrics[w.metrics.length - 1].epoch;
    if (!w.last) {
      await tx.job.update({ where: { id: jobId }, data: { epoch: newestEpoch } });
      await insertEvents(tx, jobId, w.events);
      return;
    }
    await writeCheckpoints(tx, jobId, w, w.last);
    await tx.job.update({
      where: { id: jobId },
      data: { epoch: newestEpoch, ...(w.best ? { bestEpoch: w.best.epoch, bestValLoss: w.best.trackedLoss } : {}) },
    });
    await insertEvents(tx, jobId, w.events);
  }, { timeout: 60_000 });
}

type Tx = Parameters<Parameters<Db["$transaction"]>[0]>[0];

/** Metrics rows written per statement (each row is 8 parameters; PostgreSQL allows 65,535). */
const METRIC_ROWS_PER_STATEMENT = 2000;

/**
 * Upserts the epochs' metrics rows, a few thousand per statement: when the writer has fallen behind a
 * fast trainer (tiny epochs), one write may carry thousands of epochs, and a round trip per row
 * would keep it behind for good.
 */
async function upsertMetrics(tx: Tx, jobId: string, metrics: readonly EpochMetricWrite[]): Promise<void> {
  for (let i = 0; i < metrics.length; i += METRIC_ROWS_PER_STATEMENT) {
    const rows = metrics.slice(i, i + METRIC_ROWS_PER_STATEMENT);
    const values = Prisma.join(
      rows.map(
        (m) => Prisma.sql`(${jobId}::uuid, ${m.epoch}, ${m.trainLoss}, ${m.valLoss}, ${m.lr}, ${JSON.stringify(m.metrics)}::jsonb, ${m.durationMs}, ${m.samplesPerSec})`,
      ),
    );
    await tx.$executeRaw`
      INSERT INTO epoch_metrics (job_id, epoch, train_loss, val_loss, lr, metrics, duration_ms, samples_per_sec)
      VALUES ${values}
      ON CONFLICT (job_id, epoch) DO UPDATE
        SET train_loss = EXCLUDED.train_loss, val_loss = EXCLUDED.val_loss, lr = EXCLUDED.lr, metrics = EXCLUDED.metrics,
            duration_ms = EXCLUDED.duration_ms, samples_per_sec = EXCLUDED.samples_per_sec`;
  }
}

/**
 * The checkpoint rows of one write, one row per (epoch, kind), as the retention says:
 * - `last`: the newest epoch (with the resume state; older `last` rows lose theirs) and the other
 *   epochs of the `keep_last` newest that the batch brought weights for; older ones are deleted;
 * - `best`: the `keep_best` lowest tracked losses among the rows already kept and the batch's
 *   validated epochs; rows that drop out are deleted;
 * - `periodic`: every_epochs-th epochs, never deleted.
 * Rows past the newest epoch (left by an earlier run of the same epochs) are dropped, so a replay
 * ends with exactly the rows a single run would have.
 */
async function writeCheckpoints(tx: Tx, jobId: string, w: EpochsWrite, last: NonNullable<EpochsWrite["last"]>): Promise<void> {
  const r = w.retention ?? DEFAULT_RETENTION;
  const newest = last.epoch;
  const bytes = new Map<number, { valLoss: number | null; weights: Uint8Array }>([[newest, { valLoss: last.valLoss, weights: last.weights }]]);
  if (w.best?.weights) bytes.set(w.best.epoch, { valLoss: w.best.valLoss, weights: w.best.weights });
  for (const k of w.kept ?? []) if (!bytes.has(k.epoch)) bytes.set(k.epoch, { valLoss: k.valLoss, weights: k.weights });
  // Where an epoch's bytes already are in this transaction: its other rows copy them.
  const storedAs = new Map<number, CheckpointKind>();
  const put = async (epoch: number, kind: CheckpointKind, state: Uint8Array | null = null) => {
    const from = storedAs.get(epoch);
    if (from !== undefined) {
      await tx.$executeRaw`
        INSERT INTO checkpoints (id, job_id, epoch, kind, val_loss, weights, state, bytes)
        SELECT gen_random_uuid(), job_id, epoch, ${kind}, val_loss, weights, NULL, bytes
          FROM checkpoints WHERE job_id = ${jobId}::uuid AND epoch = ${epoch} AND kind = ${from}
        ON CONFLICT (job_id, epoch, kind) DO UPDATE
          SET val_loss = EXCLUDED.val_loss, weights = EXCLUDED.weights, state = NULL, bytes = EXCLUDED.bytes`;
      return;
    }
    const b = bytes.get(epoch)!;
    const weights = toBytes(b.weights);
    const stateBytes = state ? toBytes(state) : null;
    await tx.$executeRaw`
      INSERT INTO checkpoints (id, job_id, epoch, kind, val_loss, weights, state, bytes)
      VALUES (gen_random_uuid(), ${jobId}::uuid, ${epoch}, ${kind}, ${b.valLoss}, ${weights}, ${stateBytes}, ${weights.byteLength})
      ON CONFLICT (job_id, epoch, kind) DO UPDATE
        SET val_loss = EXCLUDED.val_loss, weights = EXCLUDED.weights, state = EXCLUDED.state, bytes = EXCLUDED.bytes`;
    storedAs.set(epoch, kind);
  };

  await tx.$executeRaw`
    DELETE FROM checkpoints WHERE job_id = ${jobId}::uuid AND kind = 'last' AND (epoch > ${newest} OR epoch <= ${newest - r.keep_last})`;
  if (r.keep_last > 1) {
    // Only the newest `last` carries the resume state.
    await tx.$executeRaw`
      UPDATE checkpoints SET state = NULL WHERE job_id = ${jobId}::uuid AND kind = 'last' AND epoch <> ${newest} AND state IS NOT NULL`;
  }
  await put(newest, "last", last.state);
  const epochs = [...bytes.keys()].sort((a, b) => a - b);
  for (const e of epochs) if (e !== newest && inLastWindow(r, e, newest)) await put(e, "last");

  const existing = await tx.$queryRaw<{ epoch: number; tracked: number | null }[]>`
    SELECT c.epoch, COALESCE(m.val_loss, m.train_loss) AS tracked
      FROM checkpoints c LEFT JOIN epoch_metrics m ON m.job_id = c.job_id AND m.epoch = c.epoch
     WHERE c.job_id = ${jobId}::uuid AND c.kind = 'best'`;
  const ranked = w.ranked ?? (w.best ? [{ epoch: w.best.epoch, tracked: w.best.trackedLoss }] : []);
  const top = new Set(
    bestEpochs(
      [
        ...existing.filter((c) => c.epoch <= newest).map((c) => ({ epoch: c.epoch, tracked: c.tracked === null ? null : Number(c.tracked) })),
        ...ranked.filter((c) => bytes.has(c.epoch)),
      ],
      r.keep_best,
    ),
  );
  for (const c of existing) {
    if (!top.has(c.epoch)) await tx.$executeRaw`DELETE FROM checkpoints WHERE job_id = ${jobId}::uuid AND kind = 'best' AND epoch = ${c.epoch}`;
  }
  for (const e of epochs) if (top.has(e)) await put(e, "best");
  for (const e of epochs) if (isPeriodic(r, e)) await put(e, "periodic");
}

/** The checkpoint a resumed run continues from: the `last` one, with its state and its weights
 *  (the state leaves the weights out). */
export async function findResumeCheckpoint(
  db: Db,
  jobId: string,
): Promise<{ epoch: number; state: Uint8Array; weights: Uint8Array } | null> {
  const row = await db.checkpoint.findFirst({
    where: { jobId, kind: "last", state: { not: null } },
    orderBy: { epoch: "desc" },
    select: { epoch: true, state: true, weights: true },
  });
  return row && row.state ? { epoch: row.epoch, state: row.state, weights: row.weights } : null;
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

export async function findCheckpoint(db: Db, jobId: string, which: "best" | "last" | number): Promise<Omit<CheckpointRow, "state"> | null> {
  // The resume state is for workers; a download never needs it.
  const epoch = await checkpointEpoch(db, jobId, which);
  if (epoch === null) return null;
  return db.checkpoint.findFirst({ where: { jobId, epoch }, orderBy: { createdAt: "desc" }, omit: { state: true } });
}

/**
 * The epoch a checkpoint name refers to, if its weights are kept: `last` is the newest `last` row;
 * `best` the job's best epoch (with keep_best > 1 several `best` rows exist, the newest of which
 * need not be the lowest), or else the newest `best` row; a number, any row of that epoch.
 */
export async function checkpointEpoch(db: Db, jobId: string, which: "best" | "last" | number): Promise<number | null> {
  if (typeof which === "number") {
    const row = await db.checkpoint.findFirst({ where: { jobId, epoch: which }, select: { epoch: true } });
    return row ? row.epoch : null;
  }
  if (which === "best") {
    const job = await db.job.findUnique({ where: { id: jobId }, select: { bestEpoch: true } });
    if (job?.bestEpoch != null) {
      const row = await db.checkpoint.findFirst({ where: { jobId, kind: "best", epoch: job.bestEpoch }, select: { epoch: true } });
      if (row) return row.epoch;
    }
  }
  const row = await db.checkpoint.findFirst({ where: { jobId, kind: which }, orderBy: { epoch: "desc" }, select: { epoch: true } });
  return row ? row.epoch : null;
}

/** A job's kept checkpoints without their bytes, newest epoch first. */
export async function listCheckpoints(db: Db, jobId: string): Promise<Omit<CheckpointRow, "state" | "weights">[]> {
  return db.checkpoint.findMany({ where: { jobId }, orderBy: [{ epoch: "desc" }, { kind: "asc" }], omit: { state: true, weights: true } });
}

// Prisma's Bytes fields want a Uint8Array backed by a plain ArrayBuffer.
function toBytes(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return u.buffer instanceof ArrayBuffer ? (u as Uint8Array<ArrayBuffer>) : new Uint8Array(u);
}
