// The trainer's features through the real API and worker (PostgreSQL, Redis, separate processes):
// a CNN counting blobs in images, as regression and as classification; early stopping; divergence.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blobsCsv } from "../../src/datasets/blobs.js";
import { client } from "../helpers/client.js";
import { regressionCsv } from "../helpers/data.js";
import { seededRandom } from "../helpers/random.js";
import { startStack, type Stack } from "../helpers/stack.js";
import { createDb } from "../../src/db/client.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let blobsRegression: string;
let blobsClasses: string;

beforeAll(async () => {
  stack = await startStack("features");
  c = client(stack);
  const csv = blobsCsv({ rows: 3000, size: 20, maxBlobs: 4, seed: 21 });
  blobsRegression = (await c.uploadCsv(csv, "name=blobs&input_shape=1,20,20&target=count")).id;
  blobsClasses = (await c.uploadCsv(csv, "name=blobs-classes&input_shape=1,20,20&target=count&task=classification")).id;
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

/** A small CNN for 1x20x20 images. */
function cnn(outputs: number) {
  return {
    layers: [
      { type: "conv2d", filters: 8, kernel_size: 3, padding: "same", activation: "relu" },
      { type: "maxpool2d", pool_size: 2 },
      { type: "conv2d", filters: 16, kernel_size: 3, padding: "same", activation: "relu" },
      { type: "maxpool2d", pool_size: 2 },
      { type: "flatten" },
      { type: "dense", units: 32, activation: "relu" },
      { type: "dense", units: outputs },
    ],
  };
}

describe("a CNN counts blobs", () => {
  it("as regression with mse: validation MAE below 0.35 blobs", async () => {
    const t0 = Date.now();
    const job = await c.submit({
      dataset_id: blobsRegression,
      validation: { split: 0.2 },
      model: cnn(1),
      loss: "mse",
      optimizer: { type: "adam", lr: 0.003 },
      lr_schedule: { type: "cosine", min_lr: 0.0001, warmup_epochs: 1 },
      epochs: 20,
      batch_size: 32,
      seed: 1,
    });
    const done = await c.waitForJob(job.id);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    const m = await c.metrics(job.id);
    const last = m[m.length - 1];
    console.log(
      `blob count regression: ${m.length} epochs in ${((Date.now() - t0) / 1000).toFixed(1)} s, ` +
        `val MAE ${last.metrics.mae.toFixed(3)}, val loss ${last.val_loss.toFixed(4)}, ${Math.round(last.samples_per_sec)} samples/s`,
    );
    expect(last.metrics.mae).toBeLessThan(0.35);
    // The schedule's rate is what the metrics report: warm-up first, then a cosine falling to min_lr.
    expect(m[1].lr).toBeLessThan(0.003);
    expect(m[m.length - 1].lr).toBeLessThan(m[2].lr);
  });

  it("as a 5-class classifier with cross_entropy: validation accuracy >= 0.85", async () => {
    const t0 = Date.now();
    const job = await c.submit({
      dataset_id: blobsClasses,
      model: cnn(5),
      loss: "cross_entropy",
      optimizer: { type: "adam", lr: 0.003 },
      epochs: 20,
      batch_size: 32,
      seed: 2,
    });
    const done = await c.waitForJob(job.id);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    const m = await c.metrics(job.id);
    const last = m[m.length - 1];
    console.log(
      `blob count classification: ${m.length} epochs in ${((Date.now() - t0) / 1000).toFixed(1)} s, ` +
        `val accuracy ${last.metrics.accuracy.toFixed(3)}, val loss ${last.val_loss.toFixed(4)}`,
    );
    expect(last.metrics.accuracy).toBeGreaterThanOrEqual(0.85);
  });
});

describe("training control", () => {
  it("early stopping ends a job whose validation loss plateaus, with the best weights restored", async () => {
    // Targets that are pure noise: nothing to learn, so validation loss stops improving at once.
    const rand = seededRandom(5);
    const lines = ["a,b,y"];
    for (let i = 0; i < 400; i++) lines.push(`${rand().toFixed(4)},${rand().toFixed(4)},${rand().toFixed(4)}`);
    const ds = await c.uploadCsv(lines.join("\n"), "name=noise");
    const job = await c.submit({
      dataset_id: ds.id,
      model: { layers: [{ type: "dense", units: 16, activation: "tanh" }, { type: "dense", units: 1 }] },
      loss: "mse",
      optimizer: { type: "sgd", lr: 0.05 },
      epochs: 300,
      early_stopping: { monitor: "val_loss", patience: 4, restore_best_weights: true },
      seed: 3,
    });
    const done = await c.waitForJob(job.id);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    expect(done.stop_reason).toBe("early_stopping");
    expect(done.epoch).toBeLessThan(300);
    const m = await c.metrics(job.id);
    const best = m.reduce((a, b) => (b.val_loss < a.val_loss ? b : a));
    expect(done.best_epoch).toBe(best.epoch);
    // No improvement in the last `patience` validations.
    expect(done.epoch - done.best_epoch).toBe(4);

    const db = createDb(stack.db.url);
    try {
      const events = await db.jobEvent.findMany({ where: { jobId: job.id, type: "early_stopping" } });
      expect(events).toHaveLength(1);
      expect(events[0].data).toEqual({ restored_epoch: best.epoch });
    } finally {
      await db.$disconnect();
    }
    const weights = await fetch(`${stack.baseUrl}/v1/jobs/${job.id}/weights`, { headers: stack.auth });
    expect(Number(weights.headers.get("x-checkpoint-epoch"))).toBe(best.epoch);
  });

  it("a learning rate of 50 fails the job with `diverged`, naming the epoch and batch", async () => {
    const ds = await c.uploadCsv(regressionCsv(300, 9), "name=diverge");
    const job = await c.submit({
      dataset_id: ds.id,
      model: { layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dense", units: 1 }] },
      loss: "mse",
      optimizer: { type: "sgd", lr: 50 },
      epochs: 20,
      seed: 4,
    });
    const done = await c.waitForJob(job.id);
    expect(done.status).toBe("failed");
    expect(done.error.code).toBe("diverged");
    expect(done.error.message).toMatch(/epoch \d+, batch \d+/);
    expect(done.error.message).toMatch(/learning rate/i);
  });

  it("refuses a config whose layers do not fit the images, naming the field", async () => {
    const res = await c.api("POST", "/v1/jobs", {
      dataset_id: blobsRegression,
      model: { layers: [{ type: "conv2d", filters: 4, kernel_size: 25 }, { type: "flatten" }, { type: "dense", units: 1 }] },
      loss: "mse",
    });
    expect(res.status).toBe(422);
    expect(res.body.error.param).toBe("model.layers.0.kernel_size");
    const shape = await c.api("POST", "/v1/jobs", { dataset_id: blobsRegression, model: { input_shape: [20, 20, 1], ...cnn(1) }, loss: "mse" });
    expect(shape.status).toBe(422);
    expect(shape.body.error.param).toBe("model.input_shape");
    expect(shape.body.error.message).toContain("[20, 20, 1]");
    expect(shape.body.error.message).toContain("[1, 20, 20]");
  });
});
