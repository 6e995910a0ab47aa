// Losing a worker mid-job, against real processes: SIGKILL the worker training a job and another
// takes it over (BullMQ's stalled-job recovery) and resumes from the last checkpoint, ending with
// every epoch exactly once and the same weights as a run that never stopped; SIGTERM a worker and
// it checkpoints its epoch and hands the job back, so another resumes it without a stall timeout.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client } from "../helpers/client.js";
import { digitsCsv, w1Config } from "../helpers/data.js";
import { startStack, waitFor, type Proc, type Stack } from "../helpers/stack.js";
import { createDb, type Db } from "../../src/db/client.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let db: Db;
let digits: string;
/** The final weights of an uninterrupted 12-epoch run of `config()`. */
let reference: Buffer;

// Fast stall detection for the test: a dead worker's lock expires after 2 s and is noticed within
// a second. (Production defaults: 30 s and 15 s; see workers/main.ts.)
const FAST_STALL = { WORKER_LOCK_MS: "2000", WORKER_STALLED_INTERVAL_MS: "1000", HEARTBEAT_MS: "500" };

// A small CNN: its epochs are compute-heavy (about a tenth of a second here) while its checkpoints
// are small, so the worker's writes keep up with training and a signal sent after epoch 3 lands
// while the job is still training. (W1's dense net trains an epoch of these 800 rows in a few
// milliseconds and writes megabytes per epoch: the writer, not the trainer, would set the pace.)
const config = () =>
  w1Config(digits, {
    epochs: 12,
    seed: 11,
    model: {
      input_shape: [1, 28, 28],
      layers: [
        { type: "conv2d", filters: 8, kernel_size: 3, activation: "relu" },
        { type: "maxpool2d", pool_size: 2 },
        { type: "conv2d", filters: 16, kernel_size: 3, activation: "relu" },
        { type: "maxpool2d", pool_size: 2 },
        { type: "flatten" },
        { type: "dense", units: 10 },
      ],
    },
  });

beforeAll(async () => {
  stack = await startStack("loss", { workers: 2, env: FAST_STALL });
  c = client(stack);
  db = createDb(stack.db.url);
  digits = (await c.uploadCsv(digitsCsv(1000, 5), "name=digits&target=digit&task=classification")).id;
}, 120_000);

afterAll(async () => {
  await db?.$disconnect();
  await stack?.close();
});

/** The worker process that holds the job now (jobs.worker_id is host:pid). */
async function holder(jobId: string): Promise<Proc | undefined> {
  const row = await db.job.findUnique({ where: { id: jobId }, select: { workerId: true } });
  const pid = Number(row?.workerId?.split(":").pop());
  return stack.workers.find((w) => w.child.pid === pid);
}

async function lastWeights(jobId: string): Promise<Buffer> {
  const res = await fetch(`${stack.baseUrl}/v1/jobs/${jobId}/weights?checkpoint=last`, { headers: stack.auth });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

async function expectEveryEpochOnce(jobId: string, epochs: number) {
  const metrics = await c.metrics(jobId);
  expect(metrics.map((m: any) => m.epoch)).toEqual(Array.from({ length: epochs }, (_, i) => i + 1));
  const events = await db.jobEvent.findMany({ where: { jobId }, orderBy: { id: "asc" } });
  // Per-epoch events are written once even when epochs were trained twice.
  const perEpoch = events.filter((e) => e.type === "new_best" || e.type === "overfitting_suspected").map((e) => `${e.type}:${e.epoch}`);
  expect(new Set(perEpoch).size).toBe(perEpoch.length);
  return { metrics, events };
}

describe("a worker is lost mid-job", () => {
  it("SIGKILL: another worker takes the job over and resumes it from the last checkpoint, ending with the same weights", async () => {
    const job = await c.submit(config());
    await c.waitForEpoch(job.id, 3);
    const victim = await holder(job.id);
    expect(victim, "the job's worker").toBeDefined();
    const t0 = performance.now();
    const exited = new Promise<void>((resolve) => {
      if (victim!.child.exitCode !== null || victim!.child.signalCode !== null) resolve();
      else victim!.child.once("exit", () => resolve());
    });
    victim!.child.kill("SIGKILL");
    // Read once the worker is gone: read before the kill, it could still finish an epoch (about a
    // tenth of a second) between the read and the signal.
    await exited;
    const epochAtKill = (await c.getJob(job.id)).epoch;

    let survivor: Proc | undefined;
    await waitFor(async () => {
      survivor = await holder(job.id);
      return survivor !== undefined && survivor !== victim;
    }, 60_000, () => stack.workers.map((w) => w.output()).join("\n"), 20);
    const takeover = performance.now() - t0;
    console.log(`takeover after SIGKILL: another worker resumed the job ${(takeover / 1000).toFixed(2)} s after the kill (lock 2 s, stalled check every 1 s); killed at epoch ${epochAtKill}`);
    expect(takeover).toBeLessThan(30_000);

    const done = await c.waitForJob(job.id, 120_000);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    expect(done.epoch).toBe(12);
    const { metrics, events } = await expectEveryEpochOnce(job.id, 12);
    // The resume state leaves the weights to the row's `weights` column: with SGD and momentum it
    // holds one velocity per parameter, about the weights' size, not twice it.
    const [sizes] = await db.$queryRaw<{ state: number; weights: number }[]>`
      SELECT octet_length(state) AS state, octet_length(weights) AS weights
        FROM checkpoints WHERE job_id = ${job.id}::uuid AND kind = 'last' AND state IS NOT NULL`;
    expect(sizes.state).toBeLessThan(sizes.weights * 1.25);
    const resumed = events.filter((e) => e.type === "resumed");
    expect(resumed).toHaveLength(1);
    expect(resumed[0].message).toMatch(/^Resumed from epoch \d+ after a worker was lost\.$/);
    expect(resumed[0].epoch).toBeGreaterThanOrEqual(1);
    expect(resumed[0].epoch).toBeLessThanOrEqual(epochAtKill);

    // The same job, uninterrupted, on the surviving worker.
    const straight = await c.submit(config());
    expect((await c.waitForJob(straight.id, 120_000)).status).toBe("succeeded");
    const straightMetrics = await c.metrics(straight.id);
    reference = await lastWeights(straight.id);
    expect((await lastWeights(job.id)).equals(reference), "final weights of the resumed run").toBe(true);
    expect(metrics.map((m: any) => [m.train_loss, m.val_loss, m.lr])).toEqual(straightMetrics.map((m: any) => [m.train_loss, m.val_loss, m.lr]));
  });

  it("SIGTERM: the worker checkpoints its epoch and hands the job back; another resumes it without waiting for a stall timeout", async () => {
    // Workers with a long lock: a job that was not handed back would wait 60 s to be taken over.
    await Promise.all(stack.workers.map((w) => w.stop()));
    const slowStall = { WORKER_LOCK_MS: "60000", WORKER_STALLED_INTERVAL_MS: "30000" };
    stack.startWorker(slowStall);
    stack.startWorker(slowStall);

    const job = await c.submit(config());
    await c.waitForEpoch(job.id, 3);
    const leaving = await holder(job.id);
    expect(leaving).toBeDefined();
    const t0 = performance.now();
    const exited = leaving!.stop("SIGTERM");
    let next: Proc | undefined;
    await waitFor(async () => {
      next = await holder(job.id);
      return next !== undefined && next !== leaving;
    }, 30_000, () => stack.workers.map((w) => w.output()).join("\n"), 20);
    const handover = performance.now() - t0;
    expect(await exited).toBe(0);
    console.log(`hand-back on SIGTERM: another worker resumed the job ${(handover / 1000).toFixed(2)} s after the signal (its lock would have lasted 60 s)`);
    expect(handover).toBeLessThan(20_000);

    const done = await c.waitForJob(job.id, 120_000);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    const { events } = await expectEveryEpochOnce(job.id, 12);
    const types = events.map((e) => e.type);
    expect(types).toContain("handed_back");
    const resumed = events.filter((e) => e.type === "resumed");
    expect(resumed).toHaveLength(1);
    expect(resumed[0].message).toMatch(/^Resumed from epoch \d+\.$/);
    expect((await lastWeights(job.id)).equals(reference), "final weights after a hand-back").toBe(true);
  });

  it("a job that loses its worker more often than WORKER_MAX_STALLED_COUNT fails, and PostgreSQL says why", async () => {
    await Promise.all(stack.workers.map((w) => w.stop()));
    const noStalls = { ...FAST_STALL, WORKER_MAX_STALLED_COUNT: "0" };
    stack.startWorker(noStalls);
    stack.startWorker(noStalls);
    const job = await c.submit(config());
    await c.waitForEpoch(job.id, 2);
    (await holder(job.id))!.child.kill("SIGKILL");
    const done = await c.waitForJob(job.id, 60_000);
    expect(done.status).toBe("failed");
    expect(done.error.code).toBe("internal");
    expect(done.error.message).toMatch(/lost once/);
    expect(done.epoch).toBeGreaterThanOrEqual(2);
  });

  it("a worker that finds its job claimed by another stops training it; a job nobody holds is put back by the sweep", async () => {
    await Promise.all(stack.workers.map((w) => w.stop()));
    const worker = stack.startWorker({ ...FAST_STALL, RECONCILE_INTERVAL_MS: "500" });
    const job = await c.submit(config());
    await c.waitForEpoch(job.id, 2);
    // As if another worker had claimed it while this one was presumed dead.
    await db.job.update({ where: { id: job.id }, data: { workerId: "elsewhere:1" } });
    await waitFor(async () => worker.output().includes("another worker has taken this job over"), 10_000, () => worker.output());
    // The claimed-elsewhere job has no live worker (no heartbeat) and is not in Redis any more:
    // the reconciliation re-enqueues it and it resumes from its checkpoint.
    const done = await c.waitForJob(job.id, 60_000);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    const { events } = await expectEveryEpochOnce(job.id, 12);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["requeued", "resumed"]));
    expect((await lastWeights(job.id)).equals(reference), "final weights after the takeover").toBe(true);
  });
});
