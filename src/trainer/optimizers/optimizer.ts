// Optimizers update a model's flat parameter buffer from its flat gradient buffer. Each is an object
// with `step(lr)` (the learning rate comes from the schedule, so it can change every step) and
// state that can be exported for a checkpoint and imported to resume. Ordered simplest first, as in
// tinygrad's optim.py: sgd, then rmsprop, then adam and adamw (one class, adam.ts).
import type { Floats, ParamBlocks } from "../kernels.js";
import type { OptimizerSpec } from "../schema/optimizer.js";
import { Adam } from "./adam.js";
import { RmsProp } from "./rmsprop.js";
import { Sgd } from "./sgd.js";

export type OptimizerType = OptimizerSpec["type"];

/**
 * An optimizer's state, the same shape for every optimizer so a checkpoint can store it without
 * knowing which one it is: the number of steps taken and named buffers, one value per parameter,
 * in the parameters' precision (float32 in training, float64 under gradient checks), so a restored
 * run continues bit for bit. The buffers carry PyTorch's names:
 * - sgd: velocity
 * - rmsprop: square_avg, plus momentum_buffer (momentum > 0) and grad_avg (centered)
 * - adam, adamw: exp_avg, exp_avg_sq
 */
export interface OptimizerState {
  type: OptimizerType;
  /** Steps taken (Adam's bias correction depends on it). */
  step: number;
  tensors: Record<string, Float32Array | Float64Array>;
}

export interface Optimizer {
  readonly type: OptimizerType;
  /**
   * The global L2 norm of the gradient of the last `step`, before any clipping (NaN before the
   * first step). For diagnostics: a norm that keeps hitting clip_norm, or explodes, says so. Without
   * clip_norm it is measured when read, from the gradients as they are: read it before the next
   * backward pass.
   */
  readonly lastGradNorm: number;
  /** Applies one update using the current gradients (clipping them in place first if clip_norm is set). */
  step(lr: number): void;
  /** A copy of the state. */
  exportState(): OptimizerState;
  /** Restores exported state (copying it); throws, changing nothing, if it belongs to another
   *  optimizer type or configuration, or to another parameter count. */
  importState(state: OptimizerState): void;
}

/** What an optimizer works on: a model, or any pair of equally long flat buffers. */
export interface ParamBuffers {
  params: Floats;
  grads: Floats;
  /** How the parameters are laid out (a model's), which the update kernels may follow when they
   *  share the work out over threads; absent for plain buffers. */
  paramBlocks?: ParamBlocks | null;
}

export function createOptimizer(spec: OptimizerSpec, target: ParamBuffers): Optimizer {
  switch (spec.type) {
    case "sgd":
      return new Sgd(spec, target.params, target.grads, target.paramBlocks ?? null);
    case "rmsprop":
      return new RmsProp(spec, target.params, target.grads);
    case "adam":
    case "adamw":
      return new Adam(spec, target.params, target.grads, target.paramBlocks ?? null);
  }
}
