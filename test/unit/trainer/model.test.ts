import { describe, expect, it } from "vitest";
import { buildModel, TrainerError, type ModelSpec, type NamedTensor } from "../../../src/trainer/index.js";
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
