// Loss values and gradients on inputs small enough to work out by hand, building losses from both
// forms of the config, and the loss-vs-dataset checks run at submission.
import { describe, expect, it } from "vitest";
import { createLoss, lossFits } from "../../../src/trainer/losses.js";
import { lossSchema } from "../../../src/trainer/schema/loss.js";

const close = (actual: ArrayLike<number>, expected: number[]) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, 12));
};

describe("mse", () => {
  it("is the mean of squared errors over every output value", () => {
    // 2 rows x 2 outputs. pred - target = [0, 2, 0, 3]; squares sum to 13, over 4 values = 3.25.
    // dL/dpred = 2 (pred - target) / 4 = [0, 1, 0, 1.5].
    const grad = new Float64Array(4);
    const value = createLoss("mse").evaluate(new Float64Array([1, 2, 3, 4]), [1, 0, 3, 1], 2, 2, grad);
    expect(value).toBe(3.25);
    close(grad, [0, 1, 0, 1.5]);
  });
});

describe("mae", () => {
  it("is the mean of absolute errors, with a zero gradient at a zero residual", () => {
    // pred - target = [0, -1, 0, 3]; |.| sums to 4, over 4 values = 1.
    // dL/dpred = sign / 4 = [0, -0.25, 0, 0.25] (sign(0) = 0).
    const grad = new Float64Array(4).fill(99);
    const value = createLoss("mae").evaluate(new Float64Array([1, 2, 3, 4]), [1, 3, 3, 1], 2, 2, grad);
    expect(value).toBe(1);
    close(grad, [0, -0.25, 0, 0.25]);
  });
});

describe("huber", () => {
  it("is quadratic within delta and linear beyond, meeting at |d| = delta (delta 1)", () => {
    // 2 rows x 3 outputs, delta 1. d = pred - target = [0.5, -2, 3, 0, 1, -1]
    //   0.5: inside,  0.5 * 0.25         = 0.125,  slope d         = 0.5
    //   -2:  outside, 1 * (2 - 0.5)      = 1.5,    slope -delta    = -1
    //   3:   outside, 1 * (3 - 0.5)      = 2.5,    slope delta     = 1
    //   0:   inside,  0,                           slope 0
    //   ±1:  on the edge (quadratic side), 0.5 each, slope ±1 (both pieces agree there)
    // Sum 0.125 + 1.5 + 2.5 + 0 + 0.5 + 0.5 = 5.125, mean over 6 = 0.8541666...
    // dL/dpred = slope / 6 = [0.5, -1, 1, 0, 1, -1] / 6.
    const grad = new Float64Array(6);
    const value = createLoss("huber").evaluate(new Float64Array([1.5, 0, 4, 2, 3, 0]), [1, 2, 1, 2, 2, 1], 2, 3, grad);
    expect(value).toBeCloseTo(5.125 / 6, 14);
    close(grad, [0.5 / 6, -1 / 6, 1 / 6, 0, 1 / 6, -1 / 6]);
  });

  it("takes delta from the config (delta 2)", () => {
    // d = [1, -3]: 1 is inside (0.5 * 1 = 0.5, slope 1), -3 outside (2 * (3 - 1) = 4, slope -2).
    // Mean (0.5 + 4) / 2 = 2.25; gradient [1, -2] / 2 = [0.5, -1].
    const grad = new Float64Array(2);
    const loss = createLoss({ type: "huber", delta: 2 });
    expect(loss.evaluate(new Float64Array([1, -3]), [0, 0], 1, 2, grad)).toBe(2.25);
    close(grad, [0.5, -1]);
    // Under delta 1 the same residuals cost (0.5 + 1 * (3 - 0.5)) / 2 = 1.5.
    expect(createLoss({ type: "huber", delta: 1 }).evaluate(new Float64Array([1, -3]), [0, 0], 1, 2, null)).toBe(1.5);
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
    const value = createLoss("cross_entropy").evaluate(logits, [1, 0], 2, 3, grad);
    expect(value).toBeCloseTo(Math.log(6) / 2, 14);
    close(grad, [1 / 8, -1 / 4, 1 / 8, -1 / 3, 1 / 6, 1 / 6]);
  });

  it("is stable for huge logits", () => {
    // ln(e^1000 + e^0) - 1000 = ln(1 + e^-1000) ~ 0; and 1000 for the other label.
    const loss = createLoss("cross_entropy");
    const grad = new Float64Array(2);
    expect(loss.evaluate(new Float64Array([1000, 0]), [0], 1, 2, grad)).toBe(0);
    expect(loss.evaluate(new Float64Array([1000, 0]), [1], 1, 2, grad)).toBe(1000);
    close(grad, [1, -1]);
    expect(loss.evaluate(new Float32Array([-1e30, 1e30]), [0], 1, 2, null)).toBe(2 * Math.fround(1e30));
  });

  it("gives each row's softmax from one exponential per value, bit for bit as exp(z - max) / sum", () => {
    // Narrow and wide rows (the kept exponentials grow past 64), float32 gradients as in training.
    for (const width of [3, 10, 200]) {
      const rows = 7;
      const logits = Float32Array.from({ length: rows * width }, (_, i) => Math.fround(Math.sin(i * 1.7) * 6));
      const labels = Array.from({ length: rows }, (_, r) => (r * 5) % width);
      const grad = new Float32Array(rows * width);
      const value = createLoss("cross_entropy").evaluate(logits, labels, rows, width, grad);
      const expected = new Float32Array(rows * width);
      let sum = 0;
      for (let r = 0; r < rows; r++) {
        const row = logits.subarray(r * width, (r + 1) * width);
        const max = Math.max(...row);
        let expSum = 0;
        for (const z of row) expSum += Math.exp(z - max);
        sum += max + Math.log(expSum) - row[labels[r]];
        for (let j = 0; j < width; j++) expected[r * width + j] = (Math.exp(row[j] - max) / expSum - (j === labels[r] ? 1 : 0)) / rows;
      }
      expect(value).toBe(sum / rows);
      expect(Array.from(grad)).toEqual(Array.from(expected));
    }
  });

  it("uses one target per row", () => {
    expect(createLoss("cross_entropy").targetWidth(10)).toBe(1);
    expect(createLoss("mse").targetWidth(10)).toBe(10);
    expect(createLoss("binary_cross_entropy").targetWidth(10)).toBe(10);
  });
});

describe("binary_cross_entropy", () => {
  it("is the mean over every value of sigmoid cross-entropy, from logits", () => {
    // 2 rows x 2 outputs; σ(0) = 1/2, σ(ln 3) = 3/4, σ(-ln 3) = 1/4.
    // Loss per value max(z, 0) - z t + ln(1 + e^-|z|):
    //   z = 0,     t = 1:   0 - 0 + ln 2                          = ln 2
    //   z = ln 3,  t = 1:   ln 3 - ln 3 + ln(4/3)                 = ln(4/3)
    //   z = -ln 3, t = 0:   0 - 0 + ln(4/3)                       = ln(4/3)
    //   z = ln 3,  t = 1/2: ln 3 - ln 3 / 2 + ln(4/3) = ln 3 / 2 + ln(4/3)
    //     (check: -(1/2) ln(3/4) - (1/2) ln(1/4) = ln 4 - ln 3 / 2, the same)
    // Mean = (ln 2 + 3 ln(4/3) + ln 3 / 2) / 4.
    // Gradient (σ(z) - t) / 4 = [-1/2, -1/4, 1/4, 1/4] / 4.
    const grad = new Float64Array(4);
    const z = new Float64Array([0, Math.log(3), -Math.log(3), Math.log(3)]);
    const value = createLoss("binary_cross_entropy").evaluate(z, [1, 1, 0, 0.5], 2, 2, grad);
    expect(value).toBeCloseTo((Math.LN2 + 3 * Math.log(4 / 3) + Math.log(3) / 2) / 4, 14);
    close(grad, [-1 / 8, -1 / 16, 1 / 16, 1 / 16]);
  });

  it("does not overflow for large |z|, and keeps precision for confident right answers", () => {
    // Right answers cost ln(1 + e^-1000) = 0; wrong ones cost |z| = 1000. Mean (0 + 0 + 1000 + 1000) / 4 = 500.
    // σ(1000) = 1 and σ(-1000) = 0 exactly in float64, so the gradient is [0, 0, 1, -1] / 4.
    const loss = createLoss("binary_cross_entropy");
    const grad = new Float64Array(4);
    expect(loss.evaluate(new Float64Array([1000, -1000, 1000, -1000]), [1, 0, 0, 1], 1, 4, grad)).toBe(500);
    close(grad, [0, 0, 0.25, -0.25]);
    // Float32 logits of 1e30 (e^(1e30) would be Infinity in the naive form): cost 1e30 for the wrong side.
    expect(loss.evaluate(new Float32Array([1e30, -1e30]), [0, 0], 1, 2, null)).toBe(Math.fround(1e30) / 2);
    // z = 40, t = 1: ln(1 + e^-40) ~ e^-40 = 4.25e-18, which ln(1 + x) would round to 0.
    expect(loss.evaluate(new Float64Array([40]), [1], 1, 1, null) / Math.exp(-40)).toBeCloseTo(1, 12);
  });
});

describe("createLoss", () => {
  it("accepts a name or an object, as the config schema parses them", () => {
    for (const name of ["mse", "mae", "huber", "cross_entropy", "binary_cross_entropy"] as const) {
      expect(createLoss(lossSchema.parse(name)).name).toBe(name);
      expect(createLoss(lossSchema.parse({ type: name })).name).toBe(name);
    }
    // { type: "huber" } gets delta 1 from the schema, like the bare name: d = 3 costs 1 * (3 - 0.5) = 2.5.
    const residual3 = (config: unknown) => createLoss(lossSchema.parse(config)).evaluate(new Float64Array([3]), [0], 1, 1, null);
    expect(residual3("huber")).toBe(2.5);
    expect(residual3({ type: "huber" })).toBe(2.5);
    // delta 4: d = 3 is inside, 0.5 * 9 = 4.5.
    expect(residual3({ type: "huber", delta: 4 })).toBe(4.5);
  });

  it("says which task each loss needs and which output function it folds in", () => {
    const describeLoss = (name: "mse" | "mae" | "huber" | "cross_entropy" | "binary_cross_entropy") => {
      const loss = createLoss(name);
      return [loss.task, loss.foldsOutput];
    };
    expect(describeLoss("mse")).toEqual(["regression", null]);
    expect(describeLoss("mae")).toEqual(["regression", null]);
    expect(describeLoss("huber")).toEqual(["regression", null]);
    expect(describeLoss("cross_entropy")).toEqual(["classification", "softmax"]);
    expect(describeLoss("binary_cross_entropy")).toEqual(["regression", "sigmoid"]);
  });

  it("rejects a non-positive huber delta given without the schema", () => {
    expect(() => createLoss({ type: "huber", delta: 0 })).toThrow(/delta/);
  });
});

describe("lossFits", () => {
  const classes3 = { task: "classification" as const, targetWidth: 1, classes: 3 };
  const regression2 = { task: "regression" as const, targetWidth: 2, classes: 0 };

  it("accepts a loss whose task and output width match the dataset", () => {
    expect(lossFits("cross_entropy", classes3, 3)).toBeNull();
    expect(lossFits("mse", regression2, 2)).toBeNull();
    expect(lossFits({ type: "huber", delta: 0.5 }, regression2, 2)).toBeNull();
    expect(lossFits("binary_cross_entropy", regression2, 2)).toBeNull();
  });

  it("blames the loss for a task mismatch and suggests losses that fit", () => {
    const ce = lossFits("cross_entropy", regression2, 2);
    expect(ce?.param).toBe("loss");
    expect(ce?.message).toMatch(/classification dataset.*regression one.*mse.*binary_cross_entropy/);
    for (const name of ["mse", "mae", "huber", "binary_cross_entropy"] as const) {
      const problem = lossFits(name, classes3, 3);
      expect(problem?.param).toBe("loss");
      expect(problem?.message).toMatch(new RegExp(`^${name} needs a regression dataset.*use cross_entropy`));
    }
  });

  it("needs at least two classes for cross_entropy", () => {
    const problem = lossFits("cross_entropy", { ...classes3, classes: 1 }, 1);
    expect(problem).toEqual({ param: "loss", message: "cross_entropy needs at least 2 classes; the dataset has 1." });
  });

  it("returns param 'units' for an output-width mismatch, for the caller to rewrite", () => {
    expect(lossFits("cross_entropy", classes3, 2)).toEqual({
      param: "units",
      message: "The last layer has 2 units but cross_entropy over this dataset needs 3 (one per class).",
    });
    expect(lossFits("binary_cross_entropy", regression2, 3)).toEqual({
      param: "units",
      message: "The last layer has 3 units but binary_cross_entropy needs 2 (the dataset's target width).",
    });
    expect(lossFits({ type: "mae" }, regression2, 1)?.param).toBe("units");
  });
});

describe("a batch shared out by rows (meanRows)", () => {
  // 5 rows of width 2 (cross_entropy: 3 logits), split 2 + 3: each part divides by the whole batch,
  // so its gradient values are the whole batch's bit for bit and the parts' losses add up.
  const cases: [string, Parameters<typeof createLoss>[0], number, number[]][] = [
    ["mse", "mse", 2, [0.5, 1, 0, 2, 1, 1, 3, 0, 0.25, 1]],
    ["mae", "mae", 2, [0, 1, 1, 0, 2, 2, 0, 1, 1, 1]],
    ["huber", { type: "huber", delta: 0.5 }, 2, [0, 1, 1, 0, 2, 2, 0, 1, 1, 1]],
    ["binary_cross_entropy", "binary_cross_entropy", 2, [0, 1, 1, 0, 1, 1, 0, 1, 1, 0]],
    ["cross_entropy", "cross_entropy", 3, [0, 2, 1, 1, 0]],
  ];
  for (const [name, config, width, target] of cases) {
    it(name, () => {
      const loss = createLoss(config);
      const rows = 5;
      const tw = loss.targetWidth(width);
      const pred = new Float64Array(rows * width).map((_, i) => Math.sin(1.7 * i + 0.3) * 2);
      const whole = new Float64Array(rows * width);
      const total = loss.evaluate(pred, target, rows, width, whole);
      const parts = new Float64Array(rows * width);
      const first = loss.evaluate(pred, target, 2, width, parts, rows);
      const second = loss.evaluate(pred.subarray(2 * width), target.slice(2 * tw), 3, width, parts.subarray(2 * width), rows);
      expect(Array.from(parts)).toEqual(Array.from(whole));
      expect(first + second).toBeCloseTo(total, 14);
      expect(first).not.toBeCloseTo(total, 3);
    });
  }
});
