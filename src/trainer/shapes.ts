// Shapes through a model: what each layer outputs for a given input shape, and the sliding-window
// arithmetic of conv2d and pooling. Used by the API at submission (a layer that cannot fit its input
// is a 422 naming the field) and by the model when it builds its layers, so both agree.
//
// Shapes are channels first, as in PyTorch: [C, H, W] for images, [N] for flat inputs. A 2-D input
// shape [H, W] is an image with one channel.
import type { ModelSpec } from "./config.js";
import type { WindowGeometry } from "./kernels.js";
import type { LayerSpec, Size2 } from "./schema/layers.js";

export interface ShapeProblem {
  /** The dotted path of the config field to change, e.g. "model.layers.2.kernel_size". */
  param: string;
  message: string;
}

/** An int or an [h, w] pair of the schema as [h, w]. */
export function pair(size: Size2 | readonly [number, number]): [number, number] {
  return typeof size === "number" ? [size, size] : [size[0], size[1]];
}

/** An image shape as [C, H, W] ([H, W] has one channel), or null for any other rank. */
export function asImage(shape: readonly number[]): [number, number, number] | null {
  if (shape.length === 3) return [shape[0], shape[1], shape[2]];
  if (shape.length === 2) return [1, shape[0], shape[1]];
  return null;
}

export const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const show = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/**
 * Window positions along one dimension of `size` values.
 * - valid: no padding; floor((size - kernel) / stride) + 1 windows (0 or less when the kernel does
 *   not fit).
 * - same: ceil(size / stride) windows, with max((out - 1)·stride + kernel - size, 0) padding in all,
 *   floor(total / 2) before and the rest after (TensorFlow/Keras "same", for every stride).
 */
export function windowSpan(size: number, kernel: number, stride: number, padding: "valid" | "same") {
  if (padding === "valid") return { out: Math.floor((size - kernel) / stride) + 1, padBefore: 0, padTotal: 0 };
  const out = Math.ceil(size / stride);
  const padTotal = Math.max((out - 1) * stride + kernel - size, 0);
  return { out, padBefore: Math.floor(padTotal / 2), padTotal };
}

/** The window geometry of a conv2d or pooling layer over an image (which must fit: see inferShapes). */
export function windowGeometry(
  image: readonly [number, number, number],
  kernel: Size2 | readonly [number, number],
  stride: Size2 | readonly [number, number],
  padding: "valid" | "same",
): WindowGeometry {
  const [channels, height, width] = image;
  const [kernelH, kernelW] = pair(kernel);
  const [strideH, strideW] = pair(stride);
  const rowsSpan = windowSpan(height, kernelH, strideH, padding);
  const colsSpan = windowSpan(width, kernelW, strideW, padding);
  return {
    channels,
    height,
    width,
    kernelH,
    kernelW,
    strideH,
    strideW,
    padTop: rowsSpan.padBefore,
    padLeft: colsSpan.padBefore,
    outHeight: rowsSpan.out,
    outWidth: colsSpan.out,
  };
}

/** Layers whose output has the shape of their input. */
const keepsShape = (layer: LayerSpec): boolean =>
  layer.type === "dropout" || layer.type === "batchnorm" || layer.type === "activation";

/**
 * The output shape of every layer of `spec` for inputs of `inputShape` (`shapes[i]` is layer i's),
 * or the first problem: a conv2d or pooling layer without an image input, a window that does not fit
 * its input, or softmax anywhere but the last layer.
 */
export function inferShapes(spec: ModelSpec, inputShape: readonly number[]): { shapes: number[][] } | ShapeProblem {
  const layers = spec.layers;
  const shapes: number[][] = [];
  let shape = [...inputShape];
  // Whether `shape` is still the model's input shape (only shape-keeping layers so far).
  let isModelInput = true;
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const at = `model.layers.${i}`;
    if ("activation" in layer && layer.activation === "softmax" && i !== layers.length - 1) {
      return {
        param: `${at}.activation`,
        message: `Layer ${i} (${layer.type}) uses softmax, which only the last layer may use (it turns the model's outputs into probabilities).`,
      };
    }
    switch (layer.type) {
      case "dense":
        shape = [layer.units];
        break;
      case "flatten":
        shape = [product(shape)];
        break;
      case "dropout":
      case "batchnorm":
      case "activation":
        break;
      case "conv2d":
      case "maxpool2d":
      case "avgpool2d": {
        const image = asImage(shape);
        if (!image) {
          const where = isModelInput
            ? { param: "model.input_shape", got: `the model's input shape is ${show(shape)}` }
            : { param: at, got: `its input has shape ${show(shape)}` };
          return {
            param: where.param,
            message:
              `Layer ${i} (${layer.type}) needs an image input [C, H, W], but ${where.got}. ` +
              `Give model.input_shape as the image shape, e.g. [1, 28, 28], and put conv2d and pooling layers before any flatten or dense layer.`,
          };
        }
        const conv = layer.type === "conv2d";
        const field = conv ? "kernel_size" : "pool_size";
        const size = layer.type === "conv2d" ? layer.kernel_size : layer.pool_size;
        const stride = layer.type === "conv2d" ? layer.stride : (layer.stride ?? layer.pool_size);
        const [kernelH, kernelW] = pair(size);
        const [strideH, strideW] = pair(stride);
        const [, height, width] = image;
        const rows = windowSpan(height, kernelH, strideH, layer.padding);
        const cols = windowSpan(width, kernelW, strideW, layer.padding);
        const paddedH = height + rows.padTotal;
        const paddedW = width + cols.padTotal;
        const what = conv ? "kernel" : "pool window";
        if (kernelH > paddedH || kernelW > paddedW) {
          return {
            param: `${at}.${field}`,
            message:
              `Layer ${i} (${layer.type}): the ${kernelH}x${kernelW} ${what} is larger than its ${paddedH}x${paddedW} input ` +
              `(${layer.padding} padding; the input shape is ${show(shape)}).`,
          };
        }
        if (rows.out < 1 || cols.out < 1) {
          return {
            param: `${at}.${field}`,
            message: `Layer ${i} (${layer.type}): the ${kernelH}x${kernelW} ${what} over the ${height}x${width} input leaves an output of ${rows.out}x${cols.out}.`,
          };
        }
        shape = [layer.type === "conv2d" ? layer.filters : image[0], rows.out, cols.out];
        break;
      }
    }
    if (!keepsShape(layer)) isModelInput = false;
    shapes.push([...shape]);
  }
  return { shapes };
}
