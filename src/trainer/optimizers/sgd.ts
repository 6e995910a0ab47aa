// Stochastic gradient descent with momentum, in PyTorch's convention (torch.optim.SGD, dampening 0):
//   g = grad + weight_decay * w
//   v = momentum * v + g                      (v starts at 0, so the first v is g)
//   step = nesterov ? g + momentum * v : v
//   w -= lr * step
// Note the learning rate multiplies the velocity rather than being folded into it, so changing lr
// mid-training (schedules) does not rescale past momentum.
import { kernels, type Floats, type ParamBlocks } from "../kernels.js";
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
    private readonly blocks: ParamBlocks | null = null,
  ) {
    super(params, grads, spec.clip_norm);
    this.state = { velocity: zerosLike(params) };
  }

  /** The loop is a kernel (kernels.ts: sgdUpdate): WebAssembly, split over the job's threads, for
   *  float32 models; the same values bit for bit as the JS loop. */
  protected update(lr: number): void {
    const { momentum, nesterov, weight_decay: decay } = this.spec;
    const w = this.params;
    kernels.sgdUpdate(w, this.grads, this.state.velocity, w.length, lr, momentum, decay, nesterov, this.blocks);
  }
}
