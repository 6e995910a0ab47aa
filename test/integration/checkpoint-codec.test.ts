// A checkpoint's resume state: the trainer's snapshot encoded by workers/snapshot-codec.ts, stored
// in PostgreSQL by recordEpochs and read back by findResumeCheckpoint, continues training bit for
// bit, with every kind of state a snapshot holds (Adam moments, batchnorm statistics, dropout and
// augmentation RNGs, reduce_on_plateau, early stopping's copy of the best weights, Infinity).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobConfigSchema, splitValidation, train, type EpochReport, type TrainData, type TrainerSnapshot, type TrainSet } from "../../src/trainer/index.js";
import { decodeSnapshot, encodeSnapshot } from "../../workers/snapshot-codec.js";
import { createDb, type Db } from "../../src/db/client.js";
import * as jobs from "../../src/db/jobs.js";
import { seededRandom } from "../helpers/random.js";
import { createTestDatabase, type TestDatabase } from "../helpers/stack.js";

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase("codec");
  db = createDb(database.url);
}, 60_000);

afterAll(async () => {
  await db?.$disconnect();
  await database?.drop();
});

/** 8x8 images, bright on the left (class 0) or the right (class 1), with noise. */
function halves(rows: number, seed: number): TrainSet {
  const rand = seededRandom(seed);
  const x = new Float32Array(rows * 64);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    y[r] = r % 2;
    for (let i = 0; i < 64; i++) x[r * 64 + i] = ((r % 2 === 0) === (i % 8 < 4) ? 1 : 0) + 0.2 * (rand() - 0.5);
  }
  return { x, y, rows, inputWidth: 64, targetWidth: 1 };
}

const config = jobConfigSchema.parse({
  dataset_id: "6f1c2a9e-8d3b-4f5a-9c7e-1b2d3e4f5a6b",
  model: {
    input_shape: [1, 8, 8],
    layers: [
      { type: "conv2d", filters: 4, kernel_size: 3, padding: "same", activation: "relu" },
      { type: "batchnorm" },
      { type: "maxpool2d", pool_size: 2 },
      { type: "flatten" },
      { type: "dropout", rate: 0.3 },
      { type: "dense", units: 2 },
    ],
  },
  loss: "cross_entropy",
  optimizer: { type: "adam", lr: 0.01 },
  lr_schedule: { type: "reduce_on_plateau", patience: 1, factor: 0.5 },
  early_stopping: { patience: 50, restore_best_weights: true },
  augmentation: { horizontal_flip: 0.5, brightness: 0.1, noise_std: 0.05, translate: 1 },
  epochs: 8,
  batch_size: 10,
  seed: 11,
});

const bits = (a: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) =>
  Buffer.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).toString("hex");

describe("the snapshot codec", () => {
  it("round-trips typed arrays of every width, non-finite numbers and -0 exactly", () => {
    const value = {
      f32: new Float32Array([1.5, -0, NaN, Infinity]),
      f64: new Float64Array([Math.PI, -Infinity]),
      u32: new Uint32Array([0xffffffff, 7]),
      i32: new Int32Array([-5]),
      view: new Float32Array(new Float32Array([9, 8, 7, 6]).buffer, 4, 2),
      nested: [{ best: Infinity, worst: -Infinity, nan: NaN, zero: -0, n: null, s: "x", b: true }],
      empty: new Float32Array(0),
    };
    const bytes = encodeSnapshot(value);
    // A safetensors file: an 8-byte header length, then a JSON header with our metadata.
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    expect(header.__metadata__.format).toBe("trainhub-snapshot/1");
    expect(header["f64"]).toMatchObject({ dtype: "F64", shape: [2] });
    expect((8 + headerLength) % 8).toBe(0);

    const back = decodeSnapshot<typeof value>(bytes);
    expect(back.f32).toBeInstanceOf(Float32Array);
    expect(back.f64).toBeInstanceOf(Float64Array);
    expect(back.u32).toBeInstanceOf(Uint32Array);
    expect(back.i32).toBeInstanceOf(Int32Array);
    for (const key of ["f32", "f64", "u32", "i32", "view", "empty"] as const) expect(bits(back[key])).toBe(bits(value[key]));
    const n = back.nested[0];
    expect([n.best, n.worst, Number.isNaN(n.nan), Object.is(n.zero, -0), n.n, n.s, n.b]).toEqual([Infinity, -Infinity, true, true, null, "x", true]);
  });

  it("stored in PostgreSQL and read back, resumes training bit for bit", async () => {
    const data: TrainData = { ...splitValidation(halves(96, 3), 0.25, 5), task: "classification" };
    const reports: EpochReport[] = [];
    const snapshots: TrainerSnapshot[] = [];
    const whole = train(config, data, {
      onEpoch: (r, _m, snapshot) => {
        reports.push(r);
        snapshots.push(snapshot());
      },
    });
    const at = snapshots[3]; // after epoch 4
    expect(at.tracking.early?.weights).not.toBeNull();

    const dataset = await db.dataset.create({ data: { tenant: "t", name: "d", format: "csv", task: "classification", inputWidth: 64, targetWidth: 1, inputShape: [1, 8, 8], chunkRows: 0 } });
    const job = (await jobs.createJob(db, { tenant: "t", config, classes: [], datasetId: dataset.id, validationDatasetId: null, priority: 0 }))!;
    const state = encodeSnapshot(at);
    const weights = new Uint8Array([1, 2, 3]);
    const metric = { epoch: 4, trainLoss: 1, valLoss: 1, lr: 0.01, metrics: {}, durationMs: 1, samplesPerSec: 1 };
    await jobs.recordEpochs(db, job.id, { metrics: [metric], last: { epoch: 4, valLoss: 1, weights, state }, best: { epoch: 4, valLoss: 1, trackedLoss: 1, weights: null }, events: [] });
    // Written twice (a replayed delivery): still one row per kind.
    await jobs.recordEpochs(db, job.id, { metrics: [metric], last: { epoch: 4, valLoss: 1, weights, state }, best: { epoch: 4, valLoss: 1, trackedLoss: 1, weights: null }, events: [] });
    expect(await db.checkpoint.count({ where: { jobId: job.id } })).toBe(2);
    expect(Buffer.from((await jobs.findCheckpoint(db, job.id, "best"))!.weights)).toEqual(Buffer.from(weights));

    const stored = await jobs.findResumeCheckpoint(db, job.id);
    expect(stored?.epoch).toBe(4);
    console.log(`resume state of a small CNN with Adam: ${state.byteLength} bytes`);
    const resumedReports: EpochReport[] = [];
    const resumed = train(config, data, { onEpoch: (r) => resumedReports.push(r) }, decodeSnapshot<TrainerSnapshot>(stored!.state));
    // (Each run reports its threads with its own first epoch.)
    const strip = ({ threads: _threads, ...r }: EpochReport) => ({ ...r, durationMs: 0, samplesPerSec: 0 });
    expect(resumedReports.map(strip)).toEqual(reports.slice(4).map(strip));
    expect(resumedReports[0].threads).toEqual({ count: 1, sharedBy: "none" });
    expect(resumed.model.exportTensors().map((t) => bits(t.data))).toEqual(whole.model.exportTensors().map((t) => bits(t.data)));
  });
});
