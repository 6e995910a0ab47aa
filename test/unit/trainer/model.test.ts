import { describe, expect, it } from "vitest";
import { buildModel, modelSchema, Rng, RngStream, TrainerError, type ModelSpec, type NamedTensor } from "../../../src/trainer/index.js";
import { bytesOf } from "./helpers.js";

const spec: ModelSpec = {
  layers: [
    { type: "dense", units: 3, activation: "relu" },
    { type: "dense", units: 2, activation: "linear" },
  ],
};

describe("buildModel", () => {
  it("initialises bit-identically for the same seed, differently for another", () => {
    const a = buildModel(spec, 4, { seed: 42 });
    expect(bytesOf(buildModel(spec, 4, { seed: 42 }).params)).toEqual(bytesOf(a.params));
    expect(bytesOf(buildModel(spec, 4, { seed: 43 }).params)).not.toEqual(bytesOf(a.params));
  });

  it("uses He uniform before relu, Glorot uniform otherwise, zero biases", () => {
    const big: ModelSpec = {
      layers: [
        { type: "dense", units: 64, activation: "relu" },
        { type: "dense", units: 32, activation: "tanh" },
      ],
    };
    const [w0, b0, w1, b1] = buildModel(big, 100, { seed: 1 }).exportTensors();
    const he = Math.sqrt(6 / 100);
    const glorot = Math.sqrt(6 / (64 + 32));
    const maxAbs = (t: NamedTensor) => t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxAbs(w0)).toBeLessThanOrEqual(he);
    expect(maxAbs(w0)).toBeGreaterThan(0.95 * he);
    expect(maxAbs(w1)).toBeLessThanOrEqual(glorot);
    expect(maxAbs(w1)).toBeGreaterThan(0.95 * glorot);
    // Uniform on (-L, L) has variance L^2 / 3.
    const variance = w0.data.reduce((s, v) => s + v * v, 0) / w0.data.length;
    expect(variance).toBeCloseTo((he * he) / 3, 2);
    expect(b0.data.every((v) => v === 0) && b1.data.every((v) => v === 0)).toBe(true);
  });

  it("exports PyTorch layout [units, in_features], checked against a forward pass by hand", () => {
    const model = buildModel(spec, 4, { seed: 7 });
    // Give the biases values too, through import, so they are part of the check.
    model.importTensors(
      model.exportTensors().map((t) => (t.name.endsWith("bias") ? { ...t, data: t.data.map((_, i) => 0.1 * (i + 1)) } : t)),
    );
    const tensors = model.exportTensors();
    expect(tensors.map((t) => [t.name, t.shape])).toEqual([
      ["0.weight", [3, 4]],
      ["0.bias", [3]],
      ["1.weight", [2, 3]],
      ["1.bias", [2]],
    ]);
    const [w0, b0, w1, b1] = tensors.map((t) => t.data);
    const x = [0.5, -1, 2, 0.25];
    // PyTorch's Linear: y[o] = b[o] + sum_i W[o, i] x[i], with W[o, i] at o * in_features + i.
    const hidden = [0, 1, 2].map((o) => Math.max(0, b0[o] + x.reduce((s, xi, i) => s + w0[o * 4 + i] * xi, 0)));
    const expected = [0, 1].map((o) => b1[o] + hidden.reduce((s, h, i) => s + w1[o * 3 + i] * h, 0));
    const got = model.predict(new Float32Array(x), 1);
    expect(got[0]).toBeCloseTo(expected[0], 5);
    expect(got[1]).toBeCloseTo(expected[1], 5);
  });

  it("imports what it exports, bit for bit", () => {
    const a = buildModel(spec, 4, { seed: 1 });
    const b = buildModel(spec, 4, { seed: 2 });
    b.importTensors(a.exportTensors());
    expect(bytesOf(b.params)).toEqual(bytesOf(a.params));
    // Also from a name-keyed record, as decodeSafetensors returns.
    const c = buildModel(spec, 4, { seed: 3 });
    c.importTensors(Object.fromEntries(a.exportTensors().map((t) => [t.name, t])));
    expect(bytesOf(c.params)).toEqual(bytesOf(a.params));
  });

  it("rejects missing, misshapen and unexpected tensors, leaving the model untouched", () => {
    const model = buildModel(spec, 4, { seed: 1 });
    const before = Float32Array.from(model.params);
    const good = buildModel(spec, 4, { seed: 9 }).exportTensors();
    const attempt = (tensors: NamedTensor[]) => () => model.importTensors(tensors);

    expect(attempt(good.filter((t) => t.name !== "1.bias"))).toThrow(/no tensor "1.bias"/);
    const transposed = good.map((t) => (t.name === "0.weight" ? { ...t, shape: [4, 3] } : t));
    expect(attempt(transposed)).toThrow(/"0.weight" has shape \[4, 3\].*expects \[3, 4\]/);
    const short = good.map((t) => (t.name === "1.bias" ? { ...t, data: new Float32Array(1) } : t));
    expect(attempt(short)).toThrow(/"1.bias"/);
    expect(attempt([...good, { name: "2.weight", shape: [1], data: new Float32Array(1) }])).toThrow(/unexpected.*2.weight/);
    expect(attempt(transposed)).toThrow(TrainerError);
    expect(model.params).toEqual(before);
  });

  it("rejects an input_shape that does not hold the input width", () => {
    expect(() => buildModel({ ...spec, input_shape: [2, 3] }, 4, { seed: 0 })).toThrow(TrainerError);
    expect(buildModel({ ...spec, input_shape: [2, 2] }, 4, { seed: 0 }).outputWidth).toBe(2);
  });

  it("predicts in batches, matching row-by-row forward passes", () => {
    const model = buildModel(spec, 4, { seed: 3 });
    const rows = 600; // more than one predict batch
    const x = new Float32Array(rows * 4).map((_, i) => Math.sin(i));
    const all = model.predict(x, rows);
    expect(all).toHaveLength(rows * 2);
    for (const r of [0, 255, 256, 599]) {
      const one = model.predict(x.slice(r * 4, r * 4 + 4), 1);
      expect(all[r * 2]).toBe(one[0]);
      expect(all[r * 2 + 1]).toBe(one[1]);
    }
    expect(() => model.predict(x, rows + 1)).toThrow(/expected/);
  });

  it("reuses its buffers: no allocation per step once warm", () => {
    const model = buildModel(spec, 4, { seed: 3 });
    const x = new Float32Array(8 * 4);
    const first = model.forward(x, 8, true);
    expect(model.forward(x, 5, true)).toBe(first);
    expect(model.forward(x, 8, false)).toBe(first);
    expect(first).toBeInstanceOf(Float32Array);
    expect(buildModel(spec, 4, { seed: 3, dtype: "float64" }).forward(new Float64Array(4), 1, true)).toBeInstanceOf(Float64Array);
  });

  it("keeps one flat buffer of parameters, in layer order", () => {
    const model = buildModel(spec, 4, { seed: 3 });
    expect(model.params).toHaveLength(4 * 3 + 3 + 3 * 2 + 2);
    expect(model.grads).toHaveLength(model.params.length);
    const exported = model.exportTensors();
    // The second layer's bias is the last 2 values of the flat buffer.
    expect(Array.from(model.params.subarray(-2))).toEqual(Array.from(exported[3].data));
  });
});

// A CNN with every parameterised layer kind and batchnorm buffers.
const cnn: ModelSpec = modelSchema.parse({
  input_shape: [2, 6, 6],
  layers: [
    { type: "conv2d", filters: 4, kernel_size: 3, padding: "same" },
    { type: "batchnorm" },
    { type: "activation", activation: "relu" },
    { type: "maxpool2d" },
    { type: "conv2d", filters: 3, kernel_size: [2, 1], activation: "elu" },
    { type: "flatten" },
    { type: "dropout", rate: 0.25 },
    { type: "dense", units: 5, activation: "gelu" },
    { type: "batchnorm" },
    { type: "dense", units: 3, activation: "softmax" },
  ],
});
const CNN_INPUT = 72;

describe("buildModel with convolutions", () => {
  it("initialises a CNN bit-identically for the same seed, differently for another", () => {
    const a = buildModel(cnn, CNN_INPUT, { seed: 42 });
    const b = buildModel(cnn, CNN_INPUT, { seed: 42 });
    expect(bytesOf(b.params)).toEqual(bytesOf(a.params));
    expect(bytesOf(b.buffers)).toEqual(bytesOf(a.buffers));
    expect(bytesOf(buildModel(cnn, CNN_INPUT, { seed: 43 }).params)).not.toEqual(bytesOf(a.params));
  });

  it("initialises conv weights with fan_in = C*kh*kw (He) or fan_in + fan_out = (C + filters)*kh*kw (Glorot)", () => {
    const spec = modelSchema.parse({
      input_shape: [8, 12, 12],
      layers: [
        { type: "conv2d", filters: 16, kernel_size: 3, activation: "leaky_relu" },
        { type: "conv2d", filters: 32, kernel_size: [3, 2], activation: "tanh" },
      ],
    });
    const [w0, b0, w1] = buildModel(spec, 8 * 144, { seed: 1 }).exportTensors();
    const he = Math.sqrt(6 / (8 * 9));
    const glorot = Math.sqrt(6 / ((16 + 32) * 6));
    const maxAbs = (t: NamedTensor) => t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxAbs(w0)).toBeLessThanOrEqual(he);
    expect(maxAbs(w0)).toBeGreaterThan(0.95 * he);
    expect(maxAbs(w1)).toBeLessThanOrEqual(glorot);
    expect(maxAbs(w1)).toBeGreaterThan(0.95 * glorot);
    expect(b0.data.every((v) => v === 0)).toBe(true);
  });

  it("draws initial weights in PyTorch's tensor order from the init stream", () => {
    const spec = modelSchema.parse({
      input_shape: [2, 4, 4],
      layers: [{ type: "conv2d", filters: 3, kernel_size: [2, 3], activation: "relu" }, { type: "dense", units: 2 }],
    });
    const [conv, , dense] = buildModel(spec, 32, { seed: 9 }).exportTensors();
    const rng = new Rng(9, RngStream.init);
    // Conv: [3, 2, 2, 3] row-major, He with fan_in 2·2·3 = 12. Then dense: [2, 3·3·2] row-major,
    // Glorot with fan_in 18 and fan_out 2.
    const he = Math.sqrt(6 / 12);
    expect(Array.from(conv.data)).toEqual(Array.from(Float32Array.from({ length: 36 }, () => rng.uniform(-he, he))));
    const glorot = Math.sqrt(6 / 20);
    expect(Array.from(dense.data)).toEqual(Array.from(Float32Array.from({ length: 36 }, () => rng.uniform(-glorot, glorot))));
  });

  it("round-trips a CNN with batchnorm through exportTensors/importTensors, buffers included", () => {
    const a = buildModel(cnn, CNN_INPUT, { seed: 1 });
    const x = new Float32Array(4 * CNN_INPUT).map((_, i) => Math.cos(i * 0.7));
    a.forward(x, 4, true); // moves the running statistics away from 0 and 1
    a.forward(x, 4, true);
    const tensors = a.exportTensors();
    expect(tensors.map((t) => t.name)).toEqual([
      "0.weight", "0.bias",
      "1.weight", "1.bias", "1.running_mean", "1.running_var",
      "4.weight", "4.bias",
      "7.weight", "7.bias",
      "8.weight", "8.bias", "8.running_mean", "8.running_var",
      "9.weight", "9.bias",
    ]);
    expect(tensors.find((t) => t.name === "7.weight")?.shape).toEqual([5, 3 * 2 * 3]); // in-features of the flattened [3, 2, 3]

    const b = buildModel(cnn, CNN_INPUT, { seed: 2 });
    b.importTensors(tensors);
    expect(bytesOf(b.params)).toEqual(bytesOf(a.params));
    expect(bytesOf(b.buffers)).toEqual(bytesOf(a.buffers));
    expect(bytesOf(b.predict(x, 4))).toEqual(bytesOf(a.predict(x, 4)));

    // A missing buffer is an error like a missing parameter, and leaves the model untouched.
    const buffers = Float32Array.from(b.buffers);
    const fresh = buildModel(cnn, CNN_INPUT, { seed: 3 }).exportTensors();
    expect(() => b.importTensors(fresh.filter((t) => t.name !== "8.running_var"))).toThrow(/no tensor "8.running_var"/);
    expect(b.buffers).toEqual(buffers);
  });

  it("folds a last softmax into the loss: forward gives logits, predict probabilities", () => {
    const spec = modelSchema.parse({ layers: [{ type: "dense", units: 4, activation: "tanh" }, { type: "dense", units: 3, activation: "softmax" }] });
    const linear = modelSchema.parse({ layers: [{ type: "dense", units: 4, activation: "tanh" }, { type: "dense", units: 3 }] });
    const folded = buildModel(spec, 2, { seed: 4, foldOutput: "softmax" });
    const logits = buildModel(linear, 2, { seed: 4 });
    expect(folded.outputActivation).toBe("softmax");
    expect(buildModel(spec, 2, { seed: 4 }).outputActivation).toBeNull();
    expect(bytesOf(folded.params)).toEqual(bytesOf(logits.params)); // same initialisation
    const x = new Float32Array([0.5, -1, 2, 0.25, -3, 1]);
    const z = Float32Array.from(folded.forward(x, 3, false).subarray(0, 9));
    expect(z).toEqual(Float32Array.from(logits.forward(x, 3, false).subarray(0, 9)));
    const p = folded.predict(x, 3);
    for (let r = 0; r < 3; r++) {
      const row = Array.from(p.subarray(r * 3, r * 3 + 3));
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      const expSum = [0, 1, 2].reduce((s, j) => s + Math.exp(z[r * 3 + j]), 0);
      row.forEach((v, j) => expect(v).toBeCloseTo(Math.exp(z[r * 3 + j]) / expSum, 6));
    }
    // Unfolded, the same model applies softmax itself in forward.
    const unfolded = buildModel(spec, 2, { seed: 4 }).forward(x, 3, false);
    for (let i = 0; i < 9; i++) expect(unfolded[i]).toBeCloseTo(p[i], 6);
  });

  it("folds a last sigmoid the same way, and refuses to fold what the model does not end with", () => {
    const spec = modelSchema.parse({ layers: [{ type: "dense", units: 2, activation: "sigmoid" }, { type: "dropout", rate: 0.1 }] });
    const model = buildModel(spec, 3, { seed: 1, foldOutput: "sigmoid" });
    const x = new Float32Array([4, -2, 1, -3, 0.5, 2]);
    const z = Float32Array.from(model.forward(x, 2, false).subarray(0, 4));
    const p = model.predict(x, 2);
    expect(z.some((v) => v < 0 || v > 1)).toBe(true); // logits, not probabilities
    p.forEach((v, i) => {
      expect(v).toBeGreaterThan(0);
      expect(v).toBeLessThan(1);
      expect(v).toBeCloseTo(1 / (1 + Math.exp(-z[i])), 6);
    });
    expect(() => buildModel(spec, 3, { seed: 1, foldOutput: "softmax" })).toThrow(TrainerError);
    expect(() => buildModel(cnn, CNN_INPUT, { seed: 1, foldOutput: "sigmoid" })).toThrow(/last activation is not sigmoid/);
  });

  it("computes no input gradient below the first layer with parameters", () => {
    const spec = modelSchema.parse({
      input_shape: [1, 4, 4],
      layers: [{ type: "maxpool2d" }, { type: "flatten" }, { type: "dense", units: 3, activation: "tanh" }, { type: "dense", units: 1 }],
    });
    const model = buildModel(spec, 16, { seed: 0, dtype: "float64" });
    model.forward(new Float64Array(16).fill(1), 1, true);
    expect(model.layers[3].backward(new Float64Array([1]), 1)).toHaveLength(3);
    expect(model.layers[2].backward(new Float64Array([1, 1, 1]), 1)).toBeNull();
    expect(model.layers[1].backward(new Float64Array(4), 1)).toBeNull();
    expect(model.layers[0].backward(new Float64Array(4), 1)).toBeNull();
  });

  it("reuses its buffers for a CNN: no allocation per step once warm", () => {
    const model = buildModel(cnn, CNN_INPUT, { seed: 3 });
    const x = new Float32Array(8 * CNN_INPUT).map((_, i) => Math.sin(i));
    const first = model.forward(x, 8, true);
    model.backward(new Float32Array(8 * 3).fill(0.1), 8);
    expect(model.forward(x, 5, true)).toBe(first);
    expect(model.forward(x, 8, false)).toBe(first);
  });

  it("learns: a small CNN separates horizontal from vertical bars with plain gradient descent", () => {
    const spec = modelSchema.parse({
      input_shape: [1, 6, 6],
      layers: [
        { type: "conv2d", filters: 4, kernel_size: 3, padding: "same", activation: "relu" },
        { type: "maxpool2d" },
        { type: "flatten" },
        { type: "dense", units: 1 },
      ],
    });
    const rng = new Rng(12);
    const rows = 32;
    const x = new Float32Array(rows * 36);
    const y = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      const vertical = r % 2;
      const line = rng.int(6);
      for (let i = 0; i < 6; i++) x[r * 36 + (vertical ? i * 6 + line : line * 6 + i)] = 1;
      for (let i = 0; i < 36; i++) x[r * 36 + i] += 0.1 * rng.uniform(-1, 1);
      y[r] = vertical ? 1 : -1;
    }
    const model = buildModel(spec, 36, { seed: 2 });
    const grad = new Float32Array(rows);
    const mse = () => {
      const out = model.forward(x, rows, true);
      let sum = 0;
      for (let r = 0; r < rows; r++) {
        sum += (out[r] - y[r]) ** 2;
        grad[r] = (2 * (out[r] - y[r])) / rows;
      }
      return sum / rows;
    };
    const initial = mse();
    for (let step = 0; step < 150; step++) {
      mse();
      model.backward(grad, rows);
      for (let i = 0; i < model.params.length; i++) model.params[i] -= 0.05 * model.grads[i];
    }
    expect(mse()).toBeLessThan(0.1 * initial);
  });
});

describe("the model's parameter blocks (ParamBlocks)", () => {
  it("lay out every parameter in order: a dense layer's weights [units, in] and bias [units, 1], any other layer's values one column", () => {
    const spec = modelSchema.parse({
      input_shape: [1, 6, 6],
      layers: [
        { type: "conv2d", filters: 3, kernel_size: 3, activation: "relu" },
        { type: "batchnorm" },
        { type: "flatten" },
        { type: "dense", units: 7, activation: "relu" },
        { type: "dense", units: 2 },
      ],
    });
    const model = buildModel(spec, 36, { seed: 1 });
    const blocks = Array.from(model.paramBlocks);
    const rows: number[][] = [];
    for (let i = 0; i < blocks.length; i += 3) rows.push(blocks.slice(i, i + 3));
    // conv: 3·9 weights + 3 biases; batchnorm: 3 scales + 3 shifts; dense 48 -> 7; dense 7 -> 2.
    expect(rows).toEqual([
      [0, 30, 1],
      [30, 6, 1],
      [36, 7, 48],
      [372, 7, 1],
      [379, 2, 7],
      [393, 2, 1],
    ]);
    expect(395).toBe(model.params.length);
  });
});
