// Adam and AdamW in PyTorch's convention (torch.optim.Adam, torch.optim.AdamW), at step t (1-based):
//   adamw: w -= lr * weight_decay * w              (decoupled decay, before the update)
//   g = grad + weight_decay * w                     (adam only: an L2 term in the gradient)
//   m = beta1 * m + (1 - beta1) * g                 (exp_avg)
//   v = beta2 * v + (1 - beta2) * g²                (exp_avg_sq)
//   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The bias corrections undo the zero start of m and v; eps is added after correcting v, as PyTorch
// does (not to the raw sqrt(v), as the Adam paper's "epsilon hat" variant would).
import { kernels, type AdamStep, type Floats, type ParamBlocks } from "../kernels.js";
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
    private readonly blocks: ParamBlocks | null = null,
  ) {
    super(params, grads, spec.clip_norm);
    this.type = spec.type;
    this.state = { exp_avg: zerosLike(params), exp_avg_sq: zerosLike(params) };
  }

  /** The loop is a kernel (kernels.ts: adamUpdate): WebAssembly, split over the job's threads, for
   *  float32 models; the same values bit for bit as the JS loop. */
  protected update(lr: number, step: number): void {
    const { beta1, beta2, eps, weight_decay: decay } = this.spec;
    const s = this.step1;
    s.decoupled = this.spec.type === "adamw";
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.eps = eps;
    s.l2 = s.decoupled ? 0 : decay;
    s.shrink = 1 - lr * decay; // adamw only
    s.stepSize = lr / (1 - beta1 ** step);
    s.correction2 = Math.sqrt(1 - beta2 ** step);
    const { exp_avg: m, exp_avg_sq: v } = this.state;
    kernels.adamUpdate(this.params, this.grads, m, v, this.params.length, s, this.blocks);
  }

  /** The step's constants, one object reused (no allocation per step). */
  private readonly step1: AdamStep = { beta1: 0, beta2: 0, eps: 0, l2: 0, shrink: 1, decoupled: false, stepSize: 0, correction2: 1 };
}
