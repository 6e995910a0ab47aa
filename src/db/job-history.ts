// A job's history, read a page at a time: its per-epoch metrics (in epoch order, optionally
// thinned for plotting) and its events (in id order). What the metrics page, the live stream and
// the events list read.
import type { Db } from "./client.js";
import type { EpochMetricRow, EventLevel, JobEventRow } from "./jobs.js";

/** The largest value an `Int` column holds; cursors beyond it match nothing. */
export const MAX_INT = 2_147_483_647;

/**
 * Up to `limit` metrics rows with epoch > `afterEpoch`, ascending. With `every` > 1, only every
 * `every`-th epoch (epoch % every = 0), plus always the job's newest stored epoch and
 * `keepEpoch` (the best one).
 */
export async function listMetricsPage(
  db: Db,
  jobId: string,
  opts: { afterEpoch: number; limit: number; every?: number; keepEpoch?: number | null },
): Promise<EpochMetricRow[]> {
  const after = Math.min(opts.afterEpoch, MAX_INT);
  const every = opts.every ?? 1;
  if (every <= 1) {
    return db.epochMetric.findMany({ where: { jobId, epoch: { gt: after } }, orderBy: { epoch: "asc" }, take: opts.limit });
  }
  // Prisma's filters have no modulo: pick the epochs in SQL, then read their rows.
  const keep = opts.keepEpoch ?? -1;
  const picked = await db.$queryRaw<{ epoch: number }[]>`
    SELECT epoch FROM epoch_metrics
     WHERE job_id = ${jobId}::uuid AND epoch > ${after}
       AND (epoch % ${every} = 0
            OR epoch = ${keep}
            OR epoch = (SELECT max(epoch) FROM epoch_metrics WHERE job_id = ${jobId}::uuid))
     ORDER BY epoch
     LIMIT ${opts.limit}`;
  if (picked.length === 0) return [];
  return db.epochMetric.findMany({
    where: { jobId, epoch: { in: picked.map((r) => Number(r.epoch)) } },
    orderBy: { epoch: "asc" },
  });
}

/** Up to `limit` events with id > `after`, oldest first, optionally only of the given levels. */
export async function listEventsPage(
  db: Db,
  jobId: string,
  opts: { after: bigint | null; limit: number; levels?: readonly EventLevel[] },
): Promise<JobEventRow[]> {
  return db.jobEvent.findMany({
    where: {
      jobId,
      ...(opts.after !== null ? { id: { gt: opts.after } } : {}),
      ...(opts.levels && opts.levels.length > 0 ? { level: { in: [...opts.levels] } } : {}),
    },
    orderBy: { id: "asc" },
    take: opts.limit,
  });
}
