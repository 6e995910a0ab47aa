// Stochastic gradient descent with momentum, in PyTorch's convention (torch.optim.SGD, dampening 0):
//   g = grad + weight_decay * w
//   v = momentum * v + g                      (v starts at 0, so the first v is g)
//   step = nesterov ? g + momentum * v : v
//   w -= lr * step
// Note the learning rate multiplies the velocity rather than being folded into it, so changing lr
// mid-training (schedules) does not rescale past momentum.
import type { OptimizerSpec } from "../config.js";
import type { Floats } from "../kernels.js";

export interface SgdState {
  type: "sgd";
  /** The momentum buffer, one value per parameter. */
  velocity: number[];
}

type SgdSpec = Extract<OptimizerSpec, { type: "sgd" }>;

export class Sgd {
  readonly type = "sgd";
  private readonly velocity: Floats;

  constructor(
    private readonly spec: SgdSpec,
    private readonly params: Floats,
    private readonly grads: Floats,
  ) {
    if (params.length !== grads.length) throw new Error("Sgd: params and grads differ in length");
    // Same precision as the parameters (float64 when gradient-checking).
    this.velocity = params instanceof Float64Array ? new Float64Array(params.length) : new Float32Array(params.length);
  }

  step(lr: number): void {
    const { momentum, nesterov, weight_decay: decay } = this.spec;
    const w = this.params;
    const grad = this.grads;
    const v = this.velocity;
    for (let i = 0; i < w.length; i++) {
      const g = grad[i] + decay * w[i];
      v[i] = momentum * v[i] + g;
      const vi = v[i]; // read back: the stored (possibly float32-rounded) value is the state
      w[i] -= lr * (nesterov ? g + momentum * vi : vi);
    }
  }

  exportState(): SgdState {
    // float32 values are exact as JS numbers, so this round-trips bit for bit.
    return { type: "sgd", velocity: Array.from(this.velocity) };
  }

  importState(state: SgdState): void {
    if (state.type !== "sgd") throw new Error(`Sgd.importState: state is for "${String(state.type)}"`);
    if (state.velocity.length !== this.velocity.length) {
      throw new Error(`Sgd.importState: ${state.velocity.length} values for ${this.velocity.length} parameters`);
    }
    this.velocity.set(state.velocity);
  }
}
