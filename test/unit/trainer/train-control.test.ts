// The training loop's control features: schedules as reported, validate_every, early stopping
// with restored weights, the overfitting watch, inference mode at validation, and resuming from a
// snapshot bit for bit.
import { describe, expect, it } from "vitest";
import {
  splitValidation,
  train,
  type EpochReport,
  type JobConfig,
  type JobConfigInput,
  type TrainData,
  type TrainerSnapshot,
  type TrainSet,
} from "../../../src/trainer/index.js";
import { bytesOf, linearRegression, makeConfig, threeBlobs } from "./helpers.js";

function regression(over: Partial<JobConfigInput> = {}): JobConfig {
  return makeConfig({
    model: { layers: [{ type: "dense", units: 16, activation: "tanh" }, { type: "dense", units: 1 }] },
    loss: "mse",
    optimizer: { type: "sgd", lr: 0.02, momentum: 0.9 },
    epochs: 12,
    batch_size: 16,
    seed: 1,
    ...over,
  });
}

const regressionData = (): TrainData => ({ ...splitValidation(linearRegression(400, 5), 0.25, 1), task: "regression" });

function run(config: JobConfig, data: TrainData) {
  const reports: EpochReport[] = [];
  const snapshots: TrainerSnapshot[] = [];
  const result = train(config, data, {
    onEpoch: (report, _model, snapshot) => {
      reports.push(report);
      snapshots.push(snapshot());
    },
  });
  return { reports, snapshots, result };
}

/** 8x8 one-channel images: a bright left half (class 0) or right half (class 1), with noise. */
function halves(rows: number, seed: number): TrainSet {
  const blobs = threeBlobs(rows, seed); // only for its seeded noise source
  const x = new Float32Array(rows * 64);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const label = r % 2;
    y[r] = label;
    for (let i = 0; i < 64; i++) {
      const col = i % 8;
      const bright = label === 0 ? col < 4 : col >= 4;
      x[r * 64 + i] = (bright ? 1 : 0) + 0.1 * blobs.x[(r * 2 + (i % 2)) % blobs.x.length];
    }
  }
  return { x, y, rows, inputWidth: 64, targetWidth: 1 };
}

describe("the learning rate a schedule sets is the one reported", () => {
  it("step decay halves the rate every 3 epochs", () => {
    const { reports } = run(regression({ lr_schedule: { type: "step", step_size: 3, gamma: 0.5, warmup_epochs: 0 } }), regressionData());
    // epochs 1-3: 0.02, 4-6: 0.01, 7-9: 0.005, 10-12: 0.0025
    expect(reports.map((r) => r.lr)).toEqual([0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025, 0.0025]);
  });

  it("warm-up ramps per step: the first epoch's last step reaches lr/warmup_epochs", () => {
    const { reports } = run(regression({ lr_schedule: { type: "constant", warmup_epochs: 2 } }), regressionData());
    // 300 training rows / batch 16 = 19 steps per epoch; 38 warm-up steps: step k uses lr*(k+1)/38.
    expect(reports[0].lr).toBeCloseTo((0.02 * 19) / 38, 12);
    expect(reports[1].lr).toBeCloseTo(0.02, 12);
    expect(reports[5].lr).toBe(0.02);
  });
});

describe("validate_every", () => {
  it("validates every N epochs and after the last; other epochs report no validation", () => {
    const { reports } = run(regression({ epochs: 7, validate_every: 3 }), regressionData());
    expect(reports.map((r) => r.valLoss !== null)).toEqual([false, false, true, false, false, true, true]);
    expect(reports[0].metrics).toEqual({});
    expect(reports[0].isBest).toBe(false);
    expect(reports[2].isBest).toBe(true);
  });
});

describe("early stopping", () => {
  it("stops after `patience` validations without improvement and restores the best weights exactly", () => {
    // A high learning rate without momentum on a tiny set: validation loss bottoms out early.
    const config = regression({
      epochs: 200,
      optimizer: { type: "sgd", lr: 0.05, momentum: 0, nesterov: false, weight_decay: 0 },
      early_stopping: { monitor: "val_loss", patience: 3, min_delta: 0.001, mode: "auto", restore_best_weights: true },
    });
    const { reports, snapshots, result } = run(config, regressionData());
    expect(result.stopReason).toBe("early_stopping");
    expect(result.epochs).toBeLessThan(200);
    const best = result.restoredEpoch!;
    expect(result.epochs - best).toBe(3);
    // The best epoch is the last one that beat all before it by more than min_delta.
    let bestSoFar = Infinity;
    let expected = 0;
    for (const r of reports) if (r.valLoss! < bestSoFar - 0.001) [bestSoFar, expected] = [r.valLoss!, r.epoch];
    expect(best).toBe(expected);
    const restored = result.model.exportTensors();
    const atBest = snapshots[best - 1].tensors;
    expect(restored.map((t) => bytesOf(t.data))).toEqual(atBest.map((t) => bytesOf(t.data)));
  });

  it("with restore_best_weights false keeps the last weights; mode max on accuracy", () => {
    const data: TrainData = { ...splitValidation(threeBlobs(300, 2), 0.3, 2), task: "classification" };
    const config = makeConfig({
      model: { layers: [{ type: "dense", units: 8, activation: "relu" }, { type: "dense", units: 3 }] },
      loss: "cross_entropy",
      optimizer: { type: "sgd", lr: 0.05 },
      epochs: 300,
      seed: 4,
      early_stopping: { monitor: "val_accuracy", patience: 2, restore_best_weights: false },
    });
    const { snapshots, result } = run(config, data);
    expect(result.stopReason).toBe("early_stopping");
    expect(result.restoredEpoch).toBeNull();
    const last = snapshots[snapshots.length - 1].tensors;
    expect(result.model.exportTensors().map((t) => bytesOf(t.data))).toEqual(last.map((t) => bytesOf(t.data)));
  });
});

describe("the overfitting watch", () => {
  it("reports once, naming the epoch before validation loss began to rise while training loss fell", () => {
    // 24 noisy rows, a wide net and many epochs: it memorises the training rows.
    const set = linearRegression(30, 8, 2.0);
    const data: TrainData = { ...splitValidation(set, 0.2, 3), task: "regression" };
    const config = regression({
      model: { layers: [{ type: "dense", units: 64, activation: "tanh" }, { type: "dense", units: 64, activation: "tanh" }, { type: "dense", units: 1 }] },
      optimizer: { type: "adam", lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0 },
      epochs: 300,
      batch_size: 8,
    });
    const { reports } = run(config, data);
    const flagged = reports.filter((r) => r.overfittingSince !== undefined);
    expect(flagged).toHaveLength(1);
    const at = flagged[0].epoch;
    const since = flagged[0].overfittingSince!;
    expect(at - since).toBe(3);
    for (let e = since + 1; e <= at; e++) {
      expect(reports[e - 1].valLoss!).toBeGreaterThan(reports[e - 2].valLoss!);
      expect(reports[e - 1].trainLoss).toBeLessThan(reports[e - 2].trainLoss);
    }
  });
});

describe("inference mode at validation", () => {
  it("dropout and augmentation change training but never the validation of the same weights", () => {
    const train1 = halves(64, 1);
    const val = halves(32, 2);
    const base = makeConfig({
      model: {
        input_shape: [1, 8, 8],
        layers: [{ type: "flatten" }, { type: "dense", units: 8, activation: "relu" }, { type: "dropout", rate: 0.5 }, { type: "dense", units: 2 }],
      },
      loss: "cross_entropy",
      optimizer: { type: "sgd", lr: 0.05 },
      epochs: 1,
      seed: 9,
      augmentation: { horizontal_flip: 0.5, noise_std: 0.3 },
    });
    // Validation after epoch 1 equals an independent inference-mode evaluation of the same weights.
    let seen: { valLoss: number; predicted: Float32Array } | null = null;
    train(base, { train: train1, val, task: "classification" }, {
      onEpoch: (report, model) => {
        const probs = model.predict(val.x, val.rows);
        seen = { valLoss: report.valLoss!, predicted: probs };
      },
    });
    const { valLoss, predicted } = seen!;
    let loss = 0;
    for (let r = 0; r < val.rows; r++) {
      // A linear last layer: predict returns logits for cross_entropy without a folded softmax.
      const a = predicted[r * 2];
      const b = predicted[r * 2 + 1];
      const m = Math.max(a, b);
      const logSum = m + Math.log(Math.exp(a - m) + Math.exp(b - m));
      loss += logSum - (val.y[r] === 0 ? a : b);
    }
    expect(valLoss).toBeCloseTo(loss / val.rows, 5);
  });
});

describe("resuming from a snapshot", () => {
  it("continues bit for bit: same reports and weights as a run that never stopped", () => {
    const set = halves(96, 3);
    const data: TrainData = { ...splitValidation(set, 0.25, 5), task: "classification" };
    const config = makeConfig({
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
      early_stopping: { patience: 50 },
      augmentation: { horizontal_flip: 0.5, brightness: 0.1, noise_std: 0.05, translate: 1 },
      epochs: 8,
      batch_size: 10,
      seed: 11,
    });
    const whole = run(config, data);
    const resumedReports: EpochReport[] = [];
    const snapshot = structuredClone(whole.snapshots[3]); // after epoch 4
    const resumed = train(config, data, { onEpoch: (r) => resumedReports.push(r) }, snapshot);
    // (Each run says which threads it trains on with its own first epoch: epoch 1, and epoch 5.)
    const strip = ({ threads: _threads, ...r }: EpochReport) => ({ ...r, durationMs: 0, samplesPerSec: 0 });
    expect(resumedReports.map(strip)).toEqual(whole.reports.slice(4).map(strip));
    expect(whole.reports.map((r) => r.threads)).toEqual([{ count: 1, sharedBy: "none" }, ...Array(7).fill(undefined)]);
    expect(resumedReports.map((r) => r.threads)).toEqual([{ count: 1, sharedBy: "none" }, ...Array(3).fill(undefined)]);
    expect(resumed.model.exportTensors().map((t) => bytesOf(t.data))).toEqual(whole.result.model.exportTensors().map((t) => bytesOf(t.data)));
  });
});

describe("resuming from a snapshot of layout 1 (written when dense weights were stored [in, units])", () => {
  /** Rewrites one-per-parameter values of the regression net (4 inputs, dense 16, dense 1) from
   *  today's layout to layout 1's: the first weight matrix [16, 4] as [4, 16]; the rest stays (the
   *  second, [1, 16], has the same order either way). */
  function toLayout1(values: Float32Array): Float32Array {
    const out = values.slice();
    for (let o = 0; o < 16; o++) for (let i = 0; i < 4; i++) out[i * 16 + o] = values[o * 4 + i];
    return out;
  }

  it("converts the optimizer's state and the kept best weights, and continues bit for bit", () => {
    const config = regression({ early_stopping: { patience: 50, restore_best_weights: true }, epochs: 8 });
    const data = regressionData();
    const whole = run(config, data);
    const current = structuredClone(whole.snapshots[3]);
    expect(current.layout).toBe(2);
    const kept = current.tracking.early?.weights;
    expect(kept).toBeTruthy();
    const legacy = structuredClone(current);
    delete legacy.layout;
    const velocity = current.optimizer.tensors.velocity as Float32Array;
    legacy.optimizer.tensors.velocity = toLayout1(velocity);
    legacy.tracking.early!.weights!.params = toLayout1(kept!.params as Float32Array);
    // The conversion has something to do: the first matrix's values are not symmetric in place.
    expect(bytesOf(legacy.optimizer.tensors.velocity)).not.toEqual(bytesOf(velocity));

    const resumedReports: EpochReport[] = [];
    const resumed = train(config, data, { onEpoch: (r) => resumedReports.push(r) }, legacy);
    const strip = ({ threads: _threads, ...r }: EpochReport) => ({ ...r, durationMs: 0, samplesPerSec: 0 });
    expect(resumedReports.map(strip)).toEqual(whole.reports.slice(4).map(strip));
    expect(resumed.model.exportTensors().map((t) => bytesOf(t.data))).toEqual(whole.result.model.exportTensors().map((t) => bytesOf(t.data)));
    // Without the conversion the same run would go elsewhere: the momentum would be scrambled.
    const unconverted = structuredClone(legacy);
    unconverted.layout = 2;
    const wrong = train(config, data, { onEpoch: () => {} }, unconverted);
    expect(wrong.model.exportTensors().map((t) => bytesOf(t.data))).not.toEqual(whole.result.model.exportTensors().map((t) => bytesOf(t.data)));
  });
});
