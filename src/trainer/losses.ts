// Losses, each with its gradient beside it. A batch's loss is a mean, as PyTorch's default
// reduction: mse and mae average over every output value of the batch, cross_entropy over the
// batch's samples. The gradient is that of the mean, so it already carries the 1/N.
import type { LossName } from "./config.js";
import type { Floats } from "./kernels.js";

export interface Loss {
  readonly name: LossName;
  /** Target values per row: the output width for regression, 1 (the class index) for cross_entropy. */
  targetWidth(outputWidth: number): number;
  /**
   * The mean loss of `rows` rows of predictions (`width` values each) against their targets. When
   * `grad` is given, also writes dLoss/dPrediction into its first rows*width values.
   */
  evaluate(pred: Floats, target: ArrayLike<number>, rows: number, width: number, grad: Floats | null): number;
}

const mse: Loss = {
  name: "mse",
  targetWidth: (width) => width,
  evaluate(pred, target, rows, width, grad) {
    const count = rows * width;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const diff = pred[i] - target[i];
      sum += diff * diff;
      if (grad) grad[i] = (2 * diff) / count;
    }
    return sum / count;
  },
};

const mae: Loss = {
  name: "mae",
  targetWidth: (width) => width,
  evaluate(pred, target, rows, width, grad) {
    const count = rows * width;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const diff = pred[i] - target[i];
      sum += Math.abs(diff);
      // sign(diff) / count; the subgradient at exactly 0 is 0, as in PyTorch.
      if (grad) grad[i] = diff > 0 ? 1 / count : diff < 0 ? -1 / count : 0;
    }
    return sum / count;
  },
};

/** Softmax fused with the negative log-likelihood of integer labels: fusing them lets us subtract
 *  each row's max logit before exponentiating (no overflow) and gives the simple gradient
 *  softmax - one_hot. */
const crossEntropy: Loss = {
  name: "cross_entropy",
  targetWidth: () => 1,
  evaluate(logits, labels, rows, width, grad) {
    let sum = 0;
    for (let r = 0; r < rows; r++) {
      const row = r * width;
      let max = -Infinity;
      for (let j = 0; j < width; j++) if (logits[row + j] > max) max = logits[row + j];
      let expSum = 0;
      for (let j = 0; j < width; j++) expSum += Math.exp(logits[row + j] - max);
      const label = labels[r];
      // -log softmax[label] = log Σ exp(z_j) - z_label
      sum += max + Math.log(expSum) - logits[row + label];
      if (grad) {
        for (let j = 0; j < width; j++) {
          const p = Math.exp(logits[row + j] - max) / expSum;
          grad[row + j] = (p - (j === label ? 1 : 0)) / rows;
        }
      }
    }
    return sum / rows;
  },
};

export const losses: Record<LossName, Loss> = { mse, mae, cross_entropy: crossEntropy };
