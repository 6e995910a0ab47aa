// The training loop: synchronous, pure, reporting through callbacks. It runs on a worker thread;
// the worker turns each EpochReport into a metrics row, an event and maybe a checkpoint.
import type { JobConfig } from "./config.js";
import { assertTrainSet, gatherRows, type TrainSet } from "./data.js";
import { TrainerError } from "./errors.js";
import { evaluate, type Task } from "./evaluate.js";
import { losses, type Loss } from "./losses.js";
import { buildModel, type Model } from "./model.js";
import { createOptimizer } from "./optimizers/optimizer.js";
import { Rng, RngStream, shuffleInPlace } from "./rng.js";

export interface TrainData {
  train: TrainSet;
  /** null: no held-out data; metrics are then computed on the training set. */
  val: TrainSet | null;
  task: Task;
}

export interface EpochReport {
  /** 1-based. */
  epoch: number;
  /** Sample-weighted mean of the epoch's batch losses (measured while the weights moved). */
  trainLoss: number;
  /** Mean loss over the validation set in inference mode; null without a validation set. */
  valLoss: number | null;
  lr: number;
  /** classification: { accuracy }; regression: { mae, rmse }. On the validation set, or on the
   *  training set (inference mode) when there is none. */
  metrics: Record<string, number>;
  /** The whole epoch, training and evaluation. */
  durationMs: number;
  /** Training rows per second of the training part of the epoch. */
  samplesPerSec: number;
  /** The monitored loss (val, else train) is strictly lower than in every earlier epoch. */
  isBest: boolean;
}

export interface TrainHooks {
  /** Called after every epoch; `model` holds that epoch's weights (export them now to keep them). */
  onEpoch(report: EpochReport, model: Model): void;
  /** Polled between batches; returning true ends training with stopReason "cancelled". */
  shouldStop?(): boolean;
}

export interface TrainResult {
  /** Epochs completed. */
  epochs: number;
  stopReason: "max_epochs" | "cancelled";
  /** The epoch whose report had isBest last; 0 if no epoch completed. */
  bestEpoch: number;
  bestValLoss: number | null;
  /** The model as training left it (the last weights, not the best). */
  model: Model;
}

export function train(config: JobConfig, data: TrainData, hooks: TrainHooks): TrainResult {
  const seed = config.seed ?? 0;
  const { train: trainSet, val, task } = data;
  const loss = losses[config.loss];
  const model = buildModel(config.model, trainSet.inputWidth, { seed });
  checkData(data, loss, model);
  const optimizer = createOptimizer(config.optimizer, model);
  // Its own stream, so that turning shuffling on or off leaves the initial weights alone.
  const shuffleRng = new Rng(seed, RngStream.shuffle);

  // Every buffer is allocated here, once; the steps below allocate nothing.
  const rows = trainSet.rows;
  // No set needs buffers bigger than itself (a batch_size of 65536 on 100 rows allocates 100).
  const batchSize = Math.min(config.batch_size, Math.max(rows, val?.rows ?? 0));
  model.reserve(batchSize);
  const scratch = {
    x: new Float32Array(batchSize * trainSet.inputWidth),
    y: new Float32Array(batchSize * trainSet.targetWidth),
  };
  const lossGrad = new Float32Array(batchSize * model.outputWidth);
  const order = new Uint32Array(rows);

  let best = Infinity;
  let bestEpoch = 0;
  let bestValLoss: number | null = null;
  const result = (epochs: number, stopReason: TrainResult["stopReason"]): TrainResult => ({
    epochs,
    stopReason,
    bestEpoch,
    bestValLoss,
    model,
  });

  for (let epoch = 1; epoch <= config.epochs; epoch++) {
    const started = performance.now();
    // Constant for now; learning-rate schedules will compute it per step here.
    const lr = config.optimizer.lr;

    // A fresh permutation of 0..rows-1 each epoch (as PyTorch's RandomSampler), so that an epoch's
    // order depends only on the RNG state at its start, which a checkpoint can store.
    for (let i = 0; i < rows; i++) order[i] = i;
    if (config.shuffle) shuffleInPlace(order, shuffleRng);

    let lossSum = 0;
    for (let start = 0, batch = 1; start < rows; start += batchSize, batch++) {
      if (hooks.shouldStop?.()) return result(epoch - 1, "cancelled");
      const n = Math.min(batchSize, rows - start);
      gatherRows(trainSet.x, trainSet.inputWidth, order, start, n, scratch.x);
      gatherRows(trainSet.y, trainSet.targetWidth, order, start, n, scratch.y);
      const output = model.forward(scratch.x, n, true);
      const batchLoss = loss.evaluate(output, scratch.y, n, model.outputWidth, lossGrad);
      if (!Number.isFinite(batchLoss)) {
        throw new TrainerError(
          "diverged",
          `Training diverged at epoch ${epoch}, batch ${batch}: the loss became ${batchLoss}. ` +
            `The learning rate (${lr}) may be too high.`,
        );
      }
      model.backward(lossGrad, n);
      optimizer.step(lr);
      lossSum += batchLoss * n;
    }
    const trainMs = performance.now() - started;
    const trainLoss = lossSum / rows;

    const evaluation = evaluate(model, val ?? trainSet, loss, task, batchSize, scratch);
    const valLoss = val ? evaluation.loss : null;
    if (valLoss !== null && !Number.isFinite(valLoss)) {
      throw new TrainerError(
        "diverged",
        `Training diverged at epoch ${epoch}: the validation loss became ${valLoss}. The learning rate (${lr}) may be too high.`,
      );
    }
    const monitored = valLoss ?? trainLoss;
    const isBest = monitored < best;
    if (isBest) {
      best = monitored;
      bestEpoch = epoch;
      bestValLoss = valLoss;
    }
    hooks.onEpoch(
      {
        epoch,
        trainLoss,
        valLoss,
        lr,
        metrics: evaluation.metrics,
        durationMs: performance.now() - started,
        // Guard against a zero timer reading on tiny sets (JSON has no Infinity).
        samplesPerSec: rows / (Math.max(trainMs, 1e-3) / 1000),
        isBest,
      },
      model,
    );
  }
  return result(config.epochs, "max_epochs");
}

/** The data must fit the model and the loss; caught here so a bad pairing fails fast and clearly. */
function checkData(data: TrainData, loss: Loss, model: Model): void {
  const classification = data.task === "classification";
  if (classification !== (loss.name === "cross_entropy")) {
    throw new TrainerError("dataset_mismatch", `The loss ${loss.name} does not suit a ${data.task} dataset.`);
  }
  const targetWidth = loss.targetWidth(model.outputWidth);
  const sets: [string, TrainSet | null][] = [["training", data.train], ["validation", data.val]];
  for (const [what, set] of sets) {
    if (!set) continue;
    assertTrainSet(set, what);
    if (set.inputWidth !== model.inputWidth || set.targetWidth !== targetWidth) {
      throw new TrainerError(
        "dataset_mismatch",
        `The ${what} set has ${set.inputWidth} inputs and ${set.targetWidth} targets per row; ` +
          `the model needs ${model.inputWidth} and ${targetWidth}.`,
      );
    }
    if (classification) {
      for (let r = 0; r < set.rows; r++) {
        const label = set.y[r];
        if (!Number.isInteger(label) || label < 0 || label >= model.outputWidth) {
          throw new TrainerError(
            "dataset_mismatch",
            `Row ${r} of the ${what} set has label ${label}; the model has ${model.outputWidth} classes (0 to ${model.outputWidth - 1}).`,
          );
        }
      }
    }
  }
}
