// Dense (fully connected) layer with a fused activation: y = f(x·W + b). An input of any shape is
// read flattened, row-major (as torch.flatten), so after [C, H, W] the in-features are in C, H, W
// order and the weights load into torch after nn.Flatten.
//
// Internally W is stored [in, units] so the forward pass is the i-k-j product x·W with stride-1
// rows of W; exportTensors transposes to PyTorch's Linear layout [units, in_features].
import { ActivationStage } from "../activations.js";
import { kernels, type Floats } from "../kernels.js";
import type { Rng } from "../rng.js";
import type { DenseLayerSpec } from "../schema/layers.js";
import { initLimit, NONE, type Layer, type LayerContext, type ModelStorage, type NamedTensor, type TensorLookup } from "./layer.js";

export class DenseLayer implements Layer {
  readonly index: number;
  readonly inShape: readonly number[];
  readonly outShape: readonly number[];
  readonly inWidth: number;
  readonly outWidth: number;
  readonly paramCount: number;
  readonly bufferCount = 0;
  private readonly activation: ActivationStage;
  private readonly needsInputGrad: boolean;

  // Views into the model's flat arrays (set by bind).
  private weight: Floats = NONE; // [in, units]
  private bias: Floats = NONE; // [units]
  private weightGrad: Floats = NONE;
  private biasGrad: Floats = NONE;

  // Per-batch buffers (set by allocate) and the input of the last forward, kept for backward.
  private output: Floats = NONE; // [rows, units], after the activation
  private inputGrad: Floats = NONE; // [rows, in]
  private input: Floats = NONE;

  constructor(spec: DenseLayerSpec, context: LayerContext) {
    this.index = context.index;
    this.inShape = context.inShape;
    this.outShape = [spec.units];
    this.inWidth = context.inShape.reduce((a, b) => a * b, 1);
    this.outWidth = spec.units;
    this.paramCount = this.inWidth * spec.units + spec.units;
    this.activation = new ActivationStage(spec.activation);
    this.needsInputGrad = context.needsInputGrad;
  }

  bind(storage: ModelStorage, offset: number): void {
    const w = this.inWidth * this.outWidth;
    this.weight = storage.params.subarray(offset, offset + w);
    this.bias = storage.params.subarray(offset + w, offset + w + this.outWidth);
    this.weightGrad = storage.grads.subarray(offset, offset + w);
    this.biasGrad = storage.grads.subarray(offset + w, offset + w + this.outWidth);
  }

  /**
   * Uniform initialisation (He or Glorot, see initLimit); biases start at zero. Uniform rather than
   * normal so that no transcendental function is involved and weights are bit-identical on every
   * platform. Values are drawn in PyTorch order (row by row of [units, in]) so the sequence does not
   * depend on our internal layout.
   */
  init(rng: Rng): void {
    const fanIn = this.inWidth;
    const fanOut = this.outWidth;
    const limit = initLimit(this.activation.fn.init, fanIn, fanOut);
    for (let o = 0; o < fanOut; o++) {
      for (let i = 0; i < fanIn; i++) this.weight[i * fanOut + o] = rng.uniform(-limit, limit);
    }
    this.bias.fill(0);
  }

  allocate(capacity: number, newArray: (length: number) => Floats): void {
    this.output = newArray(capacity * this.outWidth);
    this.activation.allocate(capacity * this.outWidth, newArray);
    if (this.needsInputGrad) this.inputGrad = newArray(capacity * this.inWidth);
  }

  forward(input: Floats, rows: number, training: boolean): Floats {
    this.input = input;
    kernels.matmul(input, this.weight, this.output, rows, this.inWidth, this.outWidth, this.bias);
    this.activation.forward(this.output, rows, this.outWidth, training);
    return this.output;
  }

  backward(gradOutput: Floats, rows: number): Floats | null {
    const units = this.outWidth;
    // dL/dz = dL/dy * f'(z), in place: the caller's buffer is ours to overwrite.
    this.activation.backward(this.output, gradOutput, rows, units);
    // dL/dW = xᵀ · dL/dz  ([in, rows] · [rows, units]);  dL/db = column sums of dL/dz.
    kernels.matmulTransA(this.input, gradOutput, this.weightGrad, this.inWidth, rows, units);
    kernels.sumRows(gradOutput, this.biasGrad, rows, units);
    if (!this.needsInputGrad) return null;
    // dL/dx = dL/dz · Wᵀ  ([rows, units] · [units, in]).
    kernels.matmulTransB(gradOutput, this.weight, this.inputGrad, rows, units, this.inWidth);
    return this.inputGrad;
  }

  exportTensors(): NamedTensor[] {
    const inW = this.inWidth;
    const units = this.outWidth;
    const weight = new Float32Array(units * inW);
    for (let o = 0; o < units; o++) {
      for (let i = 0; i < inW; i++) weight[o * inW + i] = this.weight[i * units + o];
    }
    return [
      { name: `${this.index}.weight`, shape: [units, inW], data: weight },
      { name: `${this.index}.bias`, shape: [units], data: Float32Array.from(this.bias) },
    ];
  }

  importTensors(lookup: TensorLookup): void {
    const inW = this.inWidth;
    const units = this.outWidth;
    const weight = lookup(`${this.index}.weight`, [units, inW]);
    const bias = lookup(`${this.index}.bias`, [units]);
    for (let o = 0; o < units; o++) {
      for (let i = 0; i < inW; i++) this.weight[i * units + o] = weight[o * inW + i];
    }
    for (let o = 0; o < units; o++) this.bias[o] = bias[o];
  }
}
