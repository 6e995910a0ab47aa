// Dense (fully connected) layer with a fused activation: y = f(x·W + b). An input of any shape is
// read flattened, row-major (as torch.flatten), so after [C, H, W] the in-features are in C, H, W
// order and the weights load into torch after nn.Flatten.
//
// W is stored as PyTorch's Linear stores it, [units, in_features]: each unit's weights are one
// contiguous row, so a thread that computes some of the units (their outputs, their gradients)
// finds their weights, gradients and optimizer state in one run of memory, and updates them there
// (kernels.ts: ParamBlocks). The forward pass is x·Wᵀ, dL/dW = (dL/dz)ᵀ·x and dL/dx = dL/dz·W.
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
  readonly paramBlocks: readonly (readonly [number, number])[];
  private readonly activation: ActivationStage;
  /** relu is applied by the products themselves (forward: after the bias; backward: its derivative
   *  and the bias sums before the weight gradient), each thread on its own units. */
  private readonly fusedRelu: boolean;
  private readonly needsInputGrad: boolean;

  // Views into the model's flat arrays (set by bind).
  private weight: Floats = NONE; // [units, in]
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
    this.paramBlocks = [[spec.units, this.inWidth], [spec.units, 1]];
    this.activation = new ActivationStage(spec.activation);
    this.fusedRelu = spec.activation === "relu";
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
   * platform. Values are drawn in PyTorch order, row by row of [units, in].
   */
  init(rng: Rng): void {
    const limit = initLimit(this.activation.fn.init, this.inWidth, this.outWidth);
    for (let i = 0; i < this.weight.length; i++) this.weight[i] = rng.uniform(-limit, limit);
    this.bias.fill(0);
  }

  allocate(capacity: number, newArray: (length: number) => Floats): void {
    this.output = newArray(capacity * this.outWidth);
    this.activation.allocate(capacity * this.outWidth, newArray);
    if (this.needsInputGrad) this.inputGrad = newArray(capacity * this.inWidth);
  }

  forward(input: Floats, rows: number, training: boolean): Floats {
    this.input = input;
    kernels.matmulTransB(input, this.weight, this.output, rows, this.inWidth, this.outWidth, this.bias, this.fusedRelu);
    if (!this.fusedRelu) this.activation.forward(this.output, rows, this.outWidth, training);
    return this.output;
  }

  backward(gradOutput: Floats, rows: number): Floats | null {
    const units = this.outWidth;
    // dL/dz = dL/dy * f'(z), in place: the caller's buffer is ours to overwrite.
    // dL/dW = (dL/dz)ᵀ · x  ([units, rows] · [rows, in]);  dL/db = column sums of dL/dz.
    if (this.fusedRelu) {
      kernels.matmulTransA(gradOutput, this.input, this.weightGrad, units, rows, this.inWidth, this.output, this.biasGrad);
    } else {
      this.activation.backward(this.output, gradOutput, rows, units);
      kernels.matmulTransA(gradOutput, this.input, this.weightGrad, units, rows, this.inWidth);
      kernels.sumRows(gradOutput, this.biasGrad, rows, units);
    }
    if (!this.needsInputGrad) return null;
    // dL/dx = dL/dz · W  ([rows, units] · [units, in]).
    kernels.matmul(gradOutput, this.weight, this.inputGrad, rows, units, this.inWidth, null);
    return this.inputGrad;
  }

  exportTensors(): NamedTensor[] {
    return [
      { name: `${this.index}.weight`, shape: [this.outWidth, this.inWidth], data: Float32Array.from(this.weight) },
      { name: `${this.index}.bias`, shape: [this.outWidth], data: Float32Array.from(this.bias) },
    ];
  }

  importTensors(lookup: TensorLookup): void {
    this.weight.set(lookup(`${this.index}.weight`, [this.outWidth, this.inWidth]));
    this.bias.set(lookup(`${this.index}.bias`, [this.outWidth]));
  }

  /** Values laid out as the parameters were before the weights were stored [units, in] (snapshots of
   *  layout 1, train.ts), at `offset` in `values`: rewritten in place in today's layout. */
  fromLayout1(values: Floats, offset: number): void {
    const inW = this.inWidth;
    const units = this.outWidth;
    const old = values.slice(offset, offset + inW * units);
    for (let o = 0; o < units; o++) {
      for (let i = 0; i < inW; i++) values[offset + o * inW + i] = old[i * units + o];
    }
  }
}
