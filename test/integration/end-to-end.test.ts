// The whole path against real processes, PostgreSQL and Redis: upload CSVs, submit jobs, poll
// until they succeed, read the metrics, download the weights and check them independently.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BLOB_CLASSES, blobsCsv, regressionCsv } from "../helpers/data.js";
import { startStack, waitFor, type Stack } from "../helpers/stack.js";
import { dense, readSafetensors } from "../helpers/reference.js";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack("e2e");
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method,
    headers: body === undefined ? { ...stack.auth, ...headers } : { ...stack.auth, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function uploadCsv(csv: string, query: string) {
  const res = await fetch(`${stack.baseUrl}/v1/datasets?${query}`, { method: "POST", headers: { ...stack.auth, "content-type": "text/csv" }, body: csv });
  const body = await res.json();
  expect(res.status, JSON.stringify(body)).toBe(201);
  return body;
}

async function waitForJob(id: string, timeoutMs = 240_000) {
  let job: any;
  await waitFor(async () => {
    job = (await api("GET", `/v1/jobs/${id}`)).body;
    return ["succeeded", "failed", "cancelled"].includes(job.status);
  }, timeoutMs, () => `job ${JSON.stringify(job)}\nworker:\n${stack.worker.output()}`);
  return job;
}



describe("upload -> job -> metrics -> weights", () => {
  it("trains a noisy linear regression until validation loss falls below a fifth of the first epoch's", async () => {
    const ds = await uploadCsv(regressionCsv(1200, 7), "name=linear&target=y");
    expect(ds).toMatchObject({ status: "ready", rows: 1200, input_width: 3, task: "regression", target_width: 1, classes: null });
    expect(ds.columns.map((c: any) => c.name)).toEqual(["x0", "x1", "x2", "y"]);

    const submitted = await api("POST", "/v1/jobs", {
      dataset_id: ds.id,
      validation: { split: 0.2 },
      model: { layers: [{ type: "dense", units: 16, activation: "tanh" }, { type: "dense", units: 1 }] },
      loss: "mse",
      optimizer: { type: "sgd", lr: 0.02, momentum: 0.9 },
      epochs: 25,
      batch_size: 32,
      seed: 3,
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    expect(submitted.body.status).toBe("queued");

    const job = await waitForJob(submitted.body.id);
    expect(job.status, JSON.stringify(job)).toBe("succeeded");
    expect(job.stop_reason).toBe("max_epochs");
    expect(job.epoch).toBe(25);

    const metrics = (await api("GET", `/v1/jobs/${job.id}/metrics`)).body.data;
    expect(metrics.map((m: any) => m.epoch)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    for (const m of metrics) {
      expect(Number.isFinite(m.train_loss) && Number.isFinite(m.val_loss)).toBe(true);
      expect(m.metrics.mae).toBeGreaterThan(0);
      expect(m.lr).toBe(0.02);
      expect(m.samples_per_sec).toBeGreaterThan(0);
    }
    expect(metrics[24].val_loss).toBeLessThan(metrics[0].val_loss / 5);
    const later = (await api("GET", `/v1/jobs/${job.id}/metrics?after_epoch=20`)).body.data;
    expect(later.map((m: any) => m.epoch)).toEqual([21, 22, 23, 24, 25]);
  });

  it("trains a 3-class problem to >= 0.9 validation accuracy and its downloaded weights reproduce the validation loss", async () => {
    const train = blobsCsv(900, 11);
    const val = blobsCsv(300, 12);
    const trainDs = await uploadCsv(train.csv, "name=blobs&target=colour");
    const valDs = await uploadCsv(val.csv, "name=blobs-val&target=colour");
    expect(trainDs).toMatchObject({ task: "classification", classes: [...BLOB_CLASSES], input_width: 2, target_width: null });

    const t0 = Date.now();
    const submitted = await api("POST", "/v1/jobs", {
      dataset_id: trainDs.id,
      validation: { dataset_id: valDs.id },
      model: { layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dense", units: 3 }] },
      loss: "cross_entropy",
      optimizer: { type: "sgd", lr: 0.05, momentum: 0.9 },
      epochs: 15,
      batch_size: 32,
      seed: 5,
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const job = await waitForJob(submitted.body.id);
    const seconds = (Date.now() - t0) / 1000;
    console.log(`3-class job: submitted to succeeded in ${seconds.toFixed(2)} s`);
    expect(job.status, JSON.stringify(job)).toBe("succeeded");

    const metrics = (await api("GET", `/v1/jobs/${job.id}/metrics`)).body.data;
    expect(metrics).toHaveLength(15);
    const last = metrics[14];
    expect(last.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(job.best_epoch).toBeGreaterThanOrEqual(1);

    const res = await fetch(`${stack.baseUrl}/v1/jobs/${job.id}/weights?checkpoint=last`, { headers: stack.auth });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    const { metadata, tensors } = readSafetensors(Buffer.from(await res.arrayBuffer()));
    expect(Object.keys(tensors).sort()).toEqual(["0.bias", "0.weight", "1.bias", "1.weight"]);
    expect(tensors["0.weight"].shape).toEqual([16, 2]);
    expect(tensors["0.bias"].shape).toEqual([16]);
    expect(tensors["1.weight"].shape).toEqual([3, 16]);
    expect(tensors["1.bias"].shape).toEqual([3]);
    expect(JSON.parse(metadata.model).layers).toHaveLength(2);

    // Forward pass in float64 from the downloaded tensors over the validation set.
    let loss = 0;
    let correct = 0;
    for (let r = 0; r < val.x.length; r++) {
      const h = dense(val.x[r], tensors["0.weight"], tensors["0.bias"]).map((v) => Math.max(0, v));
      const logits = dense(h, tensors["1.weight"], tensors["1.bias"]);
      const max = Math.max(...logits);
      const logSum = Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      const label = BLOB_CLASSES.indexOf(val.labels[r] as (typeof BLOB_CLASSES)[number]);
      loss += logSum - logits[label];
      if (logits.indexOf(max) === label) correct++;
    }
    loss /= val.x.length;
    expect(Math.abs(loss - last.val_loss)).toBeLessThan(1e-4);
    expect(correct / val.x.length).toBeCloseTo(last.metrics.accuracy, 10);

    const best = await fetch(`${stack.baseUrl}/v1/jobs/${job.id}/weights`, { headers: stack.auth });
    expect(best.status).toBe(200);
    expect(Number(best.headers.get("x-checkpoint-epoch"))).toBe(job.best_epoch);
  });

  it("lists jobs most recent first with a cursor", async () => {
    const first = await api("GET", "/v1/jobs?limit=1");
    expect(first.status).toBe(200);
    expect(first.body.data).toHaveLength(1);
    expect(first.body.has_more).toBe(true);
    const second = await api("GET", `/v1/jobs?limit=1&after=${first.body.last_id}`);
    expect(second.body.data).toHaveLength(1);
    expect(second.body.data[0].id).not.toBe(first.body.data[0].id);
    expect(Date.parse(second.body.data[0].created_at)).toBeLessThanOrEqual(Date.parse(first.body.data[0].created_at));
    const succeeded = await api("GET", "/v1/jobs?status=succeeded");
    expect(succeeded.body.data.length).toBe(2);
  });
});
