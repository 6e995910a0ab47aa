// Dropout: identity at inference, inverted scaling in training, masks from the model's seeded
// dropout stream (so a restored RNG state repeats them).
import { describe, expect, it } from "vitest";
import { modelSchema, type ModelSpec } from "../../../src/trainer/config.js";
import { buildModel } from "../../../src/trainer/model.js";
import { Rng } from "../../../src/trainer/rng.js";

const spec = (layers: unknown[]): ModelSpec => modelSchema.parse({ layers });
const WIDTH = 100;
const ROWS = 100;

function input(seed = 1): Float64Array {
  const rng = new Rng(seed);
  // Never exactly 0, so a zero in the output means "dropped".
  return new Float64Array(ROWS * WIDTH).map(() => rng.uniform(0.5, 1.5) * (rng.next() < 0.5 ? -1 : 1));
}

const dropoutModel = (rate: number, seed = 7) => buildModel(spec([{ type: "dropout", rate }]), WIDTH, { seed, dtype: "float64" });

describe("dropout", () => {
  it("is the identity at inference", () => {
    const model = dropoutModel(0.5);
    const x = input();
    expect(Array.from(model.forward(x, ROWS, false).subarray(0, x.length))).toEqual(Array.from(x));
    expect(Array.from(model.predict(Float32Array.from(x), ROWS))).toEqual(Array.from(Float32Array.from(x)));
  });

  it("in training zeroes about `rate` of the values and scales the rest by 1/(1 - rate)", () => {
    const rate = 0.3;
    const model = dropoutModel(rate);
    const x = input();
    const y = model.forward(x, ROWS, true);
    let zeros = 0;
    for (let i = 0; i < x.length; i++) {
      if (y[i] === 0) zeros++;
      else expect(y[i]).toBeCloseTo(x[i] / (1 - rate), 12);
    }
    // 10,000 values: the dropped fraction has a standard deviation of sqrt(0.3 * 0.7 / 10000) = 0.0046.
    expect(Math.abs(zeros / x.length - rate)).toBeLessThan(4 * 0.0046);
  });

  it("backpropagates through the same mask and scale", () => {
    const model = buildModel(spec([{ type: "dense", units: WIDTH }, { type: "dropout", rate: 0.5 }]), 2, { seed: 3, dtype: "float64" });
    model.reserve(ROWS);
    const y = Float64Array.from(model.layers[1].forward(input(), ROWS, true).subarray(0, ROWS * WIDTH));
    const grad = model.layers[1].backward(new Float64Array(ROWS * WIDTH).fill(1), ROWS);
    expect(grad).not.toBeNull();
    for (let i = 0; i < ROWS * WIDTH; i++) expect(grad![i]).toBe(y[i] === 0 ? 0 : 2);
  });

  it("draws the same mask for the same seed and a restored RNG state, another for another seed", () => {
    const x = input();
    const mask = (y: ArrayLike<number>) => Array.from({ length: x.length }, (_, i) => (y[i] === 0 ? 0 : 1));
    const a = dropoutModel(0.5, 7);
    const first = mask(a.forward(x, ROWS, true));
    expect(mask(dropoutModel(0.5, 7).forward(x, ROWS, true))).toEqual(first);
    expect(mask(dropoutModel(0.5, 8).forward(x, ROWS, true))).not.toEqual(first);

    // Resume: a model given the state after the first batch draws what `a` draws for its second.
    const state = a.getRngState();
    const second = mask(a.forward(x, ROWS, true));
    expect(second).not.toEqual(first);
    const resumed = dropoutModel(0.5, 99);
    resumed.setRngState(state);
    expect(mask(resumed.forward(x, ROWS, true))).toEqual(second);
  });

  it("with rate 0 is the identity in training too, and draws nothing", () => {
    const model = dropoutModel(0);
    const x = input();
    const state = model.getRngState();
    expect(Array.from(model.forward(x, ROWS, true).subarray(0, x.length))).toEqual(Array.from(x));
    expect(model.getRngState()).toEqual(state);
  });

  it("uses its own stream: adding dropout changes no initial weight", () => {
    const plain = buildModel(spec([{ type: "dense", units: 8, activation: "relu" }, { type: "dense", units: 2 }]), 4, { seed: 5 });
    const dropped = buildModel(spec([{ type: "dense", units: 8, activation: "relu" }, { type: "dropout", rate: 0.2 }, { type: "dense", units: 2 }]), 4, {
      seed: 5,
    });
    expect(Array.from(dropped.params)).toEqual(Array.from(plain.params));
  });
});
