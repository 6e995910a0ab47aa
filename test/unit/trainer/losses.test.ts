// Loss values and gradients on inputs small enough to work out by hand.
import { describe, expect, it } from "vitest";
import { losses } from "../../../src/trainer/index.js";

const close = (actual: ArrayLike<number>, expected: number[]) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, 12));
};

describe("mse", () => {
  it("is the mean of squared errors over every output value", () => {
    // 2 rows x 2 outputs. pred - target = [0, 2, 0, 3]; squares sum to 13, over 4 values = 3.25.
    // dL/dpred = 2 (pred - target) / 4 = [0, 1, 0, 1.5].
    const grad = new Float64Array(4);
    const value = losses.mse.evaluate(new Float64Array([1, 2, 3, 4]), [1, 0, 3, 1], 2, 2, grad);
    expect(value).toBe(3.25);
    close(grad, [0, 1, 0, 1.5]);
  });
});

describe("mae", () => {
  it("is the mean of absolute errors, with a zero gradient at a zero residual", () => {
    // pred - target = [0, -1, 0, 3]; |.| sums to 4, over 4 values = 1.
    // dL/dpred = sign / 4 = [0, -0.25, 0, 0.25] (sign(0) = 0).
    const grad = new Float64Array(4).fill(99);
    const value = losses.mae.evaluate(new Float64Array([1, 2, 3, 4]), [1, 3, 3, 1], 2, 2, grad);
    expect(value).toBe(1);
    close(grad, [0, -0.25, 0, 0.25]);
  });
});

describe("cross_entropy", () => {
  it("is the mean over samples of softmax negative log-likelihood", () => {
    // Row 0: logits [0, ln 2, 0], label 1. exp = [1, 2, 1], sum 4, softmax [1/4, 1/2, 1/4];
    //   loss = ln 4 - ln 2 = ln 2.
    // Row 1: logits [1, 1, 1], label 0. softmax [1/3, 1/3, 1/3]; loss = ln 3.
    // Mean = (ln 2 + ln 3) / 2 = ln(6) / 2.
    // Gradient = (softmax - one_hot) / 2 rows:
    //   row 0: [1/4, -1/2, 1/4] / 2 = [1/8, -1/4, 1/8]; row 1: [-2/3, 1/3, 1/3] / 2 = [-1/3, 1/6, 1/6].
    const grad = new Float64Array(6);
    const logits = new Float64Array([0, Math.LN2, 0, 1, 1, 1]);
    const value = losses.cross_entropy.evaluate(logits, [1, 0], 2, 3, grad);
    expect(value).toBeCloseTo(Math.log(6) / 2, 14);
    close(grad, [1 / 8, -1 / 4, 1 / 8, -1 / 3, 1 / 6, 1 / 6]);
  });

  it("is stable for huge logits", () => {
    // ln(e^1000 + e^0) - 1000 = ln(1 + e^-1000) ~ 0; and 1000 for the other label.
    const grad = new Float64Array(2);
    expect(losses.cross_entropy.evaluate(new Float64Array([1000, 0]), [0], 1, 2, grad)).toBe(0);
    expect(losses.cross_entropy.evaluate(new Float64Array([1000, 0]), [1], 1, 2, grad)).toBe(1000);
    close(grad, [1, -1]);
    expect(losses.cross_entropy.evaluate(new Float32Array([-1e30, 1e30]), [0], 1, 2, null)).toBe(2 * Math.fround(1e30));
  });

  it("uses one target per row", () => {
    expect(losses.cross_entropy.targetWidth(10)).toBe(1);
    expect(losses.mse.targetWidth(10)).toBe(10);
  });
});
