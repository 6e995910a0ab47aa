// Checkpoints, prediction and continued training against the real API and worker processes,
// PostgreSQL and Redis: retention keeps exactly the epochs the config asks for, /predict equals a
// float64 forward pass over the downloaded safetensors computed here, other tenants see nothing,
// and init_from starts a job from another's weights.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BLOB_CLASSES, blobsCsv, regressionCsv } from "../helpers/data.js";
import { client } from "../helpers/client.js";
import { createKey, startStack, type Stack } from "../helpers/stack.js";
import { dense, readSafetensors, type Tensor } from "../helpers/reference.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let otherAuth: { authorization: string };

const blobsTrain = blobsCsv(600, 31);
const blobsVal = blobsCsv(240, 32);
let blobsTrainId: string;
let blobsValId: string;
let classifier: any; // the succeeded job
let regressor: any;

const classifierConfig = (over: Record<string, unknown> = {}) => ({
  dataset_id: blobsTrainId,
  validation: { dataset_id: blobsValId },
  model: { layers: [{ type: "dense", units: 12, activation: "relu" }, { type: "dense", units: 3 }] },
  loss: "cross_entropy",
  optimizer: { type: "sgd", lr: 0.05, momentum: 0.9 },
  epochs: 12,
  batch_size: 32,
  seed: 4,
  ...over,
});

beforeAll(async () => {
  stack = await startStack("predict");
  c = client(stack);
  otherAuth = { authorization: `Bearer ${await createKey(stack.baseUrl, stack.adminKey, "tenant-b")}` };
  blobsTrainId = (await c.uploadCsv(blobsTrain.csv, "name=blobs&target=colour")).id;
  blobsValId = (await c.uploadCsv(blobsVal.csv, "name=blobs-val&target=colour")).id;
  const regDs = await c.uploadCsv(regressionCsv(600, 9), "name=linear&target=y");
  // Both jobs at once; the worker trains them one after the other.
  const cls = await c.submit(classifierConfig({ checkpoints: { keep_last: 2, keep_best: 1, every_epochs: 3 } }));
  const reg = await c.submit({
    dataset_id: regDs.id,
    validation: { split: 0.25 },
    model: { input_shape: [1, 3], layers: [{ type: "dense", units: 8, activation: "tanh" }, { type: "dense", units: 1 }] },
    loss: "mse",
    optimizer: { type: "sgd", lr: 0.02, momentum: 0.9 },
    epochs: 10,
    validate_every: 2,
    seed: 6,
    checkpoints: { keep_last: 1, keep_best: 3, every_epochs: 0 },
  });
  classifier = await c.waitForJob(cls.id);
  regressor = await c.waitForJob(reg.id);
  expect(classifier.status, JSON.stringify(classifier)).toBe("succeeded");
  expect(regressor.status, JSON.stringify(regressor)).toBe("succeeded");
}, 400_000);

afterAll(async () => {
  await stack?.close();
});


async function download(jobId: string, checkpoint: string | number, auth = stack.auth) {
  const res = await fetch(`${stack.baseUrl}/v1/jobs/${jobId}/weights?checkpoint=${checkpoint}`, { headers: auth });
  return { status: res.status, epoch: Number(res.headers.get("x-checkpoint-epoch")), buf: Buffer.from(await res.arrayBuffer()) };
}


/** The two-layer models of this file, in float64. */
function forward(t: Record<string, Tensor>, x: number[], activation: (v: number) => number): number[] {
  return dense(dense(x, t["0.weight"], t["0.bias"]).map(activation), t["1.weight"], t["1.bias"]);
}

const relu = (v: number) => Math.max(0, v);

function expectClose(actual: number[][], expected: number[][], tol = 1e-5) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(actual[i].length).toBe(expected[i].length);
    for (let j = 0; j < expected[i].length; j++) {
      if (!(Math.abs(actual[i][j] - expected[i][j]) <= tol)) {
        throw new Error(`row ${i}, value ${j}: got ${actual[i][j]}, expected ${expected[i][j]} (tolerance ${tol})`);
      }
    }
  }
}

const asOther = (method: string, path: string, body?: unknown) => c.api(method, path, body, otherAuth);

describe("checkpoint retention", () => {
  it("keep_last 2, keep_best 1, every_epochs 3: exactly those epochs are listed, newest first, and each downloads", async () => {
    const metrics = await c.metrics(classifier.id);
    expect(metrics).toHaveLength(12);
    let best = metrics[0];
    for (const m of metrics) if (m.val_loss < best.val_loss) best = m;
    expect(classifier.best_epoch).toBe(best.epoch);

    const res = await c.api("GET", `/v1/jobs/${classifier.id}/checkpoints`);
    expect(res.status).toBe(200);
    const list = res.body.data as any[];
    const expected = [
      { epoch: 12, kind: "last" },
      { epoch: 11, kind: "last" },
      { epoch: best.epoch, kind: "best" },
      ...[3, 6, 9, 12].map((epoch) => ({ epoch, kind: "periodic" })),
    ].sort((a, b) => b.epoch - a.epoch || (a.kind < b.kind ? -1 : 1));
    expect(list.map((r) => ({ epoch: r.epoch, kind: r.kind }))).toEqual(expected);
    for (const row of list) {
      expect(row).not.toHaveProperty("weights");
      expect(row.bytes).toBeGreaterThan(0);
      expect(row.val_loss).toBeCloseTo(metrics[row.epoch - 1].val_loss, 12);
      const d = await download(classifier.id, row.epoch);
      expect(d.status).toBe(200);
      expect(d.epoch).toBe(row.epoch);
      expect(d.buf.length).toBe(row.bytes);
      expect(readSafetensors(d.buf).metadata.epoch).toBe(String(row.epoch));
    }
    expect((await download(classifier.id, "best")).epoch).toBe(best.epoch);
    expect((await download(classifier.id, "last")).epoch).toBe(12);
    // An epoch the retention dropped is gone.
    const dropped = [1, 2, 4, 5, 7, 8, 10].find((e) => e !== best.epoch)!;
    const gone = await download(classifier.id, dropped);
    expect(gone.status).toBe(404);
  });

  it("keep_best 3 with validate_every 2: the three lowest validation losses among the epochs that validated", async () => {
    const metrics = await c.metrics(regressor.id);
    const validated = metrics.filter((m: any) => m.val_loss !== null);
    expect(validated.map((m: any) => m.epoch)).toEqual([2, 4, 6, 8, 10]);
    const top3 = [...validated].sort((a: any, b: any) => a.val_loss - b.val_loss || a.epoch - b.epoch).slice(0, 3);
    const list = (await c.api("GET", `/v1/jobs/${regressor.id}/checkpoints`)).body.data as any[];
    const expected = [{ epoch: 10, kind: "last" }, ...top3.map((m: any) => ({ epoch: m.epoch, kind: "best" }))].sort(
      (a, b) => b.epoch - a.epoch || (a.kind < b.kind ? -1 : 1),
    );
    expect(list.map((r) => ({ epoch: r.epoch, kind: r.kind }))).toEqual(expected);
    // `best` is the lowest of them, not the newest.
    expect((await download(regressor.id, "best")).epoch).toBe(top3[0].epoch);
    expect(regressor.best_epoch).toBe(top3[0].epoch);
  });
});

describe("POST /v1/jobs/:id/predict", () => {
  it("a classifier: outputs, probabilities and labels equal a float64 forward pass over the downloaded weights", async () => {
    const inputs = [...blobsVal.x.slice(0, 40), [0, 0], [5, -5], [-3.25, 2.5]];
    for (const checkpoint of ["best", "last", 3] as const) {
      const res = await c.api("POST", `/v1/jobs/${classifier.id}/predict`, checkpoint === "best" ? { inputs } : { inputs, checkpoint });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const weights = await download(classifier.id, checkpoint);
      expect(res.body.checkpoint_epoch).toBe(weights.epoch);
      const { tensors } = readSafetensors(weights.buf);
      const logits = inputs.map((x) => forward(tensors, x, relu));
      expectClose(res.body.outputs, logits);
      const probs = logits.map((l) => {
        const m = Math.max(...l);
        const e = l.map((v) => Math.exp(v - m));
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((v) => v / s);
      });
      expectClose(res.body.probabilities, probs);
      for (const p of res.body.probabilities) expect(p.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 6);
      expect(res.body.labels).toEqual(logits.map((l) => BLOB_CLASSES[l.indexOf(Math.max(...l))]));
    }
    // The best checkpoint classifies the validation points it was chosen on well.
    const res = await c.api("POST", `/v1/jobs/${classifier.id}/predict`, { inputs: blobsVal.x });
    const correct = res.body.labels.filter((l: string, i: number) => l === blobsVal.labels[i]).length;
    expect(correct / blobsVal.x.length).toBeGreaterThan(0.9);
  });

  it("a regressor (input_shape [1, 3]): flat and nested inputs, outputs equal a float64 forward pass, no probabilities", async () => {
    const flat = [[0.1, -0.2, 0.3], [1, 1, 1], [-0.75, 0.5, 0.125], [0, 0, 0]];
    const res = await c.api("POST", `/v1/jobs/${regressor.id}/predict`, { inputs: [...flat, [[0.5, 0.5, -0.5]]] });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).not.toHaveProperty("probabilities");
    expect(res.body).not.toHaveProperty("labels");
    const weights = await download(regressor.id, "best");
    expect(res.body.checkpoint_epoch).toBe(weights.epoch);
    const { tensors } = readSafetensors(weights.buf);
    expectClose(res.body.outputs, [...flat, [0.5, 0.5, -0.5]].map((x) => forward(tensors, x, Math.tanh)));
    // y = 2 x0 - 3 x1 + 0.5 x2 + 1: the model has learnt roughly that.
    expect(res.body.outputs[1][0]).toBeCloseTo(0.5, 0);
  });

  it("wrong shapes, non-numbers and non-finite values are 422 invalid_input naming the input", async () => {
    const post = (body: unknown) => c.api("POST", `/v1/jobs/${classifier.id}/predict`, body);
    const cases: [unknown, string][] = [
      [{ inputs: [[1, 2], [1, 2, 3]] }, "inputs.1"],
      [{ inputs: [[1, 2], [1, 2], [1, 2], [1]] }, "inputs.3"],
      [{ inputs: [[1, "2"]] }, "inputs.0"],
      [{ inputs: [[1, null]] }, "inputs.0"],
      [{ inputs: [[1, 2], "NaN"] }, "inputs.1"],
      [{ inputs: [[1, 2], [[1, 2]]] }, "inputs.1"],
      [{ inputs: [[1, 2], { a: 1 }] }, "inputs.1"],
      [{ inputs: [] }, "inputs"],
      [{ inputs: Array.from({ length: 1025 }, () => [0, 0]) }, "inputs"],
      [{}, "inputs"],
    ];
    for (const [body, param] of cases) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(422);
      expect(res.body.error).toMatchObject({ code: "invalid_input", param });
      expect(typeof res.body.error.message).toBe("string");
    }
    // 1e999 parses as Infinity.
    const raw = await fetch(`${stack.baseUrl}/v1/jobs/${classifier.id}/predict`, {
      method: "POST",
      headers: { ...stack.auth, "content-type": "application/json" },
      body: '{"inputs":[[1,2],[1e999,2]]}',
    });
    expect(raw.status).toBe(422);
    expect((await raw.json()).error).toMatchObject({ code: "invalid_input", param: "inputs.1" });
    // The regressor's nested inputs must match [1, 3] exactly.
    const nested = await c.api("POST", `/v1/jobs/${regressor.id}/predict`, { inputs: [[[1, 2, 3]], [[1, 2], [3, 4]]] });
    expect(nested.status).toBe(422);
    expect(nested.body.error.param).toBe("inputs.1");

    const missing = await post({ inputs: [[1, 2]], checkpoint: 999 });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: "checkpoint_not_found", param: "checkpoint" });
    const dropped = await post({ inputs: [[1, 2]], checkpoint: 1 });
    expect(dropped.status).toBe(classifier.best_epoch === 1 ? 200 : 404);
  });

  it("another tenant's job is a 404 on every route of this file, like a missing one", async () => {
    for (const [method, path, body] of [
      ["GET", `/v1/jobs/${classifier.id}/checkpoints`, undefined],
      ["POST", `/v1/jobs/${classifier.id}/predict`, { inputs: [[1, 2]] }],
      ["GET", `/v1/jobs/${classifier.id}/weights?checkpoint=3`, undefined],
      ["GET", `/v1/jobs/00000000-0000-4000-8000-000000000000/checkpoints`, undefined],
    ] as const) {
      const res = await asOther(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.error.code).toBe("job_not_found");
    }
    // The owner still sees it.
    expect((await c.api("GET", `/v1/jobs/${classifier.id}/checkpoints`)).status).toBe(200);
  });
});

describe("init_from", () => {
  it("a job continuing from another's last checkpoint starts near its loss, far below a fresh start", async () => {
    const continued = await c.submit(classifierConfig({ epochs: 3, seed: 8, init_from: { job_id: classifier.id, checkpoint: "last" } }));
    expect(continued.config.init_from).toEqual({ job_id: classifier.id, checkpoint: "last" });
    const fresh = await c.submit(classifierConfig({ epochs: 3, seed: 8 }));
    // From the best checkpoint with a learning rate too small to move anything: the first epoch's
    // validation loss is the source epoch's own.
    const frozen = await c.submit(
      classifierConfig({ epochs: 1, seed: 8, optimizer: { type: "sgd", lr: 1e-9, momentum: 0 }, init_from: { job_id: classifier.id, checkpoint: "best" } }),
    );
    const [cont, fr, fz] = [await c.waitForJob(continued.id), await c.waitForJob(fresh.id), await c.waitForJob(frozen.id)];
    for (const j of [cont, fr, fz]) expect(j.status, JSON.stringify(j)).toBe("succeeded");

    const source = await c.metrics(classifier.id);
    const srcLast = source[source.length - 1];
    const contFirst = (await c.metrics(cont.id))[0];
    const freshFirst = (await c.metrics(fr.id))[0];
    console.log(`init_from: source last train_loss ${srcLast.train_loss}, continued first ${contFirst.train_loss}, fresh first ${freshFirst.train_loss}`);
    expect(contFirst.train_loss).toBeLessThan(freshFirst.train_loss / 3);
    expect(Math.abs(contFirst.train_loss - srcLast.train_loss)).toBeLessThan(Math.max(0.05, srcLast.train_loss));

    const fzFirst = (await c.metrics(fz.id))[0];
    const srcBest = source[classifier.best_epoch - 1];
    expect(Math.abs(fzFirst.val_loss - srcBest.val_loss)).toBeLessThan(1e-4);

    const events = await c.api("GET", `/v1/jobs/${cont.id}/events?limit=100`);
    expect(events.status).toBe(200);
    const initialised = events.body.data.find((e: any) => e.type === "initialised");
    expect(initialised?.data).toEqual({ job_id: classifier.id, epoch: 12 });
    expect((await c.api("GET", `/v1/jobs/${fr.id}/events?limit=100`)).body.data.some((e: any) => e.type === "initialised")).toBe(false);
  }, 400_000);

  it("a model of another architecture is a 422 naming the field; a missing checkpoint and another tenant's job are 404s", async () => {
    const mismatch = await c.api(
      "POST",
      "/v1/jobs",
      classifierConfig({
        model: { layers: [{ type: "dense", units: 10, activation: "relu" }, { type: "dense", units: 3 }] },
        init_from: { job_id: classifier.id },
      }),
    );
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.error).toMatchObject({ code: "architecture_mismatch", param: "model.layers.0.units" });

    const deeper = await c.api(
      "POST",
      "/v1/jobs",
      classifierConfig({
        model: { layers: [{ type: "dense", units: 12, activation: "relu" }, { type: "dense", units: 3 }, { type: "dense", units: 3 }] },
        init_from: { job_id: classifier.id },
      }),
    );
    expect(deeper.status).toBe(422);
    expect(deeper.body.error).toMatchObject({ code: "architecture_mismatch", param: "model.layers" });

    const noSuchEpoch = await c.api("POST", "/v1/jobs", classifierConfig({ init_from: { job_id: classifier.id, checkpoint: 1000 } }));
    expect(noSuchEpoch.status).toBe(404);
    expect(noSuchEpoch.body.error).toMatchObject({ code: "checkpoint_not_found", param: "init_from.checkpoint" });

    const unknown = await c.api("POST", "/v1/jobs", classifierConfig({ init_from: { job_id: "00000000-0000-4000-8000-000000000000" } }));
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: "job_not_found", param: "init_from.job_id" });

    // Tenant b, with a dataset of its own, cannot start from tenant a's job.
    const res = await fetch(`${stack.baseUrl}/v1/datasets?name=b&target=colour`, {
      method: "POST",
      headers: { ...otherAuth, "content-type": "text/csv" },
      body: blobsTrain.csv,
    });
    expect(res.status).toBe(201);
    const bDataset = (await res.json()).id;
    const cross = await asOther("POST", "/v1/jobs", { ...classifierConfig({ init_from: { job_id: classifier.id } }), dataset_id: bDataset, validation: { split: 0.2 } });
    expect(cross.status).toBe(404);
    expect(cross.body.error).toMatchObject({ code: "job_not_found", param: "init_from.job_id" });
  });
});
