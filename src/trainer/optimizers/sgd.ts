// Stochastic gradient descent with momentum, in PyTorch's convention (torch.optim.SGD, dampening 0):
//   g = grad + weight_decay * w
//   v = momentum * v + g                      (v starts at 0, so the first v is g)
//   step = nesterov ? g + momentum * v : v
//   w -= lr * step
// Note the learning rate multiplies the velocity rather than being folded into it, so changing lr
// mid-training (schedules) does not rescale past momentum.
import type { Floats } from "../kernels.js";
import type { OptimizerSpec } from "../schema/optimizer.js";
import { ParamOptimizer, zerosLike } from "./base.js";

type SgdSpec = Extract<OptimizerSpec, { type: "sgd" }>;

export class Sgd extends ParamOptimizer {
  readonly type = "sgd";
  protected readonly state: { velocity: Floats };

  constructor(
    private readonly spec: SgdSpec,
    params: Floats,
    grads: Floats,
  ) {
    super(params, grads, spec.clip_norm);
    this.state = { velocity: zerosLike(params) };
  }

  protected update(lr: number): void {
    const { momentum, nesterov, weight_decay: decay } = this.spec;
    const w = this.params;
    const grad = this.grads;
    const v = this.state.velocity;
    for (let i = 0; i < w.length; i++) {
      const g = grad[i] + decay * w[i];
      v[i] = momentum * v[i] + g;
      const vi = v[i]; // read back: the stored (possibly float32-rounded) value is the state
      w[i] -= lr * (nesterov ? g + momentum * vi : vi);
    }
  }
}
