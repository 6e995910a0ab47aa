// What every layer provides. Modelled on convnetjs/TF.js: a layer owns views into the model's flat
// parameter and gradient buffers, its forward and backward passes sit side by side, and it exports
// its parameters in PyTorch's layouts under the names `<index>.<param>`.
import type { Floats } from "../kernels.js";
import type { Rng } from "../rng.js";

/** A tensor as written to a weights file: float32, PyTorch layout. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Returns the values stored for `name`, after checking they have `shape`; throws otherwise. */
export type TensorLookup = (name: string, shape: readonly number[]) => ArrayLike<number>;

export interface Layer {
  /** Position in `model.layers`; prefixes the layer's tensor names. */
  readonly index: number;
  readonly inWidth: number;
  readonly outWidth: number;
  /** Number of trainable values this layer stores in the model's flat buffers. */
  readonly paramCount: number;

  /** Takes its parameter and gradient views from the model's buffers, starting at `offset`. */
  bind(params: Floats, grads: Floats, offset: number): void;
  /** Sets the initial parameters, drawing from `rng` in a fixed order. */
  init(rng: Rng): void;
  /** Allocates the activation buffers for batches of up to `capacity` rows. */
  allocate(capacity: number, newArray: (length: number) => Floats): void;

  /** Computes the output of `rows` input rows. `training` is false for inference (dropout etc.).
   *  The returned buffer is the layer's own and is overwritten by the next call. */
  forward(input: Floats, rows: number, training: boolean): Floats;
  /** Given dLoss/dOutput for the last forward (the buffer may be overwritten), writes this layer's
   *  parameter gradients and returns dLoss/dInput, or null if built without input gradients. */
  backward(gradOutput: Floats, rows: number): Floats | null;

  exportTensors(): NamedTensor[];
  importTensors(lookup: TensorLookup): void;
}
