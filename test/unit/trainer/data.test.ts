import { describe, expect, it } from "vitest";
import { splitValidation, TrainerError, type TrainSet } from "../../../src/trainer/index.js";

function numbered(rows: number): TrainSet {
  // Row r is x = [r, -r], y = [10 r], so every row can be traced after the split.
  const x = new Float32Array(rows * 2);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    x[2 * r] = r;
    x[2 * r + 1] = -r;
    y[r] = 10 * r;
  }
  return { x, y, rows, inputWidth: 2, targetWidth: 1 };
}

describe("splitValidation", () => {
  it("holds out round(fraction * rows) rows, keeping rows whole and disjoint", () => {
    const { train, val } = splitValidation(numbered(10), 0.25, 1);
    expect(val.rows).toBe(3); // round(2.5) = 3
    expect(train.rows).toBe(7);
    const ids = [...train.x.filter((_, i) => i % 2 === 0), ...val.x.filter((_, i) => i % 2 === 0)];
    expect(ids.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const set of [train, val]) {
      for (let r = 0; r < set.rows; r++) {
        expect(set.x[2 * r + 1]).toBe(-set.x[2 * r]);
        expect(set.y[r]).toBe(10 * set.x[2 * r]);
      }
    }
  });

  it("is seeded", () => {
    const a = splitValidation(numbered(50), 0.2, 7);
    expect(splitValidation(numbered(50), 0.2, 7).val.x).toEqual(a.val.x);
    expect(splitValidation(numbered(50), 0.2, 8).val.x).not.toEqual(a.val.x);
  });

  it("keeps at least one validation row", () => {
    expect(splitValidation(numbered(3), 0.01, 0).val.rows).toBe(1);
  });

  it("refuses to leave nothing to train on", () => {
    expect(() => splitValidation(numbered(1), 0.5, 0)).toThrow(TrainerError);
    try {
      splitValidation(numbered(2), 0.9, 0);
      expect.unreachable();
    } catch (err) {
      expect((err as TrainerError).code).toBe("dataset_mismatch");
    }
  });
});
