// init_from's trainer side: a run starts from the given tensors (batchnorm running statistics
// included) instead of the seeded initialisation; a resume's snapshot wins over them.
import { describe, expect, it } from "vitest";
import { buildModel, train, type NamedTensor } from "../../../src/trainer/index.js";
import { linearRegression, makeConfig } from "./helpers.js";

const config = makeConfig({
  model: { layers: [{ type: "dense", units: 5, activation: "relu" }, { type: "batchnorm" }, { type: "dense", units: 1 }] },
  loss: "mse",
  epochs: 2,
  batch_size: 16,
  seed: 3,
});

function sourceTensors(): NamedTensor[] {
  const other = buildModel(config.model, 4, { seed: 99 });
  return other.exportTensors().map((t) => ({ ...t, data: t.data.map((v, i) => (t.name.startsWith("1.running") ? 0.25 + i : v)) }));
}

describe("train with init", () => {
  it("starts from the given weights and batchnorm statistics", () => {
    const init = sourceTensors();
    expect(init.map((t) => t.name)).toContain("1.running_mean");
    const data = linearRegression(64, 1);
    const result = train(config, { train: data, val: null, task: "regression", init }, { onEpoch: () => undefined, shouldStop: () => true });
    expect(result.epochs).toBe(0);
    const got = result.model.exportTensors();
    expect(got.map((t) => [t.name, Array.from(t.data)])).toEqual(init.map((t) => [t.name, Array.from(t.data)]));
    // Without init, the seeded initialisation (different weights, statistics 0 and 1).
    const plain = train(config, { train: data, val: null, task: "regression" }, { onEpoch: () => undefined, shouldStop: () => true });
    expect(Array.from(plain.model.exportTensors().find((t) => t.name === "1.running_mean")!.data)).toEqual([0, 0, 0, 0, 0]);
  });

  it("trains on from them: the first epoch's loss equals that of a run continued from the same weights", () => {
    const data = linearRegression(64, 1);
    const first: number[] = [];
    const whole = train(config, { train: data, val: null, task: "regression" }, { onEpoch: (r) => first.push(r.trainLoss) });
    const init = whole.model.exportTensors();
    const next: number[] = [];
    train({ ...config, epochs: 1 }, { train: data, val: null, task: "regression", init }, { onEpoch: (r) => next.push(r.trainLoss) });
    expect(next[0]).toBeLessThan(first[0]);
  });
});
