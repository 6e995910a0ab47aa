// Activation functions by name, as fused into a layer's output or applied by an `activation` layer.
// The loops themselves live in kernels.ts; this maps a config name to its forward/backward pair and
// to the weight initialisation that suits it.
import { TrainerError } from "./errors.js";
import { kernels, type Floats } from "./kernels.js";
import type { Activation } from "./schema/layers.js";

/** leaky_relu's negative slope and elu's alpha: PyTorch's defaults, as the schema says. */
export const LEAKY_RELU_SLOPE = 0.01;
export const ELU_ALPHA = 1;

export interface ActivationFn {
  /** y = f(z) in place on `rows` rows of `width` values (softmax works row by row; the others
   *  value by value). */
  forward(z: Floats, rows: number, width: number): void;
  /** grad *= f'(z) in place (for softmax: the Jacobian-vector product), from y = f(z) and, when
   *  `needsInput`, z itself. */
  backward(y: Floats, z: Floats, grad: Floats, rows: number, width: number): void;
  /** Whether backward needs the pre-activation z (gelu: its derivative is not a function of y). */
  needsInput: boolean;
  /** Which initialisation keeps activations at a stable scale through this nonlinearity: He for the
   *  relu family (they zero or shrink half the inputs), Glorot for the rest. */
  init: "he" | "glorot";
}

const identity = (): void => {};

export const activations: Record<Activation, ActivationFn> = {
  linear: { forward: identity, backward: identity, needsInput: false, init: "glorot" },
  relu: {
    forward: (z, rows, width) => kernels.relu(z, rows * width),
    backward: (y, _z, g, rows, width) => kernels.reluBackward(y, g, rows * width),
    needsInput: false,
    init: "he",
  },
  leaky_relu: {
    forward: (z, rows, width) => kernels.leakyRelu(z, rows * width, LEAKY_RELU_SLOPE),
    backward: (y, _z, g, rows, width) => kernels.leakyReluBackward(y, g, rows * width, LEAKY_RELU_SLOPE),
    needsInput: false,
    init: "he",
  },
  elu: {
    forward: (z, rows, width) => kernels.elu(z, rows * width, ELU_ALPHA),
    backward: (y, _z, g, rows, width) => kernels.eluBackward(y, g, rows * width, ELU_ALPHA),
    needsInput: false,
    init: "he",
  },
  gelu: {
    forward: (z, rows, width) => kernels.gelu(z, rows * width),
    backward: (_y, z, g, rows, width) => kernels.geluBackward(z, g, rows * width),
    needsInput: true,
    init: "he",
  },
  tanh: {
    forward: (z, rows, width) => kernels.tanh(z, rows * width),
    backward: (y, _z, g, rows, width) => kernels.tanhBackward(y, g, rows * width),
    needsInput: false,
    init: "glorot",
  },
  sigmoid: {
    forward: (z, rows, width) => kernels.sigmoid(z, rows * width),
    backward: (y, _z, g, rows, width) => kernels.sigmoidBackward(y, g, rows * width),
    needsInput: false,
    init: "glorot",
  },
  softmax: {
    forward: (z, rows, width) => kernels.softmax(z, rows, width),
    backward: (y, _z, g, rows, width) => kernels.softmaxBackward(y, g, rows, width),
    needsInput: false,
    init: "glorot",
  },
};

const EMPTY = new Float64Array(0);

/**
 * An activation applied in place to a layer's output buffer, which the layer keeps for backward.
 * Holds a copy of the pre-activation only for the functions whose backward needs it (gelu), and
 * only in training. Softmax runs over each row's `width` values: all of a sample's outputs.
 */
export class ActivationStage {
  readonly fn: ActivationFn;
  private preActivation: Floats = EMPTY;

  constructor(readonly name: Activation) {
    this.fn = activations[name];
    // The spec should come from modelSchema; catch a raw one early and clearly.
    if (!this.fn) throw new TrainerError("invalid_config", `Unknown activation "${name}".`);
  }

  /** For batches of up to `values` outputs in all. */
  allocate(values: number, newArray: (length: number) => Floats): void {
    if (this.fn.needsInput) this.preActivation = newArray(values);
  }

  forward(x: Floats, rows: number, width: number, training: boolean): void {
    if (training && this.fn.needsInput) {
      const count = rows * width;
      for (let i = 0; i < count; i++) this.preActivation[i] = x[i];
    }
    this.fn.forward(x, rows, width);
  }

  /** gradOutput becomes dLoss/dz, in place, given the output `y` of the last training forward. */
  backward(y: Floats, gradOutput: Floats, rows: number, width: number): void {
    this.fn.backward(y, this.preActivation, gradOutput, rows, width);
  }
}
