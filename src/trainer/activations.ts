// Activation functions by name, as fused into a layer's output. The loops themselves live in
// kernels.ts; this maps a config name to its forward/backward pair and to the weight initialisation
// that suits it.
import type { Activation } from "./config.js";
import { kernels, type Floats } from "./kernels.js";

export interface ActivationFn {
  /** y = f(z) in place on the first `count` values. */
  forward(z: Floats, count: number): void;
  /** grad *= f'(z), computed from y = f(z), in place on the first `count` values. */
  backward(y: Floats, grad: Floats, count: number): void;
  /** Which initialisation keeps activations at a stable scale through this nonlinearity. */
  init: "he" | "glorot";
}

const identity = (): void => {};

export const activations: Record<Activation, ActivationFn> = {
  linear: { forward: identity, backward: identity, init: "glorot" },
  relu: { forward: (z, n) => kernels.relu(z, n), backward: (y, g, n) => kernels.reluBackward(y, g, n), init: "he" },
  tanh: { forward: (z, n) => kernels.tanh(z, n), backward: (y, g, n) => kernels.tanhBackward(y, g, n), init: "glorot" },
  sigmoid: {
    forward: (z, n) => kernels.sigmoid(z, n),
    backward: (y, g, n) => kernels.sigmoidBackward(y, g, n),
    init: "glorot",
  },
};
