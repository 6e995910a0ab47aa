// Cancelling jobs through the API, against the real API and worker processes: a running job stops
// between batches and ends `cancelled` (the latency from request to `cancelled` is printed), a
// queued one is taken out of the queue at once, and a finished one cannot be cancelled.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Queue } from "bullmq";
import { client } from "../helpers/client.js";
import { digitsCsv, regressionCsv, w1Config } from "../helpers/data.js";
import { startStack, waitFor, type Stack } from "../helpers/stack.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let digits: string;
let small: string;

beforeAll(async () => {
  stack = await startStack("cancel");
  c = client(stack);
  digits = (await c.uploadCsv(digitsCsv(1000, 3), "name=digits&target=digit&task=classification&input_shape=1,28,28")).id;
  small = (await c.uploadCsv(regressionCsv(200, 1), "name=small&target=y")).id;
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe("POST /v1/jobs/:id/cancel", () => {
  it("stops a running W1 job between batches; it ends cancelled with its metrics and checkpoints readable", async () => {
    const job = await c.submit(w1Config(digits, { epochs: 500 }));
    await c.waitForEpoch(job.id, 2);

    const t0 = performance.now();
    const res = await c.api("POST", `/v1/jobs/${job.id}/cancel`);
    const answered = performance.now() - t0;
    expect([200, 202], JSON.stringify(res.body)).toContain(res.status);
    expect(["cancelling", "cancelled"]).toContain(res.body.status);
    expect(res.body.cancel_requested_at).not.toBeNull();
    let done: any;
    await waitFor(async () => {
      done = await c.getJob(job.id);
      return done.status === "cancelled";
    }, 30_000, () => JSON.stringify(done), 10);
    const latency = performance.now() - t0;
    console.log(`cancel latency (W1 784-256-128-10, batch 64): request answered in ${answered.toFixed(0)} ms, job cancelled ${latency.toFixed(0)} ms after the request`);
    expect(latency).toBeLessThan(10_000); // the target is < 1 s; only a generous bound is asserted

    expect(done.finished_at).not.toBeNull();
    expect(done.error).toBeNull();
    const metrics = await c.metrics(job.id);
    expect(metrics.length).toBeGreaterThanOrEqual(2);
    expect(metrics.map((m: any) => m.epoch)).toEqual(Array.from({ length: metrics.length }, (_, i) => i + 1));
    expect(done.epoch).toBe(metrics.length);
    const weights = await fetch(`${stack.baseUrl}/v1/jobs/${job.id}/weights?checkpoint=last`, { headers: stack.auth });
    expect(weights.status).toBe(200);
    // Epochs finished but not yet written when the cancel came keep their metrics, not their
    // checkpoints (so the cancel does not wait for megabytes): `last` may lag by an epoch or two.
    const checkpointEpoch = Number(weights.headers.get("x-checkpoint-epoch"));
    expect(checkpointEpoch).toBeGreaterThanOrEqual(1);
    expect(checkpointEpoch).toBeLessThanOrEqual(metrics.length);

    // Nothing more is written after the end, and a second cancel is refused.
    await new Promise((r) => setTimeout(r, 500));
    expect((await c.metrics(job.id)).length).toBe(metrics.length);
    const again = await c.api("POST", `/v1/jobs/${job.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("job_finished");
  });

  it("takes a queued job out of the queue and cancels it at once", async () => {
    // The worker is busy with a long job, so the next one waits in the queue.
    const busy = await c.submit(w1Config(digits, { epochs: 500 }));
    await c.waitForEpoch(busy.id, 1);
    const queued = await c.submit({ dataset_id: small, model: { layers: [{ type: "dense", units: 1 }] }, loss: "mse", epochs: 3 });
    expect(queued.status).toBe("queued");

    const res = await c.api("POST", `/v1/jobs/${queued.id}/cancel`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.status).toBe("cancelled");
    expect(res.body.started_at).toBeNull();
    const q = new Queue(stack.queueName, { connection: { url: stack.env.REDIS_URL } });
    try {
      expect(await q.getJobState(queued.id)).toBe("unknown");
    } finally {
      await q.close();
    }

    const stopped = await c.api("POST", `/v1/jobs/${busy.id}/cancel`);
    expect([200, 202]).toContain(stopped.status);
    expect((await c.waitForJob(busy.id, 30_000)).status).toBe("cancelled");
    // The cancelled job never ran.
    expect((await c.getJob(queued.id)).attempts).toBe(0);
    expect(await c.metrics(queued.id)).toEqual([]);
  });

  it("refuses to cancel a finished job (409) and an unknown one (404)", async () => {
    const job = await c.submit({ dataset_id: small, model: { layers: [{ type: "dense", units: 1 }] }, loss: "mse", epochs: 2 });
    expect((await c.waitForJob(job.id, 60_000)).status).toBe("succeeded");
    const res = await c.api("POST", `/v1/jobs/${job.id}/cancel`);
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: "job_finished", param: "id" });
    expect((await c.getJob(job.id)).status).toBe("succeeded");

    const unknown = await c.api("POST", "/v1/jobs/8d0f3a4e-1111-4222-8333-944455556666/cancel");
    expect(unknown.status).toBe(404);
  });
});
