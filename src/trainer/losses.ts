// Losses, each with its gradient beside it. A batch's loss is a mean, as PyTorch's default
// reduction: the regression losses (mse, mae, huber) and binary_cross_entropy average over every
// output value of the batch, cross_entropy over the batch's samples. The gradient is that of the
// mean, so it already carries the 1/N.
//
// The two cross-entropies take logits and apply their squashing function themselves (softmax,
// sigmoid): fused with the log, it can be computed without overflow and its gradient is simply
// "probability - target". A model whose last layer ends in that function hands the loss its input
// instead (`foldsOutput`).
import type { Floats } from "./kernels.js";
import { lossSpec, type LossConfig, type LossName } from "./schema/loss.js";

/** The kind of dataset a loss trains on. */
export type LossTask = "regression" | "classification";

export interface Loss {
  readonly name: LossName;
  /**
   * The dataset task this loss needs. binary_cross_entropy says "regression": it trains on a
   * regression-type dataset whose target columns hold 0/1 values (one per independent label).
   */
  readonly task: LossTask;
  /**
   * The last-layer activation this loss applies to its input itself, or null. When the model's last
   * layer ends in it, the model passes the loss the pre-activation (logits) instead.
   */
  readonly foldsOutput: "softmax" | "sigmoid" | null;
  /** Target values per row: the output width, or 1 (the class index) for cross_entropy. */
  targetWidth(outputWidth: number): number;
  /**
   * The mean loss of `rows` rows of predictions (`width` values each) against their targets. When
   * `grad` is given, also writes dLoss/dPrediction into its first rows*width values.
   *
   * With `meanRows` (>= rows), these rows are part of a batch of `meanRows` rows shared out between
   * threads: the sum is divided by the whole batch's count instead, and so is every gradient value,
   * which is then the single-thread value bit for bit; the parts' results add up to the batch's loss.
   */
  evaluate(pred: Floats, target: ArrayLike<number>, rows: number, width: number, grad: Floats | null, meanRows?: number): number;
}

const mse: Loss = {
  name: "mse",
  task: "regression",
  foldsOutput: null,
  targetWidth: (width) => width,
  evaluate(pred, target, rows, width, grad, meanRows = rows) {
    const count = rows * width;
    const mean = meanRows * width;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const diff = pred[i] - target[i];
      sum += diff * diff;
      if (grad) grad[i] = (2 * diff) / mean;
    }
    return sum / mean;
  },
};

const mae: Loss = {
  name: "mae",
  task: "regression",
  foldsOutput: null,
  targetWidth: (width) => width,
  evaluate(pred, target, rows, width, grad, meanRows = rows) {
    const count = rows * width;
    const mean = meanRows * width;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const diff = pred[i] - target[i];
      sum += Math.abs(diff);
      // sign(diff) / mean; the subgradient at exactly 0 is 0, as in PyTorch.
      if (grad) grad[i] = diff > 0 ? 1 / mean : diff < 0 ? -1 / mean : 0;
    }
    return sum / mean;
  },
};

/**
 * PyTorch's HuberLoss: 0.5 d² where |d| <= delta, delta (|d| - 0.5 delta) beyond, so it is mse-like
 * near the target and mae-like (robust to outliers) far from it. The two pieces meet with equal
 * value and slope at |d| = delta, so the gradient d (inside) / ±delta (outside) is continuous.
 */
function huber(delta: number): Loss {
  if (!(delta > 0)) throw new Error(`huber: delta must be positive, got ${delta}`);
  return {
    name: "huber",
    task: "regression",
    foldsOutput: null,
    targetWidth: (width) => width,
    evaluate(pred, target, rows, width, grad, meanRows = rows) {
      const count = rows * width;
      const mean = meanRows * width;
      let sum = 0;
      for (let i = 0; i < count; i++) {
        const diff = pred[i] - target[i];
        const abs = Math.abs(diff);
        if (abs <= delta) {
          sum += 0.5 * diff * diff;
          if (grad) grad[i] = diff / mean;
        } else {
          sum += delta * (abs - 0.5 * delta);
          if (grad) grad[i] = (diff > 0 ? delta : -delta) / mean;
        }
      }
      return sum / mean;
    },
  };
}

/** A row's exponentials, from the sum to the gradient (float64, exactly as computed): one
 *  Math.exp per value instead of two. Grown when a wider output comes, else reused. */
let rowExps = new Float64Array(64);

/** Softmax fused with the negative log-likelihood of integer labels: fusing them lets us subtract
 *  each row's max logit before exponentiating (no overflow) and gives the simple gradient
 *  softmax - one_hot. */
const crossEntropy: Loss = {
  name: "cross_entropy",
  task: "classification",
  foldsOutput: "softmax",
  targetWidth: () => 1,
  evaluate(logits, labels, rows, width, grad, meanRows = rows) {
    let sum = 0;
    if (rowExps.length < width) rowExps = new Float64Array(width);
    const exps = rowExps;
    for (let r = 0; r < rows; r++) {
      const row = r * width;
      let max = -Infinity;
      for (let j = 0; j < width; j++) if (logits[row + j] > max) max = logits[row + j];
      let expSum = 0;
      for (let j = 0; j < width; j++) {
        const e = Math.exp(logits[row + j] - max);
        exps[j] = e;
        expSum += e;
      }
      const label = labels[r];
      // -log softmax[label] = log Σ exp(z_j) - z_label
      sum += max + Math.log(expSum) - logits[row + label];
      if (grad) {
        for (let j = 0; j < width; j++) {
          const p = exps[j] / expSum;
          grad[row + j] = (p - (j === label ? 1 : 0)) / meanRows;
        }
      }
    }
    return sum / meanRows;
  },
};

/**
 * Sigmoid fused with the binary cross-entropy of each output against its own target t in [0, 1]
 * (PyTorch's BCEWithLogitsLoss). -t log σ(z) - (1 - t) log(1 - σ(z)) rewritten as
 * max(z, 0) - z t + log(1 + e^-|z|): the exponent is never positive, so nothing overflows and
 * log1p keeps the precision when e^-|z| is tiny. The gradient is σ(z) - t.
 */
const binaryCrossEntropy: Loss = {
  name: "binary_cross_entropy",
  task: "regression",
  foldsOutput: "sigmoid",
  targetWidth: (width) => width,
  evaluate(logits, target, rows, width, grad, meanRows = rows) {
    const count = rows * width;
    const mean = meanRows * width;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const z = logits[i];
      const t = target[i];
      const e = Math.exp(-Math.abs(z)); // in (0, 1]
      sum += Math.max(z, 0) - z * t + Math.log1p(e);
      if (grad) {
        // σ(z) from the same e: 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below.
        const sigmoid = z >= 0 ? 1 / (1 + e) : e / (1 + e);
        grad[i] = (sigmoid - t) / mean;
      }
    }
    return sum / mean;
  },
};

/** The loss a config asks for, with its options (huber's delta) filled in. */
export function createLoss(config: LossConfig): Loss {
  const spec = lossSpec(config);
  switch (spec.type) {
    case "mse":
      return mse;
    case "mae":
      return mae;
    case "huber":
      return huber(spec.delta);
    case "cross_entropy":
      return crossEntropy;
    case "binary_cross_entropy":
      return binaryCrossEntropy;
  }
}

/** What `lossFits` needs to know about the dataset (a subset of config.ts's DatasetMeta). */
export interface LossDatasetMeta {
  task: LossTask;
  /** Values per target row (1 for classification: the class index). */
  targetWidth: number;
  /** Number of classes (classification); ignored for regression. */
  classes: number;
}

export interface LossFitProblem {
  /** The config field to blame: "loss", or "units" (see `lossFits`). */
  param: string;
  message: string;
}

/**
 * Checks, at submission, that a loss can train a model with `outputUnits` outputs on a dataset:
 * - the dataset's task is the loss's (cross_entropy: classification with at least 2 classes;
 *   mse, mae, huber, binary_cross_entropy: regression), else `{ param: "loss" }` with a message
 *   suggesting the losses that would fit;
 * - the model has one output per class (cross_entropy) or per target column (the others), else
 *   `{ param: "units" }`. The loss does not know where the output width comes from, so the caller
 *   rewrites "units" to the path of the layer that sets it (e.g. "model.layers.3.units").
 *
 * Returns the first problem found, or null.
 */
export function lossFits(config: LossConfig, meta: LossDatasetMeta, outputUnits: number): LossFitProblem | null {
  const { type } = lossSpec(config);
  const loss = createLoss(config);
  if (loss.task !== meta.task) {
    const suggestion =
      meta.task === "classification"
        ? "use cross_entropy"
        : "use mse, mae or huber, or binary_cross_entropy for 0/1 target columns";
    return {
      param: "loss",
      message: `${type} needs a ${loss.task} dataset; this dataset is a ${meta.task} one (${suggestion}).`,
    };
  }
  if (type === "cross_entropy" && meta.classes < 2) {
    return { param: "loss", message: `cross_entropy needs at least 2 classes; the dataset has ${meta.classes}.` };
  }
  const wanted = loss.task === "classification" ? meta.classes : meta.targetWidth;
  if (outputUnits !== wanted) {
    const why =
      loss.task === "classification"
        ? `${type} over this dataset needs ${wanted} (one per class)`
        : `${type} needs ${wanted} (the dataset's target width)`;
    return { param: "units", message: `The last layer has ${outputUnits} units but ${why}.` };
  }
  return null;
}
