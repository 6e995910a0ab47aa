// Adam and AdamW in PyTorch's convention (torch.optim.Adam, torch.optim.AdamW), at step t (1-based):
//   adamw: w -= lr * weight_decay * w              (decoupled decay, before the update)
//   g = grad + weight_decay * w                     (adam only: an L2 term in the gradient)
//   m = beta1 * m + (1 - beta1) * g                 (exp_avg)
//   v = beta2 * v + (1 - beta2) * g²                (exp_avg_sq)
//   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The bias corrections undo the zero start of m and v; eps is added after correcting v, as PyTorch
// does (not to the raw sqrt(v), as the Adam paper's "epsilon hat" variant would).
import type { Floats } from "../kernels.js";
import type { OptimizerSpec } from "../schema/optimizer.js";
import { ParamOptimizer, zerosLike } from "./base.js";

type AdamSpec = Extract<OptimizerSpec, { type: "adam" | "adamw" }>;

export class Adam extends ParamOptimizer {
  readonly type: "adam" | "adamw";
  protected readonly state: { exp_avg: Floats; exp_avg_sq: Floats };

  constructor(
    private readonly spec: AdamSpec,
    params: Floats,
    grads: Floats,
  ) {
    super(params, grads, spec.clip_norm);
    this.type = spec.type;
    this.state = { exp_avg: zerosLike(params), exp_avg_sq: zerosLike(params) };
  }

  protected update(lr: number, step: number): void {
    const { beta1, beta2, eps, weight_decay: decay } = this.spec;
    const decoupled = this.spec.type === "adamw";
    const l2 = decoupled ? 0 : decay;
    const shrink = 1 - lr * decay; // adamw only
    const stepSize = lr / (1 - beta1 ** step);
    const correction2 = Math.sqrt(1 - beta2 ** step);
    const w = this.params;
    const grad = this.grads;
    const { exp_avg: m, exp_avg_sq: v } = this.state;
    for (let i = 0; i < w.length; i++) {
      if (decoupled) w[i] *= shrink;
      const g = grad[i] + l2 * w[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      // Read back: the stored (possibly float32-rounded) moments are the state.
      const mi = m[i];
      const vi = v[i];
      w[i] -= (stepSize * mi) / (Math.sqrt(vi) / correction2 + eps);
    }
  }
}
