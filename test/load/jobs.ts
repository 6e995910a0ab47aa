// Load test (a script, not part of `npm test`): N small jobs submitted at once to one API process
// with two worker processes, on a fresh database and queue. Prints the submission throughput and
// latency percentiles and how long the workers took to drain the queue, then checks that every job
// succeeded exactly once with all its epochs: none lost, none duplicated. Exits non-zero otherwise.
//
//   npx tsx test/load/jobs.ts [--jobs 200] [--epochs 3] [--workers 2] [--concurrency 1]
//
// (--concurrency is WORKER_CONCURRENCY, jobs each worker process trains at once.) Needs PostgreSQL
// and Redis as the tests do (DATABASE_URL, REDIS_URL).
import { parseArgs } from "node:util";
import { Queue } from "bullmq";
import { createDb } from "../../src/db/client.js";
import { regressionCsv } from "../helpers/data.js";
import { startStack, waitFor } from "../helpers/stack.js";

const { values: args } = parseArgs({
  options: {
    jobs: { type: "string", default: "200" },
    epochs: { type: "string", default: "3" },
    workers: { type: "string", default: "2" },
    concurrency: { type: "string", default: "1" },
  },
});
const JOBS = Number(args.jobs);
const EPOCHS = Number(args.epochs);
const WORKERS = Number(args.workers);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const problems: string[] = [];
const stack = await startStack("load", { workers: WORKERS, env: { WORKER_CONCURRENCY: args.concurrency! } });
const db = createDb(stack.db.url);
try {
  const upload = await fetch(`${stack.baseUrl}/v1/datasets?name=load&target=y`, { method: "POST", headers: { ...stack.auth, "content-type": "text/csv" }, body: regressionCsv(300, 1) });
  const dataset = (await upload.json()) as { id: string };
  const config = (i: number) => ({
    dataset_id: dataset.id,
    model: { layers: [{ type: "dense", units: 8, activation: "tanh" }, { type: "dense", units: 1 }] },
    loss: "mse",
    epochs: EPOCHS,
    batch_size: 32,
    seed: i,
    priority: i % 3,
  });

  // --- submission: all at once ------------------------------------------------------------------
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  const t0 = performance.now();
  const ids = await Promise.all(
    Array.from({ length: JOBS }, async (_, i) => {
      const started = performance.now();
      const res = await fetch(`${stack.baseUrl}/v1/jobs`, {
        method: "POST",
        headers: { ...stack.auth, "content-type": "application/json", "idempotency-key": `load-${i}` },
        body: JSON.stringify(config(i)),
      });
      const body = (await res.json()) as { id?: string };
      latencies.push(performance.now() - started);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status !== 201 || !body.id) problems.push(`submission ${i}: ${res.status} ${JSON.stringify(body)}`);
      return body.id ?? "";
    }),
  );
  const submitSeconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(`submitted ${JOBS} jobs concurrently in ${submitSeconds.toFixed(2)} s: ${(JOBS / submitSeconds).toFixed(0)} jobs/s`);
  console.log(
    `submission latency: p50 ${percentile(latencies, 50).toFixed(0)} ms, p90 ${percentile(latencies, 90).toFixed(0)} ms, ` +
      `p99 ${percentile(latencies, 99).toFixed(0)} ms, max ${latencies[latencies.length - 1].toFixed(0)} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
  );

  // --- processing -------------------------------------------------------------------------------
  let counts: Record<string, number> = {};
  await waitFor(
    async () => {
      const groups = await db.job.groupBy({ by: ["status"], _count: { _all: true } });
      counts = Object.fromEntries(groups.map((g) => [g.status, g._count._all]));
      return (counts.succeeded ?? 0) + (counts.failed ?? 0) + (counts.cancelled ?? 0) >= JOBS;
    },
    20 * 60_000,
    () => `statuses ${JSON.stringify(counts)}`,
    250,
  );
  const drainSeconds = (performance.now() - t0) / 1000;
  console.log(
    `all ${JOBS} jobs ended ${drainSeconds.toFixed(1)} s after the first submission: ${(JOBS / drainSeconds).toFixed(1)} jobs/s ` +
      `with ${WORKERS} workers x ${args.concurrency} (each job ${EPOCHS} epochs); statuses ${JSON.stringify(counts)}`,
  );

  // --- none lost, none duplicated ---------------------------------------------------------------
  const unique = new Set(ids);
  if (unique.size !== JOBS) problems.push(`${JOBS} submissions returned ${unique.size} distinct job ids`);
  const total = await db.job.count();
  if (total !== JOBS) problems.push(`the database holds ${total} jobs, not ${JOBS}`);
  const notSucceeded = await db.job.findMany({ where: { status: { not: "succeeded" } }, select: { id: true, status: true, errorCode: true } });
  if (notSucceeded.length > 0) problems.push(`${notSucceeded.length} jobs did not succeed: ${JSON.stringify(notSucceeded.slice(0, 5))}`);
  const perJob = await db.epochMetric.groupBy({ by: ["jobId"], _count: { _all: true }, _max: { epoch: true } });
  const wrongEpochs = perJob.filter((g) => g._count._all !== EPOCHS || g._max.epoch !== EPOCHS);
  if (perJob.length !== JOBS || wrongEpochs.length > 0) problems.push(`metrics: ${perJob.length} jobs have rows, ${wrongEpochs.length} without exactly epochs 1..${EPOCHS}`);
  const succeededEvents = await db.jobEvent.groupBy({ by: ["jobId"], where: { type: "succeeded" }, _count: { _all: true } });
  if (succeededEvents.length !== JOBS || succeededEvents.some((g) => g._count._all !== 1)) problems.push("not exactly one `succeeded` event per job");
  const redelivered = await db.job.count({ where: { attempts: { gt: 1 } } });
  console.log(`jobs delivered more than once: ${redelivered} (harmless: every write is idempotent; expected 0 without failures)`);
  const queue = new Queue(stack.queueName, { connection: { url: stack.env.REDIS_URL } });
  const left = await queue.getJobCounts("waiting", "active", "delayed", "prioritized", "failed");
  await queue.close();
  if (Object.values(left).some((n) => n > 0)) problems.push(`BullMQ still holds jobs: ${JSON.stringify(left)}`);
} catch (err) {
  problems.push(`the load test itself failed: ${err instanceof Error ? err.stack : String(err)}`);
} finally {
  await db.$disconnect();
  await stack.close();
}

if (problems.length > 0) {
  console.log(`FAIL\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`PASS: ${JOBS} jobs submitted, ${JOBS} succeeded, each with epochs 1..${EPOCHS} exactly once; none lost, none duplicated`);
process.exit(0);
