// Training data as the trainer sees it: dense row-major float arrays, already parsed and encoded by
// src/datasets. Classification targets are one value per row, the class index stored as a float.
import { TrainerError } from "./errors.js";
import { permutation, Rng, RngStream } from "./rng.js";

export interface TrainSet {
  /** rows * inputWidth values, row-major. */
  x: Float32Array;
  /** rows * targetWidth values, row-major. */
  y: Float32Array;
  rows: number;
  inputWidth: number;
  /** 1 for classification (the class index). */
  targetWidth: number;
}

/** Throws dataset_mismatch unless the arrays hold exactly rows * width values. */
export function assertTrainSet(data: TrainSet, what: string): void {
  if (!Number.isInteger(data.rows) || data.rows < 1) {
    throw new TrainerError("dataset_mismatch", `The ${what} set has no rows.`);
  }
  if (data.x.length !== data.rows * data.inputWidth || data.y.length !== data.rows * data.targetWidth) {
    throw new TrainerError(
      "dataset_mismatch",
      `The ${what} set's arrays do not match its shape: x has ${data.x.length} values for ` +
        `${data.rows} x ${data.inputWidth}, y has ${data.y.length} for ${data.rows} x ${data.targetWidth}.`,
    );
  }
}

/** Copies the rows `order[start..start+count)` of `src` (row width `width`) into `dst`, packed. */
export function gatherRows(
  src: Float32Array,
  width: number,
  order: Uint32Array,
  start: number,
  count: number,
  dst: Float32Array,
): void {
  for (let r = 0; r < count; r++) {
    const from = order[start + r] * width;
    const to = r * width;
    for (let j = 0; j < width; j++) dst[to + j] = src[from + j];
  }
}

function subset(data: TrainSet, rows: Uint32Array): TrainSet {
  const x = new Float32Array(rows.length * data.inputWidth);
  const y = new Float32Array(rows.length * data.targetWidth);
  gatherRows(data.x, data.inputWidth, rows, 0, rows.length, x);
  gatherRows(data.y, data.targetWidth, rows, 0, rows.length, y);
  return { x, y, rows: rows.length, inputWidth: data.inputWidth, targetWidth: data.targetWidth };
}

/**
 * Holds out `max(1, round(fraction * rows))` randomly chosen rows for validation. The permutation is
 * seeded (its own RNG stream), so a retried job validates on the same rows.
 */
export function splitValidation(
  data: TrainSet,
  fraction: number,
  seed: number,
): { train: TrainSet; val: TrainSet } {
  if (!(fraction > 0 && fraction < 1)) {
    throw new TrainerError("invalid_config", `The validation split must be in (0, 1), got ${fraction}.`);
  }
  assertTrainSet(data, "training");
  const valRows = Math.max(1, Math.round(fraction * data.rows));
  if (valRows >= data.rows) {
    throw new TrainerError(
      "dataset_mismatch",
      `The dataset has ${data.rows} row(s): a validation split of ${fraction} leaves none to train on.`,
    );
  }
  const order = permutation(data.rows, new Rng(seed, RngStream.split));
  return {
    val: subset(data, order.subarray(0, valRows)),
    train: subset(data, order.subarray(valRows)),
  };
}
