// What every layer provides. Modelled on convnetjs/TF.js: a layer owns views into the model's flat
// parameter, gradient and buffer arrays, its forward and backward passes sit side by side, and it
// exports its tensors in PyTorch's layouts under the names `<index>.<name>`.
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

/** The model's flat arrays a layer takes its views from. */
export interface ModelStorage {
  /** Trainable values, which optimizers update. */
  params: Floats;
  /** dLoss/dParams, same layout as params. */
  grads: Floats;
  /** Values that are saved with the weights but not trained (batchnorm's running statistics). */
  buffers: Floats;
}

/** What a layer is built from, besides its spec. */
export interface LayerContext {
  /** Position in `model.layers`; prefixes the layer's tensor names. */
  index: number;
  /** The shape of one input sample and of one output sample (see inferShapes). */
  inShape: number[];
  outShape: number[];
  /** false when no layer below has parameters (e.g. the first layer): nobody needs dLoss/dInput
   *  then, and skipping it saves work. backward returns null. */
  needsInputGrad: boolean;
  /** The model's stream for training-time randomness (dropout masks), drawn in layer order. */
  rng: Rng;
}

export interface Layer {
  readonly index: number;
  /** One sample's input and output shapes, and their sizes. */
  readonly inShape: readonly number[];
  readonly outShape: readonly number[];
  readonly inWidth: number;
  readonly outWidth: number;
  /** Number of trainable values this layer keeps in the model's params (and grads). */
  readonly paramCount: number;
  /** Number of non-trainable values this layer keeps in the model's buffers. */
  readonly bufferCount: number;
  /** Its parameters as row-major blocks, [rows, columns] each, in order (kernels.ts: ParamBlocks);
   *  absent: one column of paramCount values. */
  readonly paramBlocks?: readonly (readonly [number, number])[];

  /** Takes its views of the model's arrays: params and grads from `paramOffset`, buffers from
   *  `bufferOffset`. */
  bind(storage: ModelStorage, paramOffset: number, bufferOffset: number): void;
  /** Sets the initial parameters and buffers, drawing from `rng` in a fixed order. */
  init(rng: Rng): void;
  /** Allocates the activation buffers for batches of up to `capacity` rows. */
  allocate(capacity: number, newArray: (length: number) => Floats): void;

  /** Computes the output of `rows` input rows. `training` is false for inference (dropout and
   *  batchnorm behave differently). The returned buffer is the layer's own (or, for layers that
   *  change nothing, the input itself) and is overwritten by the next call. The input must stay
   *  untouched until backward. */
  forward(input: Floats, rows: number, training: boolean): Floats;
  /** Given dLoss/dOutput for the last training forward (the buffer may be overwritten), writes this
   *  layer's parameter gradients and returns dLoss/dInput, or null if built without input
   *  gradients. */
  backward(gradOutput: Floats, rows: number): Floats | null;

  /** Parameters and buffers, float32, in PyTorch layouts. */
  exportTensors(): NamedTensor[];
  importTensors(lookup: TensorLookup): void;
}

/** The bound of uniform initialisation U(±limit): He, sqrt(6 / fan_in), before the relu family;
 *  Glorot, sqrt(6 / (fan_in + fan_out)), otherwise. */
export function initLimit(init: "he" | "glorot", fanIn: number, fanOut: number): number {
  return init === "he" ? Math.sqrt(6 / fanIn) : Math.sqrt(6 / (fanIn + fanOut));
}

/** An empty array for views and buffers not yet bound or allocated. */
export const NONE: Floats = new Float64Array(0);

/**
 * A layer without parameters or buffers (flatten, dropout, pooling, activation): the bookkeeping
 * every such layer shares.
 */
export abstract class ParameterFreeLayer implements Layer {
  readonly index: number;
  readonly inShape: readonly number[];
  readonly outShape: readonly number[];
  readonly inWidth: number;
  readonly outWidth: number;
  readonly paramCount = 0;
  readonly bufferCount = 0;
  protected readonly needsInputGrad: boolean;

  constructor(context: LayerContext) {
    this.index = context.index;
    this.inShape = context.inShape;
    this.outShape = context.outShape;
    this.inWidth = context.inShape.reduce((a, b) => a * b, 1);
    this.outWidth = context.outShape.reduce((a, b) => a * b, 1);
    this.needsInputGrad = context.needsInputGrad;
  }

  bind(): void {}
  init(): void {}
  exportTensors(): NamedTensor[] {
    return [];
  }
  importTensors(): void {}

  abstract allocate(capacity: number, newArray: (length: number) => Floats): void;
  abstract forward(input: Floats, rows: number, training: boolean): Floats;
  abstract backward(gradOutput: Floats, rows: number): Floats | null;
}
