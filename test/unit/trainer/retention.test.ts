import { describe, expect, it } from "vitest";
import { bestEpochs, inLastWindow, isPeriodic, trackedLoss, validatesAt, weightsToKeep } from "../../../src/trainer/retention.js";
import { makeConfig } from "./helpers.js";

const base = { model: { layers: [{ type: "dense" as const, units: 1 }] }, loss: "mse" as const };

describe("checkpoint retention", () => {
  it("ranks best by loss, ties to the earlier epoch, skipping epochs that did not validate", () => {
    const c = [
      { epoch: 1, tracked: 0.5 },
      { epoch: 2, tracked: null },
      { epoch: 3, tracked: 0.3 },
      { epoch: 4, tracked: 0.3 },
      { epoch: 5, tracked: 0.9 },
    ];
    expect(bestEpochs(c, 1)).toEqual([3]);
    expect(bestEpochs(c, 3)).toEqual([3, 4, 1]);
    expect(bestEpochs(c, 10)).toEqual([3, 4, 1, 5]);
  });

  it("knows the last window and periodic epochs", () => {
    const r = { keep_last: 2, keep_best: 1, every_epochs: 3 };
    expect([8, 9, 10, 11].map((e) => inLastWindow(r, e, 10))).toEqual([false, true, true, false]);
    expect([1, 3, 6, 7].map((e) => isPeriodic(r, e))).toEqual([false, true, true, false]);
    expect(isPeriodic({ ...r, every_epochs: 0 }, 3)).toBe(false);
  });

  it("tracks validation loss, or training loss without validation data, only on validating epochs", () => {
    const config = makeConfig({ ...base, epochs: 7, validate_every: 3 });
    expect([1, 3, 6, 7].map((e) => validatesAt(config, e))).toEqual([false, true, true, true]);
    expect(trackedLoss(config, { epoch: 3, trainLoss: 2, valLoss: 1 })).toBe(1);
    expect(trackedLoss(config, { epoch: 3, trainLoss: 2, valLoss: null })).toBe(2);
    expect(trackedLoss(config, { epoch: 2, trainLoss: 2, valLoss: null })).toBeNull();
  });

  it("keeps the weights of the newest, the periodic and the run's best epochs while the writer catches up", () => {
    const config = makeConfig({ ...base, epochs: 20, checkpoints: { keep_last: 2, keep_best: 2, every_epochs: 4 } });
    const losses = [0.9, 0.2, 0.8, 0.7, 0.1, 0.6, 0.5, 0.55];
    const reports = losses.map((l, i) => ({ epoch: i + 1, trainLoss: 1, valLoss: l }));
    // newest two: 7, 8; periodic: 4, 8; best two: 5 (0.1), 2 (0.2)
    expect(weightsToKeep(config, reports)).toEqual([false, true, false, true, true, false, true, true]);
    expect(weightsToKeep(makeConfig(base), reports)).toEqual([false, false, false, false, true, false, false, true]);
  });
});
