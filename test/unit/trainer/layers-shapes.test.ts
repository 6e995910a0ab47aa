// Shape inference: the window arithmetic worked out by hand, a whole CNN, and every problem it
// reports with the config field to change.
import { describe, expect, it } from "vitest";
import { modelSchema, type ModelSpec } from "../../../src/trainer/config.js";
import { buildModel } from "../../../src/trainer/model.js";
import { inferShapes, windowGeometry, windowSpan } from "../../../src/trainer/shapes.js";

const spec = (layers: unknown[], input_shape?: number[]): ModelSpec => modelSchema.parse({ input_shape, layers });

function problem(layers: unknown[], inputShape: number[]) {
  const result = inferShapes(spec(layers), inputShape);
  if (!("param" in result)) throw new Error(`expected a problem, got ${JSON.stringify(result.shapes)}`);
  return result;
}

describe("windowSpan", () => {
  it("valid: floor((size - kernel) / stride) + 1, no padding", () => {
    expect(windowSpan(28, 3, 1, "valid")).toEqual({ out: 26, padBefore: 0, padTotal: 0 });
    // (10 - 2) / 3 = 2.67 -> 2, + 1 = 3 windows, at 0, 3, 6 (the last column is dropped).
    expect(windowSpan(10, 2, 3, "valid")).toEqual({ out: 3, padBefore: 0, padTotal: 0 });
    expect(windowSpan(7, 3, 2, "valid")).toEqual({ out: 3, padBefore: 0, padTotal: 0 });
  });

  it("same: ceil(size / stride), padding max((out-1)*stride + kernel - size, 0), the odd one after", () => {
    // 28, k3, s1: 28 windows, (27 + 3 - 28) = 2 padding, 1 before and 1 after.
    expect(windowSpan(28, 3, 1, "same")).toEqual({ out: 28, padBefore: 1, padTotal: 2 });
    // 7, k3, s2: ceil(3.5) = 4 windows, (3*2 + 3 - 7) = 2 padding, 1 + 1.
    expect(windowSpan(7, 3, 2, "same")).toEqual({ out: 4, padBefore: 1, padTotal: 2 });
    // 8, k3, s2: 4 windows, (3*2 + 3 - 8) = 1 padding, 0 before and 1 after (TF/Keras).
    expect(windowSpan(8, 3, 2, "same")).toEqual({ out: 4, padBefore: 0, padTotal: 1 });
    // 5, k2, s1: 5 windows, (4 + 2 - 5) = 1 padding, after.
    expect(windowSpan(5, 2, 1, "same")).toEqual({ out: 5, padBefore: 0, padTotal: 1 });
    // 10, k1, s3: 4 windows at 0, 3, 6, 9: no padding needed.
    expect(windowSpan(10, 1, 3, "same")).toEqual({ out: 4, padBefore: 0, padTotal: 0 });
    // A kernel larger than the input still fits once padded: 5, k7, s1: 5 windows, 4+7-5 = 6.
    expect(windowSpan(5, 7, 1, "same")).toEqual({ out: 5, padBefore: 3, padTotal: 6 });
  });

  it("windowGeometry reads ints and [h, w] pairs", () => {
    expect(windowGeometry([3, 8, 7], [3, 2], [2, 1], "same")).toEqual({
      channels: 3,
      height: 8,
      width: 7,
      kernelH: 3,
      kernelW: 2,
      strideH: 2,
      strideW: 1,
      padTop: 0, // 4 rows: (3*2 + 3 - 8) = 1 padding, after
      padLeft: 0, // 7 columns: (6 + 2 - 7) = 1 padding, after
      outHeight: 4,
      outWidth: 7,
    });
  });
});

describe("inferShapes", () => {
  it("follows a CNN layer by layer", () => {
    const layers = [
      { type: "conv2d", filters: 16, kernel_size: 3, padding: "same", activation: "relu" }, // [16, 28, 28]
      { type: "maxpool2d" }, // pool 2, stride 2: [16, 14, 14]
      { type: "conv2d", filters: 32, kernel_size: 3, stride: 2 }, // floor(11 / 2) + 1 = 6: [32, 6, 6]
      { type: "batchnorm" },
      { type: "activation", activation: "gelu" },
      { type: "avgpool2d", pool_size: 3, stride: 2, padding: "same" }, // ceil(6 / 2) = 3: [32, 3, 3]
      { type: "conv2d", filters: 8, kernel_size: [3, 1], padding: "valid" }, // [8, 1, 3]
      { type: "flatten" }, // [24]
      { type: "dense", units: 64, activation: "relu" },
      { type: "dropout", rate: 0.5 },
      { type: "dense", units: 10, activation: "softmax" },
    ];
    expect(inferShapes(spec(layers), [1, 28, 28])).toEqual({
      shapes: [[16, 28, 28], [16, 14, 14], [32, 6, 6], [32, 6, 6], [32, 6, 6], [32, 3, 3], [8, 1, 3], [24], [64], [64], [10]],
    });
  });

  it("reads a 2-D input as one channel, and dense reads any shape flattened", () => {
    expect(inferShapes(spec([{ type: "conv2d", filters: 4, kernel_size: 3 }, { type: "dense", units: 2 }]), [10, 9])).toEqual({
      shapes: [[4, 8, 7], [2]],
    });
    expect(inferShapes(spec([{ type: "maxpool2d", pool_size: [2, 3] }]), [10, 9])).toEqual({ shapes: [[1, 5, 3]] });
    expect(inferShapes(spec([{ type: "flatten" }, { type: "dense", units: 3 }]), [5])).toEqual({ shapes: [[5], [3]] });
  });

  it("needs an image input for conv2d and pooling", () => {
    // No input_shape on a flat dataset: the fix is model.input_shape.
    const flat = problem([{ type: "conv2d", filters: 8, kernel_size: 3 }], [784]);
    expect(flat.param).toBe("model.input_shape");
    expect(flat.message).toMatch(/\[784\]/);
    expect(flat.message).toMatch(/\[1, 28, 28\]/);
    // Shape-keeping layers in front do not change that.
    expect(problem([{ type: "dropout", rate: 0.1 }, { type: "maxpool2d" }], [64]).param).toBe("model.input_shape");
    // A 4-D input is not an image either.
    expect(problem([{ type: "avgpool2d" }], [1, 2, 8, 8]).param).toBe("model.input_shape");
    // After a flatten or dense layer it is the layer's place that is wrong.
    const late = problem([{ type: "flatten" }, { type: "conv2d", filters: 8, kernel_size: 3 }], [1, 8, 8]);
    expect(late.param).toBe("model.layers.1");
    expect(late.message).toMatch(/\[64\]/);
    expect(problem([{ type: "dense", units: 16 }, { type: "maxpool2d" }], [1, 8, 8]).param).toBe("model.layers.1");
  });

  it("rejects a kernel or pool window larger than its input, naming both sizes", () => {
    const kernel = problem([{ type: "conv2d", filters: 2, kernel_size: 7 }], [1, 5, 5]);
    expect(kernel.param).toBe("model.layers.0.kernel_size");
    expect(kernel.message).toMatch(/7x7 kernel/);
    expect(kernel.message).toMatch(/5x5 input/);
    const oblong = problem([{ type: "conv2d", filters: 2, kernel_size: 3 }, { type: "conv2d", filters: 2, kernel_size: [2, 4] }], [1, 5, 5]);
    expect(oblong.param).toBe("model.layers.1.kernel_size");
    expect(oblong.message).toMatch(/2x4 kernel.*3x3 input/);
    const pool = problem([{ type: "maxpool2d", pool_size: 4 }], [2, 3, 8]);
    expect(pool.param).toBe("model.layers.0.pool_size");
    expect(pool.message).toMatch(/4x4 pool window.*3x8 input/);
    // "same" pads the input up to the window, so it always fits.
    expect(inferShapes(spec([{ type: "conv2d", filters: 2, kernel_size: 7, padding: "same" }]), [1, 5, 5])).toEqual({ shapes: [[2, 5, 5]] });
  });

  it("allows softmax only in the last layer", () => {
    const early = problem([{ type: "dense", units: 4, activation: "softmax" }, { type: "dense", units: 2 }], [3]);
    expect(early.param).toBe("model.layers.0.activation");
    expect(early.message).toMatch(/softmax/);
    const layer = problem([{ type: "activation", activation: "softmax" }, { type: "dropout", rate: 0.1 }], [3]);
    expect(layer.param).toBe("model.layers.0.activation");
    expect(inferShapes(spec([{ type: "dense", units: 4 }, { type: "activation", activation: "softmax" }]), [3])).toEqual({ shapes: [[4], [4]] });
  });

  it("gives the model its shapes, and the model refuses what inferShapes refuses", () => {
    const model = buildModel(spec([{ type: "conv2d", filters: 2, kernel_size: 3 }, { type: "flatten" }], [1, 4, 5]), 20, { seed: 0 });
    expect(model.shapes).toEqual({ input: [1, 4, 5], layers: [[2, 2, 3], [12]] });
    expect(model.outputWidth).toBe(12);
    expect(buildModel(spec([{ type: "dense", units: 2 }]), 6, { seed: 0 }).shapes).toEqual({ input: [6], layers: [[2]] });
    expect(() => buildModel(spec([{ type: "conv2d", filters: 2, kernel_size: 3 }]), 20, { seed: 0 })).toThrow(/model.input_shape/);
  });
});
