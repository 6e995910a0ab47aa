// Inference-mode evaluation of a whole set: the mean loss and the metrics the API reports
// (accuracy for classification; mae and rmse over every output value for regression).
import type { TrainSet } from "./data.js";
import type { Loss } from "./losses.js";
import type { Model } from "./model.js";

export type Task = "regression" | "classification";

export interface Evaluation {
  /** Sample-weighted mean of the batch losses, i.e. the mean loss over the set. */
  loss: number;
  metrics: Record<string, number>;
}

/**
 * Runs `set` through the model in batches of `batchSize` rows, copying each batch into the caller's
 * scratch buffers (at least batchSize rows wide) so that nothing is allocated per batch.
 */
export function evaluate(
  model: Model,
  set: TrainSet,
  loss: Loss,
  task: Task,
  batchSize: number,
  scratch: { x: Float32Array; y: Float32Array },
): Evaluation {
  const width = model.outputWidth;
  const { inputWidth, targetWidth } = set;
  let lossSum = 0;
  let absSum = 0;
  let sqSum = 0;
  let correct = 0;
  for (let start = 0; start < set.rows; start += batchSize) {
    const n = Math.min(batchSize, set.rows - start);
    copyRows(set.x, start * inputWidth, n * inputWidth, scratch.x);
    copyRows(set.y, start * targetWidth, n * targetWidth, scratch.y);
    const out = model.forward(scratch.x, n, false);
    lossSum += loss.evaluate(out, scratch.y, n, width, null) * n;
    if (task === "classification") {
      for (let r = 0; r < n; r++) if (argmax(out, r * width, width) === scratch.y[r]) correct++;
    } else {
      for (let i = 0; i < n * width; i++) {
        const diff = out[i] - scratch.y[i];
        absSum += Math.abs(diff);
        sqSum += diff * diff;
      }
    }
  }
  const values = set.rows * width;
  const metrics: Record<string, number> =
    task === "classification"
      ? { accuracy: correct / set.rows }
      : { mae: absSum / values, rmse: Math.sqrt(sqSum / values) };
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
