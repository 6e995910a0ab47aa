// The training loop: synchronous, pure, reporting through callbacks. It runs on a worker thread;
// the worker turns each EpochReport into a metrics row, events and checkpoints.
//
// One epoch: a seeded permutation of the training rows, mini-batches (augmented when the config
// says so), forward, loss (the batch mean), backward, one optimizer step at the schedule's learning
// rate. Then, every `validate_every` epochs and after the last, validation in inference mode, which
// feeds the best-epoch tracking, reduce_on_plateau, early stopping and the overfitting watch.
import { createAugmenter } from "./augment.js";
import type { EarlyStoppingSpec, JobConfig } from "./config.js";
import { assertTrainSet, gatherRows, type TrainSet } from "./data.js";
import { TrainerError } from "./errors.js";
import { evaluate, type Task } from "./evaluate.js";
import { createLoss, type Loss } from "./losses.js";
import { buildModel, type Model } from "./model.js";
import type { NamedTensor } from "./layers/layer.js";
import type { Floats } from "./kernels.js";
import { createOptimizer, type OptimizerState } from "./optimizers/optimizer.js";
import { Rng, RngStream, shuffleInPlace, type RngState } from "./rng.js";
import { createSchedule, resolveMode, type ScheduleState } from "./schedules.js";
import type { Monitor } from "./schema/schedule.js";
import { allocFloat32 } from "./wasm/arena.js";
import { createGradientPass } from "./data-parallel.js";
import { parallelExecutor } from "./parallel.js";

/** The augmentation stream of a job seed (next to init, shuffle, split and dropout). */
const AUGMENT_STREAM = 4;
/** Validations in a row with validation loss rising and training loss falling before we say so. */
export const OVERFIT_WINDOW = 3;

export interface TrainData {
  train: TrainSet;
  /** null: no held-out data; validation metrics are then measured on the training set. */
  val: TrainSet | null;
  task: Task;
  /** Weights (and batchnorm statistics) to start from instead of the seeded initialisation, as
   *  exported or decoded from safetensors; a resume's snapshot takes precedence. */
  init?: Parameters<Model["importTensors"]>[0];
}

export interface EpochReport {
  /** 1-based. */
  epoch: number;
  /** Sample-weighted mean of the epoch's batch losses (measured while the weights moved). */
  trainLoss: number;
  /** Mean loss over the validation set in inference mode; null when this epoch did not validate
   *  (validate_every) or there is no validation set. */
  valLoss: number | null;
  /** The learning rate of the epoch's last step (what the optimizer actually used). */
  lr: number;
  /** classification: { accuracy, top5_accuracy when > 5 classes }; regression: { mae, rmse }. On
   *  the validation set (or the training set when there is none); {} when not validated. */
  metrics: Record<string, number>;
  /** The whole epoch, training and evaluation. */
  durationMs: number;
  /** Training rows per second of the training part of the epoch. */
  samplesPerSec: number;
  /** This epoch validated and its validation loss (training loss without a validation set) is
   *  strictly lower than every earlier one. */
  isBest: boolean;
  /** Set once, on the epoch where validation loss had risen for OVERFIT_WINDOW validations while
   *  training loss fell: the epoch of the lowest validation loss before the rise. */
  overfittingSince?: number;
  /** Set on the first epoch of a run (a resumed run too): the threads it trains on. */
  threads?: TrainingThreads;
}

/** How a run uses its threads: `rows`, each batch's rows shared out (data-parallel.ts); `kernels`,
 *  the large products and convolutions split (models with dropout or batchnorm, models whose batch
 *  uses each parameter too few times, and models too small to share out); `none` on one thread. */
export interface TrainingThreads {
  count: number;
  sharedBy: "rows" | "kernels" | "none";
}

/** Everything needed to continue a run exactly where it stopped (at an epoch boundary). */
/**
 * How a snapshot lays out values one per parameter (the optimizer's state, the early-stopping copy
 * of the weights): in the model's params layout, which is, since layout 2, PyTorch's for dense
 * weights ([units, in]); layout 1 (snapshots without `layout`) had them [in, units]. A snapshot of
 * layout 1 is converted when a run resumes from it.
 */
export const SNAPSHOT_LAYOUT = 2;

export interface TrainerSnapshot {
  /** SNAPSHOT_LAYOUT when written; absent in snapshots of layout 1. */
  layout?: number;
  /** Epochs completed. */
  epoch: number;
  /** Optimizer steps taken. */
  step: number;
  /** Parameters and non-trainable buffers (batchnorm statistics), as exported. */
  tensors: NamedTensor[];
  optimizer: OptimizerState;
  schedule: ScheduleState;
  rng: { shuffle: RngState; augment: RngState; model: RngState };
  tracking: TrackingState;
}

export interface TrainHooks {
  /** Called after every epoch; `model` holds that epoch's weights (export them now to keep them).
   *  `snapshot()` captures the full training state for a checkpoint. */
  onEpoch(report: EpochReport, model: Model, snapshot: () => TrainerSnapshot): void;
  /** Polled between batches; returning true ends training with stopReason "cancelled". */
  shouldStop?(): boolean;
}

export interface TrainResult {
  /** Epochs completed. */
  epochs: number;
  stopReason: "max_epochs" | "early_stopping" | "cancelled";
  /** The epoch whose report had isBest last; 0 if none. */
  bestEpoch: number;
  bestValLoss: number | null;
  /** With early stopping and restore_best_weights: the epoch whose weights the model now holds. */
  restoredEpoch: number | null;
  /** The model as training left it: the last weights, or the restored best ones. */
  model: Model;
}

interface TrackingState {
  best: number;
  bestEpoch: number;
  bestValLoss: number | null;
  early: { best: number; bestEpoch: number; wait: number; weights: { params: Floats; buffers: Floats } | null } | null;
  /** The last OVERFIT_WINDOW + 1 validations: [epoch, trainLoss, valLoss]. */
  history: [number, number, number][];
  overfitReported: boolean;
}

export function train(config: JobConfig, data: TrainData, hooks: TrainHooks, resume?: TrainerSnapshot): TrainResult {
  const seed = config.seed ?? 0;
  const { train: trainSet, val, task } = data;
  const loss = createLoss(config.loss);
  const model = buildModel(config.model, trainSet.inputWidth, { seed, foldOutput: foldFor(config, loss) });
  checkData(data, loss, model);
  const optimizer = createOptimizer(config.optimizer, model);
  const rows = trainSet.rows;
  // No set needs buffers bigger than itself (a batch_size of 65536 on 100 rows allocates 100).
  const batchSize = Math.min(config.batch_size, Math.max(rows, val?.rows ?? 0));
  const stepsPerEpoch = Math.ceil(rows / batchSize);
  const schedule = createSchedule(config.lr_schedule, { baseLr: config.optimizer.lr, epochs: config.epochs, stepsPerEpoch });
  // Separate streams, so that turning shuffling or augmentation on or off changes nothing else.
  const shuffleRng = new Rng(seed, RngStream.shuffle);
  const augmentRng = new Rng(seed, AUGMENT_STREAM);
  const augmenter = createAugmenter(config.augmentation, model.shapes.input, augmentRng);
  const early = config.early_stopping ? earlyStopping(config.early_stopping) : null;

  // Every buffer is allocated here, once; the steps below allocate nothing.
  model.reserve(batchSize);
  // In the kernels' arena (as the model's own buffers), so they run on the batch in place.
  const scratch = {
    x: allocFloat32(batchSize * trainSet.inputWidth),
    y: allocFloat32(batchSize * trainSet.targetWidth),
  };
  const lossGrad = allocFloat32(batchSize * model.outputWidth);
  const order = new Uint32Array(rows);
  // Forward, loss and backward: on this thread, or shared out by rows over the job's threads
  // (data-parallel.ts). The replicas it may build share the model's parameters, so resuming or
  // importing weights below reaches them too.
  const pass = createGradientPass(model, loss, config.loss, lossGrad, batchSize);
  const helpers = parallelExecutor()?.threads ?? 1;
  const threads: TrainingThreads =
    pass.threads > 1 ? { count: pass.threads, sharedBy: "rows" } : { count: helpers, sharedBy: helpers > 1 ? "kernels" : "none" };

  let tracking: TrackingState = {
    best: Infinity,
    bestEpoch: 0,
    bestValLoss: null,
    early: early ? { best: early.worst, bestEpoch: 0, wait: 0, weights: null } : null,
    history: [],
    overfitReported: false,
  };
  let firstEpoch = 1;
  let step = 0;
  if (resume) {
    const legacy = (resume.layout ?? 1) === 1;
    model.importTensors(resume.tensors);
    optimizer.importState(legacy ? optimizerStateFromLayout1(model, resume.optimizer) : resume.optimizer);
    schedule.importState(resume.schedule);
    shuffleRng.setState(resume.rng.shuffle);
    augmentRng.setState(resume.rng.augment);
    model.setRngState(resume.rng.model);
    tracking = structuredClone(resume.tracking);
    const kept = tracking.early?.weights;
    if (legacy && kept && kept.params.length === model.params.length) model.paramsFromLayout1(kept.params);
    firstEpoch = resume.epoch + 1;
    step = resume.step;
  } else if (data.init) {
    model.importTensors(data.init);
  }
  const snapshotAt = (epoch: number) => (): TrainerSnapshot => ({
    layout: SNAPSHOT_LAYOUT,
    epoch,
    step,
    tensors: model.exportTensors(),
    optimizer: optimizer.exportState(),
    schedule: schedule.exportState(),
    rng: { shuffle: shuffleRng.getState(), augment: augmentRng.getState(), model: model.getRngState() },
    tracking: structuredClone(tracking),
  });
  const result = (epochs: number, stopReason: TrainResult["stopReason"], restoredEpoch: number | null = null): TrainResult => ({
    epochs,
    stopReason,
    bestEpoch: tracking.bestEpoch,
    bestValLoss: tracking.bestValLoss,
    restoredEpoch,
    model,
  });

  for (let epoch = firstEpoch; epoch <= config.epochs; epoch++) {
    const started = performance.now();
    // A fresh permutation of 0..rows-1 each epoch (as PyTorch's RandomSampler), so that an epoch's
    // order depends only on the RNG state at its start, which a snapshot stores.
    for (let i = 0; i < rows; i++) order[i] = i;
    if (config.shuffle) shuffleInPlace(order, shuffleRng);

    let lossSum = 0;
    let lr = 0;
    for (let start = 0, batch = 1; start < rows; start += batchSize, batch++) {
      if (hooks.shouldStop?.()) return result(epoch - 1, "cancelled");
      const n = Math.min(batchSize, rows - start);
      gatherRows(trainSet.x, trainSet.inputWidth, order, start, n, scratch.x);
      gatherRows(trainSet.y, trainSet.targetWidth, order, start, n, scratch.y);
      augmenter?.apply(scratch.x, n);
      const batchLoss = pass.run(scratch.x, scratch.y, n);
      lr = schedule.lr(step, epoch - 1);
      if (!Number.isFinite(batchLoss)) {
        throw new TrainerError(
          "diverged",
          `Training diverged at epoch ${epoch}, batch ${batch}: the loss became ${batchLoss}. ` +
            `The learning rate (${lr}) is probably too high: try a smaller lr, gradient clipping (clip_norm) or a warm-up.`,
        );
      }
      optimizer.step(lr);
      step++;
      lossSum += batchLoss * n;
    }
    const trainMs = performance.now() - started;
    const trainLoss = lossSum / rows;

    const validates = epoch % config.validate_every === 0 || epoch === config.epochs;
    let valLoss: number | null = null;
    let metrics: Record<string, number> = {};
    let isBest = false;
    let overfittingSince: number | undefined;
    let stopEarly = false;
    if (validates) {
      const evaluation = evaluate(model, val ?? trainSet, loss, task, batchSize, scratch);
      metrics = evaluation.metrics;
      valLoss = val ? evaluation.loss : null;
      if (valLoss !== null && !Number.isFinite(valLoss)) {
        throw new TrainerError(
          "diverged",
          `Training diverged at epoch ${epoch}: the validation loss became ${valLoss}. The learning rate (${lr}) is probably too high.`,
        );
      }
      const monitored = monitorValues(trainLoss, val ? evaluation.loss : null, metrics);
      schedule.observe(epoch - 1, monitored);

      const tracked = valLoss ?? trainLoss;
      if (tracked < tracking.best) {
        tracking.best = tracked;
        tracking.bestEpoch = epoch;
        tracking.bestValLoss = valLoss;
        isBest = true;
      }
      overfittingSince = watchOverfitting(tracking, epoch, trainLoss, valLoss);
      if (early && tracking.early) stopEarly = early.update(tracking.early, epoch, monitored, model);
    }

    hooks.onEpoch(
      {
        epoch,
        trainLoss,
        valLoss,
        lr,
        metrics,
        durationMs: performance.now() - started,
        // Guard against a zero timer reading on tiny sets (JSON has no Infinity).
        samplesPerSec: rows / (Math.max(trainMs, 1e-3) / 1000),
        isBest,
        ...(overfittingSince !== undefined ? { overfittingSince } : {}),
        ...(epoch === firstEpoch ? { threads } : {}),
      },
      model,
      snapshotAt(epoch),
    );
    if (stopEarly) {
      const restored = early!.restore(tracking.early!, model);
      return result(epoch, "early_stopping", restored);
    }
  }
  return result(config.epochs, "max_epochs");
}

/** The values `monitor` fields may name, from one validation. */
function monitorValues(trainLoss: number, valLoss: number | null, metrics: Record<string, number>): Partial<Record<Monitor, number>> {
  const values: Partial<Record<Monitor, number>> = { train_loss: trainLoss, val_loss: valLoss ?? trainLoss };
  for (const [name, value] of Object.entries(metrics)) values[`val_${name}` as Monitor] = value;
  return values;
}

/**
 * Overfitting: over the last OVERFIT_WINDOW validations, validation loss rose every time while
 * training loss fell every time. Reported once per run, naming the epoch before the rise began.
 */
function watchOverfitting(t: TrackingState, epoch: number, trainLoss: number, valLoss: number | null): number | undefined {
  if (valLoss === null || t.overfitReported) return undefined;
  t.history.push([epoch, trainLoss, valLoss]);
  if (t.history.length > OVERFIT_WINDOW + 1) t.history.shift();
  if (t.history.length < OVERFIT_WINDOW + 1) return undefined;
  for (let i = 1; i < t.history.length; i++) {
    const [, prevTrain, prevVal] = t.history[i - 1];
    const [, train, value] = t.history[i];
    if (!(value > prevVal && train < prevTrain)) return undefined;
  }
  t.overfitReported = true;
  return t.history[0][0];
}

/** Early stopping as Keras's callback: stop after `patience` validations without an improvement
 *  larger than `min_delta`; optionally go back to the best weights. */
function earlyStopping(spec: EarlyStoppingSpec) {
  const mode = resolveMode(spec.monitor, spec.mode);
  const better = (value: number, best: number) => (mode === "min" ? value < best - spec.min_delta : value > best + spec.min_delta);
  return {
    worst: mode === "min" ? Infinity : -Infinity,
    /** Returns true when training should stop after this validation. */
    update(state: NonNullable<TrackingState["early"]>, epoch: number, values: Partial<Record<Monitor, number>>, model: Model): boolean {
      const value = values[spec.monitor];
      if (value === undefined) return false;
      if (better(value, state.best)) {
        state.best = value;
        state.bestEpoch = epoch;
        state.wait = 0;
        if (spec.restore_best_weights) state.weights = exportWeights(model);
        return false;
      }
      state.wait++;
      return state.wait >= spec.patience;
    },
    /** Puts the best weights back if asked; returns the epoch they came from, or null. */
    restore(state: NonNullable<TrackingState["early"]>, model: Model): number | null {
      if (!spec.restore_best_weights || state.weights === null) return null;
      importWeights(model, state.weights);
      return state.bestEpoch;
    },
  };
}

/** A copy of an optimizer state of snapshot layout 1 in today's layout (each buffer one value per
 *  parameter; a buffer of another length is left for importState to reject). */
function optimizerStateFromLayout1(model: Model, state: OptimizerState): OptimizerState {
  const tensors: OptimizerState["tensors"] = {};
  for (const [name, values] of Object.entries(state.tensors)) {
    const copy = values.slice();
    if (copy.length === model.params.length) model.paramsFromLayout1(copy);
    tensors[name] = copy;
  }
  return { ...state, tensors };
}

/** Copies of the parameters and non-trainable buffers (batchnorm statistics). */
function exportWeights(model: Model): { params: Floats; buffers: Floats } {
  return { params: model.params.slice(), buffers: model.buffers.slice() };
}

function importWeights(model: Model, weights: { params: Floats; buffers: Floats }): void {
  model.params.set(weights.params);
  model.buffers.set(weights.buffers);
}

/** The loss folds the model's last softmax or sigmoid into itself when the model ends with it. */
function foldFor(config: JobConfig, loss: Loss): "softmax" | "sigmoid" | undefined {
  if (!loss.foldsOutput) return undefined;
  for (let i = config.model.layers.length - 1; i >= 0; i--) {
    const layer = config.model.layers[i];
    if ("activation" in layer) return layer.activation === loss.foldsOutput ? loss.foldsOutput : undefined;
  }
  return undefined;
}

/** The data must fit the model and the loss; caught here so a bad pairing fails fast and clearly. */
function checkData(data: TrainData, loss: Loss, model: Model): void {
  if (data.task !== loss.task) {
    throw new TrainerError("dataset_mismatch", `The loss ${loss.name} does not suit a ${data.task} dataset.`);
  }
  const classification = data.task === "classification";
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
    for (let i = 0; i < set.y.length; i++) {
      const t = set.y[i];
      const ok = classification
        ? Number.isInteger(t) && t >= 0 && t < model.outputWidth
        : loss.name !== "binary_cross_entropy" || (t >= 0 && t <= 1);
      if (!ok) {
        const row = Math.floor(i / set.targetWidth);
        throw new TrainerError(
          "dataset_mismatch",
          classification
            ? `Row ${row} of the ${what} set has label ${t}; the model has ${model.outputWidth} classes (0 to ${model.outputWidth - 1}).`
            : `Row ${row} of the ${what} set has target ${t}; binary_cross_entropy needs targets between 0 and 1.`,
        );
      }
    }
  }
}
