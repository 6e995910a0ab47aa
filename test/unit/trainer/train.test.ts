import { describe, expect, it } from "vitest";
import {
  buildModel,
  splitValidation,
  train,
  TrainerError,
  type EpochReport,
  type JobConfig,
  type TrainData,
  type TrainSet,
} from "../../../src/trainer/index.js";
import { bytesOf, linearRegression, makeConfig, threeBlobs } from "./helpers.js";

function regressionConfig(over: Partial<JobConfig> = {}): JobConfig {
  return makeConfig({
    model: {
      layers: [
        { type: "dense", units: 16, activation: "tanh" },
        { type: "dense", units: 1 },
      ],
    },
    loss: "mse",
    optimizer: { type: "sgd", lr: 0.02, momentum: 0.9 },
    epochs: 20,
    batch_size: 16,
    seed: 1,
    ...over,
  });
}

function regressionData(): TrainData {
  return { ...splitValidation(linearRegression(400, 5), 0.25, 1), task: "regression" };
}

function run(config: JobConfig, data: TrainData, shouldStop?: () => boolean) {
  const reports: EpochReport[] = [];
  const result = train(config, data, { onEpoch: (report) => reports.push(report), shouldStop });
  return { reports, result };
}

describe("train", () => {
  it("learns a noisy linear regression", () => {
    const { reports, result } = run(regressionConfig(), regressionData());
    expect(reports).toHaveLength(20);
    expect(reports.map((r) => r.epoch)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const first = reports[0];
    const last = reports[19];
    // The targets have variance ~15 and noise variance 0.01.
    expect(last.valLoss!).toBeLessThan(first.trainLoss / 50);
    expect(last.valLoss!).toBeLessThan(0.05);
    expect(last.metrics.rmse).toBeCloseTo(Math.sqrt(last.valLoss!), 4);
    expect(last.metrics.mae).toBeLessThan(last.metrics.rmse * 1.01);
    expect(result).toMatchObject({ epochs: 20, stopReason: "max_epochs" });
    expect(result.model.outputWidth).toBe(1);
  });

  it("learns a 3-class problem to better than 90% accuracy", () => {
    const config = makeConfig({
      model: {
        layers: [
          { type: "dense", units: 16, activation: "relu" },
          { type: "dense", units: 3 },
        ],
      },
      loss: "cross_entropy",
      optimizer: { type: "sgd", lr: 0.05 },
      epochs: 15,
      batch_size: 16,
      seed: 3,
    });
    const data: TrainData = { ...splitValidation(threeBlobs(300, 2), 0.2, 3), task: "classification" };
    const { reports } = run(config, data);
    const last = reports.at(-1)!;
    expect(Object.keys(last.metrics)).toEqual(["accuracy"]);
    expect(last.metrics.accuracy).toBeGreaterThan(0.9);
    expect(last.valLoss!).toBeLessThan(Math.log(3) / 4); // ln 3: the loss of a uniform guess
  });

  it("gives bit-identical weights and reports for the same seed, different ones for another", () => {
    const data = regressionData();
    const config = regressionConfig({ epochs: 3 });
    const a = run(config, data);
    const b = run(config, data);
    expect(bytesOf(b.result.model.params)).toEqual(bytesOf(a.result.model.params));
    const losses = (r: EpochReport[]) => r.map(({ trainLoss, valLoss, metrics }) => ({ trainLoss, valLoss, metrics }));
    expect(losses(b.reports)).toEqual(losses(a.reports));
    const c = run({ ...config, seed: 2 }, data);
    expect(bytesOf(c.result.model.params)).not.toEqual(bytesOf(a.result.model.params));
  });

  it("uses seed 0 when none is given", () => {
    const data = regressionData();
    const a = run({ ...regressionConfig({ epochs: 1 }), seed: undefined }, data);
    const b = run(regressionConfig({ epochs: 1, seed: 0 }), data);
    expect(bytesOf(a.result.model.params)).toEqual(bytesOf(b.result.model.params));
  });

  it("draws initial weights from their own stream: shuffling does not change them", () => {
    const data = regressionData();
    const stopAtOnce = () => true; // cancelled before the first batch: the model is as initialised
    const shuffled = run(regressionConfig({ shuffle: true }), data, stopAtOnce).result.model;
    const ordered = run(regressionConfig({ shuffle: false }), data, stopAtOnce).result.model;
    expect(bytesOf(ordered.params)).toEqual(bytesOf(shuffled.params));
    expect(bytesOf(buildModel(regressionConfig().model, 4, { seed: 1 }).params)).toEqual(bytesOf(shuffled.params));
    // ...while shuffling does change the training itself.
    const a = run(regressionConfig({ epochs: 1, shuffle: true }), data).result.model;
    const b = run(regressionConfig({ epochs: 1, shuffle: false }), data).result.model;
    expect(bytesOf(a.params)).not.toEqual(bytesOf(b.params));
  });

  it("reports each epoch fully, and marks the best by validation loss", () => {
    const { reports, result } = run(regressionConfig({ epochs: 6 }), regressionData());
    let best = Infinity;
    let bestEpoch = 0;
    for (const r of reports) {
      expect(r.lr).toBe(0.02);
      expect(r.durationMs).toBeGreaterThanOrEqual(0);
      expect(r.samplesPerSec).toBeGreaterThan(0);
      expect(Number.isFinite(r.samplesPerSec)).toBe(true);
      expect(JSON.parse(JSON.stringify(r))).toEqual(r); // crosses threads and goes to Postgres as JSON
      expect(r.isBest).toBe(r.valLoss! < best);
      if (r.valLoss! < best) [best, bestEpoch] = [r.valLoss!, r.epoch];
    }
    expect(result.bestEpoch).toBe(bestEpoch);
    expect(result.bestValLoss).toBe(best);
  });

  it("weights the train loss by batch size, so a partial last batch counts by its rows", () => {
    // One epoch, no shuffle, momentum 0 and lr tiny: the loss is ~ the initial model's loss on
    // every row, whatever the batching. 300 rows in batches of 64, 64, 64, 64 and 44.
    const data = regressionData();
    const tiny = { optimizer: { type: "sgd" as const, lr: 1e-9, momentum: 0, nesterov: false, weight_decay: 0 }, epochs: 1, shuffle: false };
    const uneven = run(regressionConfig({ ...tiny, batch_size: 64 }), data).reports[0].trainLoss;
    const single = run(regressionConfig({ ...tiny, batch_size: 300 }), data).reports[0].trainLoss;
    expect(uneven).toBeCloseTo(single, 5);
  });

  it("without a validation set, reports metrics on the training set and ranks by train loss", () => {
    const data = regressionData();
    const { reports, result } = run(regressionConfig({ epochs: 4 }), { ...data, val: null });
    for (const r of reports) {
      expect(r.valLoss).toBeNull();
      expect(Object.keys(r.metrics).sort()).toEqual(["mae", "rmse"]);
    }
    expect(reports[0].isBest).toBe(true);
    expect(result.bestValLoss).toBeNull();
    const minTrain = Math.min(...reports.map((r) => r.trainLoss));
    expect(reports[result.bestEpoch - 1].trainLoss).toBe(minTrain);
  });

  it("stops between batches when asked, with stopReason cancelled", () => {
    let polls = 0;
    // 300 training rows in batches of 16 = 19 batches per epoch; stop during the third epoch.
    const { reports, result } = run(regressionConfig({ epochs: 10 }), regressionData(), () => ++polls > 45);
    expect(result.stopReason).toBe("cancelled");
    expect(result.epochs).toBe(2);
    expect(reports).toHaveLength(2);
    expect(polls).toBe(46);
  });

  it("throws diverged when the loss blows up", () => {
    const config = regressionConfig({ optimizer: { type: "sgd", lr: 50, momentum: 0.9, nesterov: false, weight_decay: 0 } });
    let error: unknown;
    try {
      run(config, regressionData());
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TrainerError);
    expect((error as TrainerError).code).toBe("diverged");
    expect((error as TrainerError).message).toMatch(/epoch \d+, batch \d+.*learning rate \(50\) is probably too high/);
    // It crosses the thread boundary as plain data.
    expect(JSON.parse(JSON.stringify(error))).toEqual({ code: "diverged", message: (error as TrainerError).message });
  });

  it("rejects data that does not fit the config", () => {
    const data = regressionData();
    const expectMismatch = (fn: () => unknown, pattern: RegExp) => {
      expect(fn).toThrow(pattern);
      expect(fn).toThrow(TrainerError);
    };
    expectMismatch(() => run(makeConfig({ model: { layers: [{ type: "dense", units: 2 }] }, loss: "cross_entropy" }), data), /does not suit/);
    const badLabels: TrainSet = { ...threeBlobs(30, 1), y: new Float32Array(30).fill(3) };
    const ce = makeConfig({ model: { layers: [{ type: "dense", units: 3 }] }, loss: "cross_entropy" });
    expectMismatch(() => run(ce, { train: badLabels, val: null, task: "classification" }), /label 3.*3 classes/);
    const narrowVal: TrainSet = { x: new Float32Array(3), y: new Float32Array(1), rows: 1, inputWidth: 3, targetWidth: 1 };
    expectMismatch(() => run(regressionConfig(), { ...data, val: narrowVal }), /validation set has 3 inputs/);
    const ragged: TrainSet = { ...data.train, rows: data.train.rows + 1 };
    expectMismatch(() => run(regressionConfig(), { ...data, train: ragged }), /do not match its shape/);
  });
});
