// Optimizers update a model's flat parameter buffer from its flat gradient buffer. Each is an object
// with `step(lr)` (the learning rate comes from the schedule, so it can change every step) and
// JSON-serialisable state for checkpoints. Ordered simplest first, as in tinygrad's optim.py: sgd
// now; adam, adamw and rmsprop slot in beside it.
import type { OptimizerSpec } from "../config.js";
import type { Floats } from "../kernels.js";
import { Sgd, type SgdState } from "./sgd.js";

/** Every optimizer's exported state; a union discriminated on `type` as optimizers are added. */
export type OptimizerState = SgdState;

export interface Optimizer {
  readonly type: OptimizerSpec["type"];
  /** Applies one update using the current gradients. */
  step(lr: number): void;
  exportState(): OptimizerState;
  /** Restores exported state; throws if it belongs to another optimizer or parameter count. */
  importState(state: OptimizerState): void;
}

/** What an optimizer works on: a model, or any pair of equally long flat buffers. */
export interface ParamBuffers {
  params: Floats;
  grads: Floats;
}

export function createOptimizer(spec: OptimizerSpec, target: ParamBuffers): Optimizer {
  switch (spec.type) {
    case "sgd":
      return new Sgd(spec, target.params, target.grads);
  }
}
