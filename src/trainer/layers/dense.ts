// Dense (fully connected) layer with a fused activation: y = f(x·W + b).
//
// Internally W is stored [in, units] so the forward pass is the i-k-j product x·W with stride-1
// rows of W; exportTensors transposes to PyTorch's Linear layout [units, in_features].
import { activations, type ActivationFn } from "../activations.js";
import type { DenseLayerSpec } from "../config.js";
import { TrainerError } from "../errors.js";
import { kernels, type Floats } from "../kernels.js";
import type { Rng } from "../rng.js";
import type { Layer, NamedTensor, TensorLookup } from "./layer.js";

const EMPTY = new Float64Array(0);

export class DenseLayer implements Layer {
  readonly inWidth: number;
  readonly outWidth: number;
  readonly paramCount: number;
  private readonly activation: ActivationFn;

  // Views into the model's flat buffers (set by bind).
  private weight: Floats = EMPTY; // [in, units]
  private bias: Floats = EMPTY; // [units]
  private weightGrad: Floats = EMPTY;
  private biasGrad: Floats = EMPTY;

  // Per-batch buffers (set by allocate) and the input of the last forward, kept for backward.
  private output: Floats = EMPTY; // [rows, units], after the activation
  private inputGrad: Floats | null = null; // [rows, in]
  private input: Floats = EMPTY;

  /**
   * @param needsInputGrad false for the first layer: nobody needs dLoss/dInput of the model's input,
   *   and skipping it saves a whole matrix multiply per step.
   */
  constructor(
    readonly index: number,
    spec: DenseLayerSpec,
    inWidth: number,
    private readonly needsInputGrad: boolean,
  ) {
    this.inWidth = inWidth;
    this.outWidth = spec.units;
    this.paramCount = inWidth * spec.units + spec.units;
    this.activation = activations[spec.activation];
    // The spec should come from modelSchema (defaults filled); catch a raw one early and clearly.
    if (!this.activation) throw new TrainerError("invalid_config", `Layer ${index}: unknown activation "${spec.activation}".`);
  }

  bind(params: Floats, grads: Floats, offset: number): void {
    const w = this.inWidth * this.outWidth;
    this.weight = params.subarray(offset, offset + w);
    this.bias = params.subarray(offset + w, offset + w + this.outWidth);
    this.weightGrad = grads.subarray(offset, offset + w);
    this.biasGrad = grads.subarray(offset + w, offset + w + this.outWidth);
  }

  /**
   * Uniform initialisation: He, U(±sqrt(6 / fan_in)), before relu (it halves the variance);
   * Glorot, U(±sqrt(6 / (fan_in + fan_out))), otherwise. Biases start at zero. Uniform rather than
   * normal so that no transcendental function is involved and weights are bit-identical on every
   * platform. Values are drawn in PyTorch order (row by row of [units, in]) so the sequence does not
   * depend on our internal layout.
   */
  init(rng: Rng): void {
    const fanIn = this.inWidth;
    const fanOut = this.outWidth;
    const limit = this.activation.init === "he" ? Math.sqrt(6 / fanIn) : Math.sqrt(6 / (fanIn + fanOut));
    for (let o = 0; o < fanOut; o++) {
      for (let i = 0; i < fanIn; i++) this.weight[i * fanOut + o] = rng.uniform(-limit, limit);
    }
    this.bias.fill(0);
  }

  allocate(capacity: number, newArray: (length: number) => Floats): void {
    this.output = newArray(capacity * this.outWidth);
    this.inputGrad = this.needsInputGrad ? newArray(capacity * this.inWidth) : null;
  }

  forward(input: Floats, rows: number): Floats {
    this.input = input;
    kernels.matmul(input, this.weight, this.output, rows, this.inWidth, this.outWidth, this.bias);
    this.activation.forward(this.output, rows * this.outWidth);
    return this.output;
  }

  backward(gradOutput: Floats, rows: number): Floats | null {
    const units = this.outWidth;
    // dL/dz = dL/dy * f'(z), in place: the caller's buffer is ours to overwrite.
    this.activation.backward(this.output, gradOutput, rows * units);
    // dL/dW = xᵀ · dL/dz  ([in, rows] · [rows, units]);  dL/db = column sums of dL/dz.
    kernels.matmulTransA(this.input, gradOutput, this.weightGrad, this.inWidth, rows, units);
    kernels.sumRows(gradOutput, this.biasGrad, rows, units);
    if (!this.inputGrad) return null;
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
