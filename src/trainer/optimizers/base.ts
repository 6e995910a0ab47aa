// What every optimizer shares: clipping, the step counter, and exporting and importing its named
// state buffers. A subclass declares its buffers and writes `update`, the update rule proper.
import type { Floats } from "../kernels.js";
import { allocFloat32 } from "../wasm/arena.js";
import { clipGradNorm } from "./clip.js";
import type { Optimizer, OptimizerState, OptimizerType } from "./optimizer.js";

/** A zeroed buffer with one value per parameter, in the parameters' precision (float32 in the
 *  kernels' arena, beside the parameters). */
export function zerosLike(params: Floats): Floats {
  return params instanceof Float64Array ? new Float64Array(params.length) : allocFloat32(params.length);
}

export abstract class ParamOptimizer implements Optimizer {
  abstract readonly type: OptimizerType;
  private gradNorm = NaN;
  /** A step without clipping has run since gradNorm was measured. */
  private normPending = false;
  /** Steps taken so far; `update` receives the 1-based number of the step it performs. */
  private steps = 0;
  /** The state buffers by their exported names, each as long as `params` and of its precision. */
  protected abstract readonly state: Readonly<Record<string, Floats>>;

  protected constructor(
    protected readonly params: Floats,
    protected readonly grads: Floats,
    private readonly clipNorm: number | undefined,
  ) {
    if (params.length !== grads.length) {
      throw new Error(`Optimizer: ${params.length} parameters but ${grads.length} gradients`);
    }
  }

  /**
   * One update of `params` from `grads`, already clipped. Allocation-free, and every state value is
   * read back after it is stored, so that float32 rounding happens the same way whether or not the
   * run was resumed from exported state.
   */
  protected abstract update(lr: number, step: number): void;

  /** Measured on demand when there is no clipping (nothing else needs it, and it is a whole pass
   *  over the gradients): from the gradients as they are, so read it before the next backward. */
  get lastGradNorm(): number {
    if (this.normPending) {
      this.normPending = false;
      this.gradNorm = clipGradNorm(this.grads, undefined);
    }
    return this.gradNorm;
  }

  step(lr: number): void {
    if (this.clipNorm === undefined) this.normPending = true;
    else this.gradNorm = clipGradNorm(this.grads, this.clipNorm);
    this.steps += 1;
    this.update(lr, this.steps);
  }

  exportState(): OptimizerState {
    const tensors: Record<string, Float32Array | Float64Array> = {};
    for (const [name, buffer] of Object.entries(this.state)) tensors[name] = buffer.slice();
    return { type: this.type, step: this.steps, tensors };
  }

  importState(state: OptimizerState): void {
    const where = `${this.type}.importState`;
    if (state.type !== this.type) throw new Error(`${where}: the state is for "${String(state.type)}"`);
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new Error(`${where}: step must be a non-negative integer, got ${state.step}`);
    }
    // Check everything before changing anything, so a rejected state leaves the optimizer as it was.
    for (const [name, buffer] of Object.entries(this.state)) {
      const given = state.tensors[name];
      if (given === undefined) throw new Error(`${where}: the state has no "${name}"`);
      if (given.length !== buffer.length) {
        throw new Error(`${where}: "${name}" has ${given.length} values for ${buffer.length} parameters`);
      }
    }
    for (const name of Object.keys(state.tensors)) {
      if (!(name in this.state)) {
        throw new Error(`${where}: unexpected "${name}" (this ${this.type} keeps ${Object.keys(this.state).join(", ")})`);
      }
    }
    for (const [name, buffer] of Object.entries(this.state)) buffer.set(state.tensors[name]);
    this.steps = state.step;
  }
}
