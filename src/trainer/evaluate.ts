// Inference-mode evaluation of a whole set: the mean loss and the metrics the API reports
// (accuracy, and top5_accuracy past 5 classes, for classification; accuracy per label for
// binary_cross_entropy; mae and rmse over every output value for other regression losses).
import type { TrainSet } from "./data.js";
import type { Loss } from "./losses.js";
import type { Model } from "./model.js";

export type Task = "regression" | "classification";

export interface Evaluation {
  /** Sample-weighted mean of the batch losses, i.e. the mean loss over the set. */
  loss: number;
  metrics: Record<string, number>;
}

/** What evaluate needs of a model: its inference-mode forward pass and its output width. */
export type EvaluatedModel = Pick<Model, "forward" | "outputWidth">;

/** top-k accuracy is reported with this k, and only when there are more classes than k (with k
 *  classes or fewer the label is always among the top k, so the metric would say nothing). */
export const TOP_K = 5;

/**
 * Runs `set` through the model in batches of `batchSize` rows, copying each batch into the caller's
 * scratch buffers (at least batchSize rows wide) so that nothing is allocated per batch.
 *
 * Classification outputs are scores per class, logits or probabilities alike: both metrics only
 * compare them. `accuracy` counts rows whose label is the argmax; `top5_accuracy` (more than 5
 * classes only) counts rows whose label is among the 5 largest outputs. Both rank classes by score,
 * largest first, and break ties toward the lower class index: a label tied with a lower-indexed
 * class ranks after it.
 */
export function evaluate(
  model: EvaluatedModel,
  set: TrainSet,
  loss: Loss,
  task: Task,
  batchSize: number,
  scratch: { x: Float32Array; y: Float32Array },
): Evaluation {
  const width = model.outputWidth;
  const { inputWidth, targetWidth } = set;
  const topK = task === "classification" && width > TOP_K;
  // binary_cross_entropy's outputs are logits of independent 0/1 labels: its metric is the share of
  // labels on the right side of 0.5 (logit 0), not a distance.
  const binary = loss.name === "binary_cross_entropy";
  let lossSum = 0;
  let absSum = 0;
  let sqSum = 0;
  let correct = 0;
  let inTop = 0;
  for (let start = 0; start < set.rows; start += batchSize) {
    const n = Math.min(batchSize, set.rows - start);
    copyRows(set.x, start * inputWidth, n * inputWidth, scratch.x);
    copyRows(set.y, start * targetWidth, n * targetWidth, scratch.y);
    const out = model.forward(scratch.x, n, false);
    lossSum += loss.evaluate(out, scratch.y, n, width, null) * n;
    if (task === "classification") {
      for (let r = 0; r < n; r++) {
        const label = scratch.y[r];
        if (argmax(out, r * width, width) === label) correct++;
        if (topK && rankOf(out, r * width, width, label) < TOP_K) inTop++;
      }
    } else if (binary) {
      for (let i = 0; i < n * width; i++) if (out[i] > 0 === scratch.y[i] >= 0.5) correct++;
    } else {
      for (let i = 0; i < n * width; i++) {
        const diff = out[i] - scratch.y[i];
        absSum += Math.abs(diff);
        sqSum += diff * diff;
      }
    }
  }
  const values = set.rows * width;
  let metrics: Record<string, number>;
  if (task === "classification") {
    metrics = { accuracy: correct / set.rows };
    if (topK) metrics.top5_accuracy = inTop / set.rows;
  } else if (binary) {
    metrics = { accuracy: correct / values };
  } else {
    metrics = { mae: absSum / values, rmse: Math.sqrt(sqSum / values) };
  }
  return { loss: lossSum / set.rows, metrics };
}

function copyRows(src: Float32Array, from: number, count: number, dst: Float32Array): void {
  for (let i = 0; i < count; i++) dst[i] = src[from + i];
}

/** Index of the largest of `values[offset..offset+width)`; the first one on ties. */
function argmax(values: ArrayLike<number>, offset: number, width: number): number {
  let best = 0;
  for (let j = 1; j < width; j++) if (values[offset + j] > values[offset + best]) best = j;
  return best;
}

/**
 * The 0-based rank of class `label` among `values[offset..offset+width)` sorted largest first, ties
 * broken toward the lower index (the order argmax uses): the number of classes that come before it.
 * Counting instead of sorting needs no buffer. A label outside the classes, or whose score is NaN,
 * gets rank `width` (never in any top k).
 */
function rankOf(values: ArrayLike<number>, offset: number, width: number, label: number): number {
  if (!Number.isInteger(label) || label < 0 || label >= width) return width;
  const score = values[offset + label];
  if (Number.isNaN(score)) return width;
  let ahead = 0;
  for (let j = 0; j < width; j++) {
    const v = values[offset + j];
    if (v > score || (v === score && j < label)) ahead++;
  }
  return ahead;
}
