import { describe, expect, it } from "vitest";
import type { TrainSet } from "../../../src/trainer/data.js";
import { evaluate } from "../../../src/trainer/evaluate.js";

// Stubs with fixed outputs, so the metrics can be worked out by hand. They are cast to the parameter
// types: evaluate uses only a model's forward and outputWidth, and a loss's evaluate.
type EvalModel = Parameters<typeof evaluate>[0];
type EvalLoss = Parameters<typeof evaluate>[2];

/**
 * A "model" whose output for a row is `table[rowId]`, where the row's single input value is its id.
 * Records the size of each batch it sees.
 */
function tableModel(table: number[][]): { model: EvalModel; batches: number[] } {
  const width = table[0].length;
  const batches: number[] = [];
  const out = new Float32Array(64 * width);
  const model = {
    outputWidth: width,
    forward(input: Float32Array, rows: number, training: boolean) {
      expect(training).toBe(false);
      batches.push(rows);
      for (let r = 0; r < rows; r++) out.set(table[input[r]], r * width);
      return out;
    },
  };
  return { model: model as unknown as EvalModel, batches };
}

/** Mean squared error, to check that evaluate weights batch losses by their sizes. */
const mseLoss = {
  name: "mse",
  targetWidth: (width: number) => width,
  evaluate(pred: ArrayLike<number>, target: ArrayLike<number>, rows: number, width: number) {
    let sum = 0;
    for (let i = 0; i < rows * width; i++) sum += (pred[i] - target[i]) ** 2;
    return sum / (rows * width);
  },
} as unknown as EvalLoss;

/** A constant loss per batch: classification metrics do not depend on it. */
const zeroLoss = { name: "cross_entropy", targetWidth: () => 1, evaluate: () => 0 } as unknown as EvalLoss;

function set(rows: number, targets: number[], targetWidth: number): TrainSet {
  const x = new Float32Array(rows);
  for (let r = 0; r < rows; r++) x[r] = r; // the row id, looked up by tableModel
  return { x, y: Float32Array.from(targets), rows, inputWidth: 1, targetWidth };
}

const scratch = (batch: number, targetWidth: number) => ({ x: new Float32Array(batch), y: new Float32Array(batch * targetWidth) });

describe("evaluate: classification", () => {
  it("counts argmax accuracy (logits as they come) and reports no top5 with 5 classes or fewer", () => {
    const { model } = tableModel([
      [2, -1, 0.5, 0, 0], // argmax 0
      [-3, -1, -2, -5, -4], // argmax 1 (all negative logits)
      [0, 1, 1, 0, 0], // tie between 1 and 2: 1
      [0, 0, 0, 0, 9], // argmax 4
    ]);
    const labels = [0, 1, 2, 3]; // right, right, wrong (tie goes to 1), wrong
    const result = evaluate(model, set(4, labels, 1), zeroLoss, "classification", 3, scratch(3, 1));
    expect(result.metrics).toEqual({ accuracy: 0.5 });
  });

  it("adds top5_accuracy with more than 5 classes, breaking ties toward the lower index", () => {
    const { model } = tableModel([
      // label 6 (score 4) is the 3rd largest: in the top 5, not the argmax.
      [9, 8, 0, 0, 0, 0, 4, 0],
      // label 7 is the smallest: not in the top 5.
      [1, 2, 3, 4, 5, 6, 7, -1],
      // label 5 (score 5) ties with classes 0..4 (score 5): they come first, so its rank is 5: out.
      [5, 5, 5, 5, 5, 5, 5, 5],
      // label 4 ties with 0..3 and 5..7: only 0..3 come first, rank 4: in.
      [5, 5, 5, 5, 5, 5, 5, 5],
      // label 2 is the argmax: in both.
      [0, 1, 9, 3, 4, 5, 6, 7],
      // label 3 (score 3) beaten by 4 (6), 5 (7), 6 (8), 7 (9) and 0 (3, tie, lower index): rank 5, out.
      [3, 0, 0, 3, 6, 7, 8, 9],
    ]);
    const labels = [6, 7, 5, 4, 2, 3];
    const result = evaluate(model, set(6, labels, 1), zeroLoss, "classification", 4, scratch(4, 1));
    // accuracy: only row 4 is right (row 3's argmax is 0 on the tie).
    expect(result.metrics.accuracy).toBeCloseTo(1 / 6, 12);
    // top5: rows 0, 3 and 4.
    expect(result.metrics.top5_accuracy).toBeCloseTo(3 / 6, 12);
    expect(Object.keys(result.metrics).sort()).toEqual(["accuracy", "top5_accuracy"]);
  });

  it("counts a label whose score is NaN as a miss for top5", () => {
    const { model } = tableModel([[NaN, 0, 0, 0, 0, 0]]);
    const result = evaluate(model, set(1, [0], 1), zeroLoss, "classification", 1, scratch(1, 1));
    expect(result.metrics.top5_accuracy).toBe(0);
  });
});

describe("evaluate: regression", () => {
  it("computes mae and rmse over every output value, worked out by hand", () => {
    const { model } = tableModel([
      [1, 2],
      [3, -1],
      [0, 0],
    ]);
    // targets row by row; errors: (1-0, 2-4) = (1, -2); (3-3, -1-1) = (0, -2); (0-(-3), 0-0) = (3, 0)
    const targets = [0, 4, 3, 1, -3, 0];
    const result = evaluate(model, set(3, targets, 2), mseLoss, "regression", 2, scratch(2, 2));
    // mae = (1 + 2 + 0 + 2 + 3 + 0) / 6 = 8/6; mse = (1 + 4 + 0 + 4 + 9 + 0) / 6 = 3, rmse = sqrt(3)
    expect(result.metrics.mae).toBeCloseTo(8 / 6, 6);
    expect(result.metrics.rmse).toBeCloseTo(Math.sqrt(3), 6);
    expect(Object.keys(result.metrics).sort()).toEqual(["mae", "rmse"]);
    // The loss is the mean over the set, not the mean of the two batch means (2.25 and 4.5 -> 3.375).
    expect(result.loss).toBeCloseTo(3, 6);
  });
});

describe("evaluate: batching", () => {
  it("visits every row once when the row count is not a multiple of the batch size", () => {
    const rows = 11;
    const table = Array.from({ length: rows }, (_, r) => [r * 0.5]);
    const { model, batches } = tableModel(table);
    const targets = Array.from({ length: rows }, (_, r) => r); // error r - 0.5r = 0.5r
    const result = evaluate(model, set(rows, targets, 1), mseLoss, "regression", 4, scratch(4, 1));
    expect(batches).toEqual([4, 4, 3]);
    // mae = mean(0.5 r) over r = 0..10 = 0.5 * 5 = 2.5; mse = mean(0.25 r^2) = 0.25 * 385 / 11 = 8.75
    expect(result.metrics.mae).toBeCloseTo(2.5, 6);
    expect(result.metrics.rmse).toBeCloseTo(Math.sqrt(8.75), 6);
    expect(result.loss).toBeCloseTo(8.75, 6);
  });

  it("gives the same metrics whatever the batch size", () => {
    const rows = 13;
    const table = Array.from({ length: rows }, (_, r) => Array.from({ length: 7 }, (_, j) => Math.sin(r * 7 + j)));
    const labels = Array.from({ length: rows }, (_, r) => (r * 3) % 7);
    const runs = [1, 5, 13, 64].map((batch) => {
      const { model } = tableModel(table);
      return evaluate(model, set(rows, labels, 1), zeroLoss, "classification", batch, scratch(batch, 1)).metrics;
    });
    for (const metrics of runs) expect(metrics).toEqual(runs[0]);
    expect(runs[0].top5_accuracy).toBeGreaterThan(runs[0].accuracy);
  });
});

describe("evaluate with binary_cross_entropy", () => {
  it("reports the share of labels on the right side of 0.5, from logits", async () => {
    const { createLoss } = await import("../../../src/trainer/losses.js");
    // Two rows, two labels each. Logits [2, -1] and [-0.5, 0.1]; targets [1, 0] and [1, 1]:
    // row 0 gets both right, row 1 gets the second right -> 3 of 4.
    const outputs = new Float32Array([2, -1, -0.5, 0.1]);
    const model = { outputWidth: 2, forward: () => outputs } as unknown as Parameters<typeof evaluate>[0];
    const set = { x: new Float32Array(2), y: new Float32Array([1, 0, 1, 1]), rows: 2, inputWidth: 1, targetWidth: 2 };
    const scratch = { x: new Float32Array(2), y: new Float32Array(4) };
    const result = evaluate(model, set, createLoss("binary_cross_entropy"), "regression", 2, scratch);
    expect(result.metrics).toEqual({ accuracy: 0.75 });
  });
});
