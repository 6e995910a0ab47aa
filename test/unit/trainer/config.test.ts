import { describe, expect, it } from "vitest";
import { checkFit, jobConfigSchema, zodIssueParam, type DatasetMeta } from "../../../src/trainer/index.js";
import { DATASET_ID, makeConfig } from "./helpers.js";

const minimal = { dataset_id: DATASET_ID, model: { layers: [{ type: "dense", units: 3 }] }, loss: "cross_entropy" };

function firstIssue(input: unknown) {
  const result = jobConfigSchema.safeParse(input);
  if (result.success) throw new Error("expected the config to be rejected");
  return { path: result.error.issues[0].path, param: zodIssueParam(result.error) };
}

describe("jobConfigSchema", () => {
  it("fills every default", () => {
    expect(jobConfigSchema.parse(minimal)).toEqual({
      dataset_id: DATASET_ID,
      validation: { split: 0.2 },
      model: { layers: [{ type: "dense", units: 3, activation: "linear" }] },
      loss: "cross_entropy",
      optimizer: { type: "sgd", lr: 0.01, momentum: 0.9, nesterov: false, weight_decay: 0 },
      lr_schedule: { type: "constant", warmup_epochs: 0 },
      epochs: 10,
      batch_size: 32,
      shuffle: true,
      validate_every: 1,
      augmentation: { horizontal_flip: 0, brightness: 0, noise_std: 0, translate: 0 },
      priority: 0,
      max_runtime_seconds: 86400,
      checkpoints: { keep_last: 1, keep_best: 1, every_epochs: 0 },
    });
  });

  it("fills optimizer defaults around given fields and keeps the seed", () => {
    const config = jobConfigSchema.parse({ ...minimal, optimizer: { type: "sgd", lr: 0.5 }, seed: 4294967295 });
    expect(config.optimizer).toEqual({ type: "sgd", lr: 0.5, momentum: 0.9, nesterov: false, weight_decay: 0 });
    expect(config.seed).toBe(4294967295);
  });

  it("does not share default objects between parses", () => {
    const a = jobConfigSchema.parse(minimal);
    (a.validation as { split: number }).split = 0.9;
    expect(jobConfigSchema.parse(minimal).validation).toEqual({ split: 0.2 });
  });

  it("accepts a validation dataset and an input shape", () => {
    const other = "0d9f8e7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f";
    const config = jobConfigSchema.parse({ ...minimal, validation: { dataset_id: other }, model: { input_shape: [1, 2, 2], layers: minimal.model.layers } });
    expect(config.validation).toEqual({ dataset_id: other });
    expect(config.model.input_shape).toEqual([1, 2, 2]);
  });

  it("names an unknown layer type by its path", () => {
    const input = { ...minimal, model: { layers: [{ type: "dense", units: 4 }, { type: "conv9d", units: 3 }] } };
    expect(firstIssue(input)).toEqual({ path: ["model", "layers", 1, "type"], param: "model.layers.1.type" });
  });

  it("names an unknown loss", () => {
    expect(firstIssue({ ...minimal, loss: "hinge" })).toEqual({ path: ["loss"], param: "loss" });
  });

  it.each([0, 65537, 2.5, "8"])("names bad units (%s)", (units) => {
    const input = { ...minimal, model: { layers: [{ type: "dense", units: 4 }, { type: "dense", units }] } };
    expect(firstIssue(input)).toEqual({ path: ["model", "layers", 1, "units"], param: "model.layers.1.units" });
  });

  it("rejects unknown keys everywhere, naming the key", () => {
    expect(firstIssue({ ...minimal, learning_rate: 1 }).param).toBe("learning_rate");
    expect(firstIssue({ ...minimal, model: { layers: [{ type: "dense", units: 3, bias: false }] } }).param).toBe(
      "model.layers.0.bias",
    );
    expect(firstIssue({ ...minimal, optimizer: { type: "sgd", beta: 1 } }).param).toBe("optimizer.beta");
  });

  it("digs into a failed union to name the real field", () => {
    expect(firstIssue({ ...minimal, validation: { split: 1.5 } }).param).toBe("validation.split");
    expect(firstIssue({ ...minimal, validation: { dataset_id: "nope" } }).param).toBe("validation.dataset_id");
    // Both keys: the split branch fails only on the extra key, so that is what we name.
    expect(firstIssue({ ...minimal, validation: { split: 0.5, dataset_id: DATASET_ID } }).param).toBe("validation.dataset_id");
  });

  it("checks the other ranges", () => {
    expect(firstIssue({ ...minimal, dataset_id: "abc" }).param).toBe("dataset_id");
    expect(firstIssue({ ...minimal, optimizer: { type: "nadam" } }).param).toBe("optimizer.type");
    expect(firstIssue({ ...minimal, optimizer: { type: "sgd", momentum: 1 } }).param).toBe("optimizer.momentum");
    expect(firstIssue({ ...minimal, optimizer: { type: "sgd", lr: 0 } }).param).toBe("optimizer.lr");
    expect(firstIssue({ ...minimal, epochs: 0 }).param).toBe("epochs");
    expect(firstIssue({ ...minimal, batch_size: 65537 }).param).toBe("batch_size");
    expect(firstIssue({ ...minimal, seed: 4294967296 }).param).toBe("seed");
    expect(firstIssue({ ...minimal, seed: -1 }).param).toBe("seed");
    expect(firstIssue({ ...minimal, model: { layers: [] } }).param).toBe("model.layers");
    expect(firstIssue({ ...minimal, model: { input_shape: [1, 2, 3, 4, 5], layers: minimal.model.layers } }).param).toBe(
      "model.input_shape",
    );
    expect(firstIssue({ ...minimal, model: { input_shape: [0], layers: minimal.model.layers } }).param).toBe("model.input_shape.0");
    expect(firstIssue({ ...minimal, model: { layers: [{ type: "dense", units: 3, activation: "swish" }] } }).param).toBe(
      "model.layers.0.activation",
    );
  });
});

describe("checkFit", () => {
  const classification: DatasetMeta = { task: "classification", inputWidth: 4, inputShape: [4], targetWidth: 1, classes: 3 };
  const regression: DatasetMeta = { task: "regression", inputWidth: 4, inputShape: [2, 2], targetWidth: 2, classes: 0 };
  const layers = (units: number) => [{ type: "dense" as const, units: 8, activation: "relu" as const }, { type: "dense" as const, units }];

  it("accepts configs that fit", () => {
    expect(checkFit(makeConfig({ model: { layers: layers(3) }, loss: "cross_entropy" }), classification)).toBeNull();
    expect(checkFit(makeConfig({ model: { input_shape: [2, 2], layers: layers(2) }, loss: "mse" }), regression)).toBeNull();
    // A flat dataset may be read in any shape of the same size.
    expect(checkFit(makeConfig({ model: { input_shape: [2, 2], layers: layers(3) }, loss: "cross_entropy" }), classification)).toBeNull();
    expect(checkFit(makeConfig({ model: { layers: layers(2) }, loss: "mae" }), regression)).toBeNull();
  });

  it("rejects a shape that differs from the one the dataset declares, even of the same size", () => {
    const problem = checkFit(makeConfig({ model: { input_shape: [4, 1], layers: layers(2) }, loss: "mse" }), regression);
    expect(problem?.param).toBe("model.input_shape");
    expect(problem?.message).toContain("[4, 1]");
    expect(problem?.message).toContain("[2, 2]");
  });

  it("rejects an input shape of the wrong size, naming both shapes", () => {
    const problem = checkFit(makeConfig({ model: { input_shape: [3, 3], layers: layers(2) }, loss: "mse" }), regression);
    expect(problem?.param).toBe("model.input_shape");
    expect(problem?.message).toContain("[3, 3]");
    expect(problem?.message).toContain("[2, 2]");
  });

  it("rejects a loss that does not suit the task", () => {
    const ce = checkFit(makeConfig({ model: { layers: layers(2) }, loss: "cross_entropy" }), regression);
    expect(ce).toEqual({ param: "loss", message: expect.stringContaining("classification") });
    const mse = checkFit(makeConfig({ model: { layers: layers(3) }, loss: "mse" }), classification);
    expect(mse).toEqual({ param: "loss", message: expect.stringContaining("regression") });
    const oneClass = checkFit(makeConfig({ model: { layers: layers(1) }, loss: "cross_entropy" }), { ...classification, classes: 1 });
    expect(oneClass).toEqual({ param: "loss", message: expect.stringContaining("at least 2 classes") });
  });

  it("rejects a last layer whose units do not match, naming both numbers", () => {
    const ce = checkFit(makeConfig({ model: { layers: layers(5) }, loss: "cross_entropy" }), classification);
    expect(ce?.param).toBe("model.layers.1.units");
    expect(ce?.message).toMatch(/5 units.*needs 3/);
    const mse = checkFit(makeConfig({ model: { layers: layers(7) }, loss: "mse" }), regression);
    expect(mse?.param).toBe("model.layers.1.units");
    expect(mse?.message).toMatch(/7 units.*needs 2/);
  });
});

describe("checkFit: combinations that cannot work are refused, naming the field", () => {
  const images: DatasetMeta = { task: "classification", inputWidth: 64, inputShape: [1, 8, 8], targetWidth: 1, classes: 3 };
  const flat: DatasetMeta = { task: "regression", inputWidth: 4, inputShape: [4], targetWidth: 1, classes: 0 };
  const conv = [
    { type: "conv2d" as const, filters: 2, kernel_size: 3 },
    { type: "flatten" as const },
    { type: "dense" as const, units: 3 },
  ];
  const fit = (over: Parameters<typeof makeConfig>[0], meta: DatasetMeta) => checkFit(makeConfig(over), meta);

  it("a CNN on images fits", () => {
    expect(fit({ model: { layers: conv }, loss: "cross_entropy" }, images)).toBeNull();
  });

  it("a convolution on flat inputs", () => {
    const p = fit({ model: { layers: [{ type: "conv2d", filters: 2, kernel_size: 1 }, { type: "flatten" }, { type: "dense", units: 1 }] }, loss: "mse" }, flat);
    expect(p?.param).toMatch(/^model\.(layers\.0|input_shape)/);
  });

  it("softmax anywhere but the last layer", () => {
    const p = fit({ model: { layers: [{ type: "conv2d", filters: 2, kernel_size: 3, activation: "softmax" }, { type: "flatten" }, { type: "dense", units: 3 }] }, loss: "cross_entropy" }, images);
    expect(p?.param).toBe("model.layers.0.activation");
  });

  it("cross_entropy after a last activation other than linear or softmax", () => {
    const layers = [...conv.slice(0, 2), { type: "dense" as const, units: 3, activation: "relu" as const }];
    expect(fit({ model: { layers }, loss: "cross_entropy" }, images)?.param).toBe("model.layers.2.activation");
    const softmax = [...conv.slice(0, 2), { type: "dense" as const, units: 3, activation: "softmax" as const }];
    expect(fit({ model: { layers: softmax }, loss: "cross_entropy" }, images)).toBeNull();
  });

  it("monitors the task does not measure", () => {
    const layers = [{ type: "dense" as const, units: 1 }];
    expect(fit({ model: { layers }, loss: "mse", early_stopping: { monitor: "val_accuracy" } }, flat)?.param).toBe("early_stopping.monitor");
    expect(fit({ model: { layers: conv }, loss: "cross_entropy", early_stopping: { monitor: "val_mae" } }, images)?.param).toBe("early_stopping.monitor");
    expect(fit({ model: { layers: conv }, loss: "cross_entropy", lr_schedule: { type: "reduce_on_plateau", monitor: "val_top5_accuracy" } }, images)?.param).toBe(
      "lr_schedule.monitor",
    );
  });

  it("augmentation on inputs that are not images", () => {
    const p = fit({ model: { layers: [{ type: "dense", units: 1 }] }, loss: "mse", augmentation: { horizontal_flip: 0.5 } }, flat);
    expect(p?.param).toBe("augmentation");
  });

  it("a warm-up as long as the run", () => {
    const p = fit({ model: { layers: conv }, loss: "cross_entropy", epochs: 3, lr_schedule: { type: "cosine", warmup_epochs: 3 } }, images);
    expect(p?.param).toBe("lr_schedule.warmup_epochs");
  });

  it("binary_cross_entropy needs as many outputs as target columns, and measures accuracy", () => {
    const multi: DatasetMeta = { task: "regression", inputWidth: 4, inputShape: [4], targetWidth: 3, classes: 0 };
    expect(fit({ model: { layers: [{ type: "dense", units: 3 }] }, loss: "binary_cross_entropy", early_stopping: { monitor: "val_accuracy" } }, multi)).toBeNull();
    expect(fit({ model: { layers: [{ type: "dense", units: 2 }] }, loss: "binary_cross_entropy" }, multi)?.param).toBe("model.layers.0.units");
  });
});
