// Restarts of the infrastructure under real processes. Redis here keeps nothing on disk, so a
// restarted Redis is empty: the jobs it carried must come back from PostgreSQL. PostgreSQL going
// away while a job writes must only delay the job.
import { afterAll, describe, expect, it } from "vitest";
import { client } from "../helpers/client.js";
import { digitsCsv, regressionCsv, w1Config } from "../helpers/data.js";
import { allowDatabase, blockDatabase, startRedis, startStack, waitFor, type Stack, type TestRedis } from "../helpers/stack.js";

const stacks: Stack[] = [];
let redis: TestRedis | undefined;

afterAll(async () => {
  await Promise.all(stacks.map((s) => s.close()));
  await redis?.kill();
});

const smallJob = (datasetId: string, extra: Record<string, unknown> = {}) => ({
  dataset_id: datasetId,
  model: { layers: [{ type: "dense", units: 8, activation: "tanh" }, { type: "dense", units: 1 }] },
  loss: "mse",
  epochs: 6,
  seed: 1,
  ...extra,
});

function expectEpochs(metrics: any[], epochs: number) {
  expect(metrics.map((m) => m.epoch)).toEqual(Array.from({ length: epochs }, (_, i) => i + 1));
}

describe("Redis restarts empty", () => {
  it("while one job runs and two are queued: all three succeed; a job submitted and a cancel sent while Redis is down are not lost", async () => {
    redis = await startRedis();
    const stack = await startStack("redis", {
      env: { REDIS_URL: redis.url, RECONCILE_INTERVAL_MS: "1000", HEARTBEAT_MS: "500", QUEUE_TIMEOUT_MS: "1000" },
    });
    stacks.push(stack);
    const c = client(stack);
    const digits = (await c.uploadCsv(digitsCsv(1000, 9), "name=digits&target=digit&task=classification")).id;
    const small = (await c.uploadCsv(regressionCsv(300, 2), "name=small&target=y")).id;

    const running = await c.submit(w1Config(digits, { epochs: 30 }));
    await c.waitForEpoch(running.id, 2);
    const queued = [await c.submit(smallJob(small)), await c.submit(smallJob(small, { priority: 5 }))];
    const toCancel = await c.submit(smallJob(small, { priority: -5 }));
    expect((await c.getJob(queued[0].id)).status).toBe("queued");

    const t0 = performance.now();
    await redis.kill();
    // Accepted while Redis is down: stored in PostgreSQL; enqueued later by the reconciliation.
    const during = await c.api("POST", "/v1/jobs", smallJob(small, { seed: 2 }));
    expect(during.status, JSON.stringify(during.body)).toBe(201);
    // A cancel that cannot reach Redis is recorded (`cancelling`) and completed later.
    const cancel = await c.api("POST", `/v1/jobs/${toCancel.id}/cancel`);
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(202);
    expect(cancel.body.status).toBe("cancelling");
    await new Promise((r) => setTimeout(r, 1000));
    await redis.start();
    console.log(`Redis was down for ${((performance.now() - t0) / 1000).toFixed(1)} s and came back empty`);

    for (const job of [running, ...queued, during.body]) {
      const done = await c.waitForJob(job.id, 120_000);
      expect(done.status, JSON.stringify(done)).toBe("succeeded");
      expectEpochs(await c.metrics(job.id), job.id === running.id ? 30 : 6);
    }
    console.log(`all four jobs succeeded ${((performance.now() - t0) / 1000).toFixed(1)} s after Redis went down`);
    const cancelled = await c.waitForJob(toCancel.id, 30_000);
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.attempts).toBe(0);
    expect(stack.worker.output()).toContain("re-enqueued a job Redis had lost");
  });
});

describe("PostgreSQL becomes unavailable", () => {
  it("while a job writes its epochs: the job waits it out and succeeds with every epoch recorded once", async () => {
    const stack = await startStack("pgdown", { env: { HEARTBEAT_MS: "500" } });
    stacks.push(stack);
    const c = client(stack);
    const digits = (await c.uploadCsv(digitsCsv(1000, 4), "name=digits&target=digit&task=classification")).id;
    const job = await c.submit(w1Config(digits, { epochs: 25 }));
    await c.waitForEpoch(job.id, 2);

    await blockDatabase(stack.db.url);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    await allowDatabase(stack.db.url);
    console.log(`PostgreSQL refused connections (open ones cut) for ${((performance.now() - t0) / 1000).toFixed(1)} s while the job wrote its epochs`);

    const done = await c.waitForJob(job.id, 120_000);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    expect(done.epoch).toBe(25);
    expectEpochs(await c.metrics(job.id), 25);
    // The outage did hit the job's writes, which were retried.
    await waitFor(async () => stack.worker.output().includes("epoch write failed; retrying"), 1000, () => stack.worker.output());
  });
});
