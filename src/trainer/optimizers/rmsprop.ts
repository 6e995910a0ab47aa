// RMSprop in PyTorch's convention (torch.optim.RMSprop):
//   g = grad + weight_decay * w
//   square_avg = alpha * square_avg + (1 - alpha) * g²
//   centered:  grad_avg = alpha * grad_avg + (1 - alpha) * g;  avg = square_avg - grad_avg²
//   otherwise: avg = square_avg
//   denom = sqrt(avg) + eps                                  (eps outside the root)
//   momentum > 0: buf = momentum * buf + g / denom;  w -= lr * buf
//   otherwise:    w -= lr * g / denom
// No bias correction: the averages start at 0, so early steps are large (PyTorch does the same).
import type { Floats } from "../kernels.js";
import type { OptimizerSpec } from "../schema/optimizer.js";
import { ParamOptimizer, zerosLike } from "./base.js";

type RmsPropSpec = Extract<OptimizerSpec, { type: "rmsprop" }>;

export class RmsProp extends ParamOptimizer {
  readonly type = "rmsprop";
  protected readonly state: { square_avg: Floats; momentum_buffer?: Floats; grad_avg?: Floats };

  constructor(
    private readonly spec: RmsPropSpec,
    params: Floats,
    grads: Floats,
  ) {
    super(params, grads, spec.clip_norm);
    // Only the buffers this configuration uses exist, so they are all that is exported.
    this.state = { square_avg: zerosLike(params) };
    if (spec.momentum > 0) this.state.momentum_buffer = zerosLike(params);
    if (spec.centered) this.state.grad_avg = zerosLike(params);
  }

  protected update(lr: number): void {
    const { alpha, eps, momentum, weight_decay: decay } = this.spec;
    const w = this.params;
    const grad = this.grads;
    const { square_avg: sq, momentum_buffer: buf, grad_avg: gAvg } = this.state;
    for (let i = 0; i < w.length; i++) {
      const g = grad[i] + decay * w[i];
      sq[i] = alpha * sq[i] + (1 - alpha) * g * g;
      let avg = sq[i];
      if (gAvg) {
        gAvg[i] = alpha * gAvg[i] + (1 - alpha) * g;
        const ga = gAvg[i];
        // Never negative in exact arithmetic (grad_avg² <= square_avg by Cauchy-Schwarz); rounding
        // can push it a hair below 0, where PyTorch's sqrt would give NaN.
        avg = Math.max(avg - ga * ga, 0);
      }
      const denom = Math.sqrt(avg) + eps;
      if (buf) {
        buf[i] = momentum * buf[i] + g / denom;
        w[i] -= lr * buf[i];
      } else {
        w[i] -= (lr * g) / denom;
      }
    }
  }
}
