// 2-D convolution with a fused activation: y[f] = f(b[f] + Σ_c W[f, c] ⋆ x[c]) over a [C, H, W]
// input, giving [filters, oH, oW] (cross-correlation, as every framework calls convolution).
// The weight is stored in PyTorch's Conv2d layout [filters, C, kH, kW], which is also the
// [filters, C·kH·kW] matrix the im2col kernels multiply by, so export is a plain copy.
import { ActivationStage } from "../activations.js";
import { kernels, type Floats, type WindowGeometry } from "../kernels.js";
import type { Rng } from "../rng.js";
import type { Conv2dLayerSpec } from "../schema/layers.js";
import { asImage, windowGeometry } from "../shapes.js";
import { initLimit, NONE, type Layer, type LayerContext, type ModelStorage, type NamedTensor, type TensorLookup } from "./layer.js";

/**
 * Training keeps the im2col patches of a batch from forward to backward (saving one im2col per
 * sample) while they take at most this many values per layer, 16 MB in float32; larger batches or
 * layers recompute them, so memory stays bounded.
 */
const KEPT_PATCHES_LIMIT = 1 << 22;

export class Conv2dLayer implements Layer {
  readonly index: number;
  readonly inShape: readonly number[];
  readonly outShape: readonly number[];
  readonly inWidth: number;
  readonly outWidth: number;
  readonly paramCount: number;
  readonly bufferCount = 0;
  readonly geometry: WindowGeometry;
  readonly filters: number;
  /** Values per filter: C·kH·kW. */
  private readonly patch: number;
  private readonly activation: ActivationStage;
  private readonly needsInputGrad: boolean;

  private weight: Floats = NONE; // [filters, C, kH, kW]
  private bias: Floats = NONE; // [filters]
  private weightGrad: Floats = NONE;
  private biasGrad: Floats = NONE;

  private output: Floats = NONE; // [rows, filters, oH, oW], after the activation
  private inputGrad: Floats = NONE; // [rows, C, H, W]
  /** The kernels' scratch: im2col patches (of every sample of the batch when they are kept). */
  private scratch: Floats = NONE;
  private keptRows = 0;
  /** Whether the last forward kept its patches in scratch. */
  private patchesKept = false;
  private input: Floats = NONE;

  constructor(spec: Conv2dLayerSpec, context: LayerContext) {
    const image = asImage(context.inShape);
    // inferShapes has checked the shape; this guards direct construction.
    if (!image) throw new Error(`conv2d layer ${context.index}: expected a [C, H, W] input, got [${context.inShape.join(", ")}]`);
    this.index = context.index;
    this.inShape = context.inShape;
    this.geometry = windowGeometry(image, spec.kernel_size, spec.stride, spec.padding);
    this.filters = spec.filters;
    this.outShape = [spec.filters, this.geometry.outHeight, this.geometry.outWidth];
    this.inWidth = image[0] * image[1] * image[2];
    this.outWidth = spec.filters * this.geometry.outHeight * this.geometry.outWidth;
    this.patch = image[0] * this.geometry.kernelH * this.geometry.kernelW;
    this.paramCount = spec.filters * this.patch + spec.filters;
    this.activation = new ActivationStage(spec.activation);
    this.needsInputGrad = context.needsInputGrad;
  }

  bind(storage: ModelStorage, offset: number): void {
    const w = this.filters * this.patch;
    this.weight = storage.params.subarray(offset, offset + w);
    this.bias = storage.params.subarray(offset + w, offset + w + this.filters);
    this.weightGrad = storage.grads.subarray(offset, offset + w);
    this.biasGrad = storage.grads.subarray(offset + w, offset + w + this.filters);
  }

  /** He or Glorot uniform with fan_in = C·kH·kW and fan_out = filters·kH·kW (as PyTorch and Keras
   *  count them), drawn in the stored (PyTorch) order; biases start at zero. */
  init(rng: Rng): void {
    const { kernelH, kernelW } = this.geometry;
    const limit = initLimit(this.activation.fn.init, this.patch, this.filters * kernelH * kernelW);
    for (let i = 0; i < this.weight.length; i++) this.weight[i] = rng.uniform(-limit, limit);
    this.bias.fill(0);
  }

  allocate(capacity: number, newArray: (length: number) => Floats): void {
    this.output = newArray(capacity * this.outWidth);
    this.activation.allocate(capacity * this.outWidth, newArray);
    if (this.needsInputGrad) this.inputGrad = newArray(capacity * this.inWidth);
    const patches = this.patch * this.geometry.outHeight * this.geometry.outWidth;
    this.keptRows = capacity * patches <= KEPT_PATCHES_LIMIT ? capacity : 0;
    this.scratch = newArray(kernels.conv2dScratchSize(this.geometry, this.keptRows));
  }

  forward(input: Floats, rows: number, training: boolean): Floats {
    this.input = input;
    this.patchesKept = training && rows <= this.keptRows;
    kernels.conv2d(input, this.weight, this.bias, this.output, rows, this.filters, this.geometry, this.scratch, this.patchesKept);
    this.activation.forward(this.output, rows, this.outWidth, training);
    return this.output;
  }

  backward(gradOutput: Floats, rows: number): Floats | null {
    this.activation.backward(this.output, gradOutput, rows, this.outWidth);
    const inputGrad = this.needsInputGrad ? this.inputGrad : null;
    kernels.conv2dBackward(
      this.input,
      this.weight,
      gradOutput,
      this.weightGrad,
      this.biasGrad,
      inputGrad,
      rows,
      this.filters,
      this.geometry,
      this.scratch,
      this.patchesKept,
    );
    return inputGrad;
  }

  exportTensors(): NamedTensor[] {
    const { channels, kernelH, kernelW } = this.geometry;
    return [
      { name: `${this.index}.weight`, shape: [this.filters, channels, kernelH, kernelW], data: Float32Array.from(this.weight) },
      { name: `${this.index}.bias`, shape: [this.filters], data: Float32Array.from(this.bias) },
    ];
  }

  importTensors(lookup: TensorLookup): void {
    const { channels, kernelH, kernelW } = this.geometry;
    const weight = lookup(`${this.index}.weight`, [this.filters, channels, kernelH, kernelW]);
    const bias = lookup(`${this.index}.bias`, [this.filters]);
    for (let i = 0; i < this.weight.length; i++) this.weight[i] = weight[i];
    for (let f = 0; f < this.filters; f++) this.bias[f] = bias[f];
  }
}
