// Failures, against real processes: a job past its max_runtime_seconds fails with `timeout` and
// keeps its checkpoints; a transient failure (the database unavailable when a worker picks the
// job up) is retried with backoff and succeeds; failures no retry can fix (an invalid stored
// config, divergence) fail after one attempt, with an event saying why.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Queue } from "bullmq";
import { client } from "../helpers/client.js";
import { digitsCsv, regressionCsv, w1Config } from "../helpers/data.js";
import { allowDatabase, blockDatabase, startStack, waitFor, type Stack } from "../helpers/stack.js";
import { createDb, type Db } from "../../src/db/client.js";
import { enqueueTraining } from "../../src/queue/index.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let db: Db;
let small: string;

const ENV = { JOB_BACKOFF_MS: "500", JOB_ATTEMPTS: "6", HEARTBEAT_MS: "500" };

beforeAll(async () => {
  // No worker yet: the transient-failure test starts it with the database down.
  stack = await startStack("retries", { workers: 0, env: ENV });
  c = client(stack);
  db = createDb(stack.db.url);
  small = (await c.uploadCsv(regressionCsv(300, 3), "name=small&target=y")).id;
}, 120_000);

afterAll(async () => {
  await db?.$disconnect();
  await stack?.close();
});

const smallJob = (extra: Record<string, unknown> = {}) => ({
  dataset_id: small,
  model: { layers: [{ type: "dense", units: 8, activation: "tanh" }, { type: "dense", units: 1 }] },
  loss: "mse",
  epochs: 5,
  seed: 1,
  ...extra,
});

async function events(jobId: string) {
  return db.jobEvent.findMany({ where: { jobId }, orderBy: { id: "asc" } });
}

describe("retries", () => {
  it("retries a transient failure (the database down when the worker picks the job up) with backoff, then succeeds", async () => {
    const job = await c.submit(smallJob());
    await blockDatabase(stack.db.url);
    const worker = stack.startWorker();
    try {
      // The worker takes the job and cannot claim it: the first attempts fail.
      await waitFor(async () => worker.output().includes("job attempt failed"), 30_000, () => worker.output());
    } finally {
      await allowDatabase(stack.db.url);
    }
    const done = await c.waitForJob(job.id, 60_000);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    expect((await c.metrics(job.id)).length).toBe(5);

    const retry = (await events(job.id)).filter((e) => e.type === "retry");
    expect(retry).toHaveLength(1);
    expect(retry[0].message).toMatch(/^Attempt [2-6] of 6: the previous attempt failed \(the database was unavailable\)\.$/);
    console.log(`transient failure: ${retry[0].message}`);
  });

  it("ends a job past max_runtime_seconds as failed with code timeout, keeping its checkpoints", async () => {
    const digits = (await c.uploadCsv(digitsCsv(500, 2), "name=digits&target=digit&task=classification")).id;
    const t0 = performance.now();
    const job = await c.submit(w1Config(digits, { epochs: 10000, max_runtime_seconds: 2 }));
    const done = await c.waitForJob(job.id, 60_000);
    console.log(`max_runtime_seconds 2: failed after ${((performance.now() - t0) / 1000).toFixed(1)} s at epoch ${done.epoch}`);
    expect(done.status).toBe("failed");
    expect(done.error.code).toBe("timeout");
    expect(done.error.message).toMatch(/max_runtime_seconds \(2 s\)/);
    expect(done.epoch).toBeGreaterThan(0);
    const res = await fetch(`${stack.baseUrl}/v1/jobs/${job.id}/weights?checkpoint=last`, { headers: stack.auth });
    expect(res.status).toBe(200);
    expect((await events(job.id)).some((e) => e.type === "failed" && /max_runtime_seconds/.test(e.message))).toBe(true);
    // Ended by the time limit, not retried.
    expect(done.attempts).toBe(1);
  });

  it("does not retry a job whose stored config is invalid: one attempt, and an event says why", async () => {
    // A row the API would never write (e.g. left by an older version): inserted directly.
    const row = await db.job.create({ data: { tenant: stack.tenant, config: { dataset_id: small, loss: "mse" }, datasetId: small, validationDatasetId: null } });
    const q = new Queue(stack.queueName, { connection: { url: stack.env.REDIS_URL } });
    try {
      await enqueueTraining(q, row, { attempts: 6, backoffMs: 500 });
      const done = await c.waitForJob(row.id, 30_000);
      expect(done.status).toBe("failed");
      expect(done.error.code).toBe("invalid_config");
      expect(done.attempts).toBe(1);
      const bull = await q.getJob(row.id);
      expect(bull?.attemptsMade).toBe(1);
      expect(await bull?.getState()).toBe("failed");
      const failed = (await events(row.id)).filter((e) => e.type === "failed");
      expect(failed).toHaveLength(1);
      expect(failed[0].message).toMatch(/^Training failed \(invalid_config\): .*This cannot succeed on retry, so the job was not retried\.$/s);
    } finally {
      await q.close();
    }
  });

  it("does not retry a diverging job", async () => {
    const job = await c.submit(smallJob({ optimizer: { type: "sgd", lr: 1e6 }, epochs: 50 }));
    const done = await c.waitForJob(job.id, 30_000);
    expect(done.status).toBe("failed");
    expect(done.error.code).toBe("diverged");
    expect(done.attempts).toBe(1);
    expect((await events(job.id)).find((e) => e.type === "failed")?.message).toMatch(/not retried/);
  });
});
