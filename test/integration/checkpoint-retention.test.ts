// Checkpoint retention in PostgreSQL: epochs written in coalesced batches (as when the writer falls
// behind the trainer), with the weights the training thread holds on to, end with exactly the rows
// the config asks for; replaying the same epochs changes nothing; the resume state stays on the
// newest `last`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobConfigSchema } from "../../src/trainer/index.js";
import { retainedExtras, retentionOf, weightsToKeep } from "../../src/trainer/retention.js";
import { createDb, type Db } from "../../src/db/client.js";
import * as jobs from "../../src/db/jobs.js";
import { createTestDatabase, type TestDatabase } from "../helpers/stack.js";

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase("retention");
  db = createDb(database.url);
}, 60_000);

afterAll(async () => {
  await db?.$disconnect();
  await database?.drop();
});

const config = jobConfigSchema.parse({
  dataset_id: "6f1c2a9e-8d3b-4f5a-9c7e-1b2d3e4f5a6b",
  model: { layers: [{ type: "dense", units: 1 }] },
  loss: "mse",
  epochs: 12,
  checkpoints: { keep_last: 3, keep_best: 2, every_epochs: 5 },
});
// Epoch 9 (0.31) is the second best without ever being a new best.
const VAL_LOSSES = [1.0, 0.5, 0.7, 0.3, 0.6, 0.35, 0.9, 0.8, 0.31, 0.95, 0.4, 0.33];
const BATCHES = [[1], [2, 3, 4], [5], [6, 7, 8, 9, 10], [11], [12]];

const weightsOf = (epoch: number) => new Uint8Array([epoch, 1, 2, 3]);
const stateOf = (epoch: number) => new Uint8Array([epoch, 9]);

interface Pending {
  report: { epoch: number; trainLoss: number; valLoss: number; isBest: boolean };
  weights: Uint8Array | null;
  state: Uint8Array | null;
}

/** What the worker does: the thread's shedding as each epoch arrives, then the write of a batch. */
async function writeRun(jobId: string) {
  let best = Infinity;
  for (const epochs of BATCHES) {
    const pending: Pending[] = [];
    for (const epoch of epochs) {
      const valLoss = VAL_LOSSES[epoch - 1];
      const isBest = valLoss < best;
      if (isBest) best = valLoss;
      pending.push({ report: { epoch, trainLoss: 1, valLoss, isBest }, weights: weightsOf(epoch), state: stateOf(epoch) });
      const keep = weightsToKeep(config, pending.map((p) => p.report));
      for (let i = 0; i < pending.length - 1; i++) {
        pending[i].state = null;
        if (!keep[i]) pending[i].weights = null;
      }
    }
    const newest = pending[pending.length - 1];
    const last = { epoch: newest.report.epoch, valLoss: newest.report.valLoss, weights: newest.weights!, state: newest.state! };
    const bestReport = [...pending].reverse().find((p) => p.report.isBest);
    const bestWrite = bestReport
      ? { epoch: bestReport.report.epoch, valLoss: bestReport.report.valLoss, trackedLoss: bestReport.report.valLoss, weights: bestReport.report.epoch === last.epoch ? null : bestReport.weights }
      : null;
    const { kept, ranked } = retainedExtras(config, pending, [last.epoch, ...(bestWrite ? [bestWrite.epoch] : [])]);
    await jobs.recordEpochs(db, jobId, {
      metrics: pending.map(({ report: r }) => ({ epoch: r.epoch, trainLoss: r.trainLoss, valLoss: r.valLoss, lr: 0.1, metrics: { mae: 1 }, durationMs: 1, samplesPerSec: 1 })),
      last,
      best: bestWrite,
      events: [],
      retention: retentionOf(config),
      kept,
      ranked,
    });
  }
}

async function rows(jobId: string) {
  const all = await db.checkpoint.findMany({ where: { jobId }, orderBy: [{ epoch: "desc" }, { kind: "asc" }] });
  return all.map((r) => ({ epoch: r.epoch, kind: r.kind, first: r.weights[0], valLoss: r.valLoss, state: r.state ? Array.from(r.state) : null }));
}

describe("recordEpochs with a retention", () => {
  it("keeps the 3 newest, the 2 best and every 5th epoch, through coalesced batches and a replay", async () => {
    const dataset = await db.dataset.create({ data: { tenant: "t", name: "d", format: "csv", task: "regression", inputWidth: 1, targetWidth: 1, inputShape: [1], chunkRows: 0 } });
    const job = (await jobs.createJob(db, { tenant: "t", config, classes: [], datasetId: dataset.id, validationDatasetId: null, priority: 0 }))!;
    await writeRun(job.id);
    const expected = [
      { epoch: 12, kind: "last", state: [12, 9] },
      { epoch: 11, kind: "last", state: null },
      { epoch: 10, kind: "last", state: null },
      { epoch: 10, kind: "periodic", state: null },
      { epoch: 9, kind: "best", state: null },
      { epoch: 5, kind: "periodic", state: null },
      { epoch: 4, kind: "best", state: null },
    ].map((r) => ({ ...r, first: r.epoch, valLoss: VAL_LOSSES[r.epoch - 1] }));
    const after = await rows(job.id);
    expect(after).toEqual(expected);

    expect((await jobs.findCheckpoint(db, job.id, "best"))?.epoch).toBe(4);
    expect((await jobs.findCheckpoint(db, job.id, "last"))?.epoch).toBe(12);
    expect((await jobs.findCheckpoint(db, job.id, 9))?.weights[0]).toBe(9);
    expect(await jobs.findCheckpoint(db, job.id, 8)).toBeNull();
    expect((await jobs.findResumeCheckpoint(db, job.id))?.epoch).toBe(12);
    expect((await jobs.listCheckpoints(db, job.id)).map((r) => `${r.epoch}:${r.kind}`)).toEqual(expected.map((r) => `${r.epoch}:${r.kind}`));

    // The same epochs written again (a duplicate delivery): the same rows.
    await writeRun(job.id);
    expect(await rows(job.id)).toEqual(expected);
    expect(await db.epochMetric.count({ where: { jobId: job.id } })).toBe(12);
  });
});
