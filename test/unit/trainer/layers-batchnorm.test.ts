// Batch normalisation: batch statistics in training, PyTorch's running-statistics update (worked
// out by hand), running statistics at inference, and its non-trainable buffers.
import { describe, expect, it } from "vitest";
import { modelSchema, type ModelSpec } from "../../../src/trainer/config.js";
import { buildModel } from "../../../src/trainer/model.js";
import { Rng } from "../../../src/trainer/rng.js";

const spec = (layers: unknown[], input_shape?: number[]): ModelSpec => modelSchema.parse({ input_shape, layers });
const tensor = (model: ReturnType<typeof buildModel>, name: string) => {
  const found = model.exportTensors().find((t) => t.name === name);
  if (!found) throw new Error(`no tensor ${name}`);
  return Array.from(found.data);
};

describe("batchnorm", () => {
  it("normalises each channel of an image batch to mean 0 and variance 1 in training", () => {
    const [C, H, W, rows] = [3, 4, 5, 6];
    const model = buildModel(spec([{ type: "batchnorm" }], [C, H, W]), C * H * W, { seed: 0, dtype: "float64" });
    const rng = new Rng(2);
    // Channel c has its own offset and spread, so a per-value or per-sample normalisation would fail.
    const x = new Float64Array(rows * C * H * W).map((_, i) => {
      const c = Math.floor(i / (H * W)) % C;
      return 10 * c - 4 + (c + 1) * rng.uniform(-1, 1);
    });
    const y = model.forward(x, rows, true);
    for (let c = 0; c < C; c++) {
      const values: number[] = [];
      for (let r = 0; r < rows; r++) for (let s = 0; s < H * W; s++) values.push(y[(r * C + c) * H * W + s]);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
      expect(Math.abs(mean)).toBeLessThan(1e-12);
      // var / (var + eps): 1 to within eps / var (the channel variances here are at least 0.3).
      expect(variance).toBeCloseTo(1, 4);
    }
  });

  it("normalises per feature of a flat input", () => {
    const model = buildModel(spec([{ type: "batchnorm" }]), 3, { seed: 0, dtype: "float64" });
    const x = new Float64Array([1, 100, -5, 2, 300, -5.5, 3, 200, -4.5, 6, 400, -5]);
    const y = model.forward(x, 4, true);
    for (let f = 0; f < 3; f++) {
      const column = [0, 1, 2, 3].map((r) => y[r * 3 + f]);
      expect(Math.abs(column.reduce((a, b) => a + b, 0))).toBeLessThan(1e-12);
      expect(column.reduce((a, b) => a + b * b, 0) / 4).toBeCloseTo(1, 3);
    }
  });

  it("updates the running statistics as PyTorch does, and uses them at inference", () => {
    const model = buildModel(spec([{ type: "batchnorm" }]), 2, { seed: 0, dtype: "float64" });
    expect(tensor(model, "0.running_mean")).toEqual([0, 0]);
    expect(tensor(model, "0.running_var")).toEqual([1, 1]);
    // Four rows of two features:
    //   feature 0: 1, 2, 3, 6    mean 3; squared deviations 4 + 1 + 0 + 9 = 14;
    //              biased variance 14/4 = 3.5 (normalises the batch), unbiased 14/3 = 4.6667.
    //   feature 1: -1, -1, 1, 1  mean 0; squared deviations 4; unbiased 4/3 = 1.3333.
    // momentum 0.1:
    //   running_mean = 0.9·0 + 0.1·3 = 0.3           and 0.9·0 + 0.1·0 = 0
    //   running_var  = 0.9·1 + 0.1·14/3 = 1.3666667  and 0.9·1 + 0.1·4/3 = 1.0333333
    const x = new Float64Array([1, -1, 2, -1, 3, 1, 6, 1]);
    const y = model.forward(x, 4, true);
    // Training normalises with the batch's biased variance: (6 - 3) / sqrt(3.5 + 1e-5) = 1.6035652.
    expect(y[6]).toBeCloseTo(1.6035652, 6);
    expect(y[6]).toBeCloseTo(3 / Math.sqrt(3.5 + 1e-5), 12);
    expect(tensor(model, "0.running_mean")[0]).toBeCloseTo(0.3, 7);
    expect(tensor(model, "0.running_mean")[1]).toBe(0);
    expect(tensor(model, "0.running_var")[0]).toBeCloseTo(1.3666667, 6);
    expect(tensor(model, "0.running_var")[1]).toBeCloseTo(1.0333333, 6);
    // The same batch again: running_mean = 0.9·0.3 + 0.3 = 0.57; running_var = 0.9·1.3666667 + 0.4666667 = 1.6966667.
    model.forward(x, 4, true);
    expect(model.buffers[0]).toBeCloseTo(0.57, 12);
    expect(model.buffers[2]).toBeCloseTo(1.6966667, 6);

    // Inference with gamma 2 and beta 0.5 on feature 0, from the running statistics:
    //   2·(1.57 - 0.57) / sqrt(1.6966667 + 1e-5) + 0.5 = 2 / 1.3025654 + 0.5 = 2.0354315.
    // (importTensors passes the running statistics through float32, hence 5 digits.)
    model.importTensors(
      model.exportTensors().map((t) => (t.name === "0.weight" ? { ...t, data: new Float32Array([2, 1]) } : t.name === "0.bias" ? { ...t, data: new Float32Array([0.5, 0]) } : t)),
    );
    const before = Array.from(model.buffers);
    const inference = model.forward(new Float64Array([1.57, 0]), 1, false);
    expect(inference[0]).toBeCloseTo(2.0354315, 5);
    expect(Array.from(model.buffers)).toEqual(before); // inference leaves them alone
  });

  it("follows its momentum and epsilon", () => {
    const model = buildModel(spec([{ type: "batchnorm", momentum: 0.5, epsilon: 0.25 }]), 1, { seed: 0, dtype: "float64" });
    // 0, 2: mean 1, biased variance 1, unbiased 2. running_mean 0.5·0 + 0.5·1 = 0.5,
    // running_var 0.5·1 + 0.5·2 = 1.5; y(2) = (2 - 1) / sqrt(1 + 0.25) = 0.894427.
    const y = model.forward(new Float64Array([0, 2]), 2, true);
    expect(y[1]).toBeCloseTo(0.894427, 6);
    expect(Array.from(model.buffers)).toEqual([0.5, 1.5]);
  });

  it("keeps gamma and beta trainable and the running statistics out of the parameters", () => {
    const model = buildModel(spec([{ type: "conv2d", filters: 4, kernel_size: 3 }, { type: "batchnorm" }], [2, 5, 5]), 50, { seed: 1 });
    const convParams = 4 * 2 * 3 * 3 + 4;
    expect(model.params).toHaveLength(convParams + 2 * 4);
    expect(model.grads).toHaveLength(model.params.length);
    expect(model.buffers).toHaveLength(2 * 4);
    expect(Array.from(model.params.subarray(convParams))).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    expect(model.exportTensors().map((t) => [t.name, t.shape])).toEqual([
      ["0.weight", [4, 2, 3, 3]],
      ["0.bias", [4]],
      ["1.weight", [4]],
      ["1.bias", [4]],
      ["1.running_mean", [4]],
      ["1.running_var", [4]],
    ]);
    const params = Float32Array.from(model.params);
    model.forward(new Float32Array(3 * 50).map((_, i) => Math.sin(i)), 3, true);
    expect(model.params).toEqual(params);
    expect(Array.from(model.buffers.subarray(0, 4)).some((v) => v !== 0)).toBe(true);
  });

  it("leaves the running statistics alone for a batch of one value per channel", () => {
    // PyTorch refuses to train on it; pulling the running variance towards 0 would break inference.
    const model = buildModel(spec([{ type: "batchnorm" }]), 2, { seed: 0, dtype: "float64" });
    const y = model.forward(new Float64Array([3, -4]), 1, true);
    expect(Array.from(y.subarray(0, 2))).toEqual([0, 0]); // x - mean = 0, times gamma, plus beta
    expect(Array.from(model.buffers)).toEqual([0, 0, 1, 1]);
  });
});
