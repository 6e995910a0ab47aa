// A model: the layers of a ModelSpec over one flat parameter buffer and one flat gradient buffer
// (each tensor is a view), so optimizers update every parameter in one loop and a checkpoint is one
// copy. Non-trainable values (batchnorm's running statistics) live in a third flat array, `buffers`,
// which optimizers never see. Activation buffers are allocated for the largest batch seen and
// reused.
import type { ModelSpec } from "./config.js";
import { TrainerError } from "./errors.js";
import { kernels, type Floats, type ParamBlocks } from "./kernels.js";
import { ActivationLayer } from "./layers/activation.js";
import { BatchNormLayer } from "./layers/batchnorm.js";
import { Conv2dLayer } from "./layers/conv2d.js";
import { DenseLayer } from "./layers/dense.js";
import { DropoutLayer } from "./layers/dropout.js";
import { FlattenLayer } from "./layers/flatten.js";
import type { Layer, LayerContext, NamedTensor, TensorLookup } from "./layers/layer.js";
import { Pool2dLayer } from "./layers/pool2d.js";
import { Rng, RngStream, type RngState } from "./rng.js";
import type { LayerSpec } from "./schema/layers.js";
import { inferShapes, product } from "./shapes.js";
import { allocFloat32, allocInt32 } from "./wasm/arena.js";

export type Dtype = "float32" | "float64";

/** An output function a loss applies itself (cross_entropy: softmax; binary_cross_entropy: sigmoid). */
export type FoldedActivation = "softmax" | "sigmoid";

export interface BuildOptions {
  /** Seeds the initial weights and the dropout masks (each from its own stream of this seed). */
  seed: number;
  /** float32 (default) for training; float64 lets gradient checks run the same code exactly. */
  dtype?: Dtype;
  /**
   * The loss applies this function to the outputs itself, and the model's last activation is that
   * function: the model then builds it as linear, so `forward` returns logits (what the loss wants,
   * and more stable), while `predict` still applies it and returns probabilities. Default: none.
   */
  foldOutput?: FoldedActivation;
  /**
   * A replica for a thread that trains part of each batch (data-parallel.ts): the parameters are
   * these values (another model's, in the shared arena), neither copied nor initialised; the
   * gradients and activations are the replica's own.
   */
  sharedParams?: Float32Array;
}

export interface ModelShapes {
  /** One sample's input shape: model.input_shape, or [inputWidth] without one. */
  input: number[];
  /** One sample's output shape after each layer. */
  layers: number[][];
}

/** The rows predict runs at once when no larger batch buffers exist yet. */
const PREDICT_BATCH = 256;

function createLayer(spec: LayerSpec, context: LayerContext): Layer {
  switch (spec.type) {
    case "dense":
      return new DenseLayer(spec, context);
    case "conv2d":
      return new Conv2dLayer(spec, context);
    case "maxpool2d":
    case "avgpool2d":
      return new Pool2dLayer(spec, context);
    case "flatten":
      return new FlattenLayer(context);
    case "dropout":
      return new DropoutLayer(spec, context);
    case "batchnorm":
      return new BatchNormLayer(spec, context);
    case "activation":
      return new ActivationLayer(spec, context);
  }
}

/** The blocks of every layer's parameters, in order (kernels.ts: ParamBlocks), in an array from
 *  `alloc`: a layer that gives none is one column of its values, which the threads share out evenly. */
function paramBlocksOf(layers: readonly Layer[], alloc: (length: number) => Int32Array): ParamBlocks {
  const blocks: (readonly [number, number])[] = [];
  for (const layer of layers) {
    if (layer.paramCount === 0) continue;
    blocks.push(...(layer.paramBlocks ?? [[layer.paramCount, 1] as const]));
  }
  const table = alloc(3 * blocks.length);
  let at = 0;
  blocks.forEach(([rows, cols], i) => {
    table[3 * i] = at;
    table[3 * i + 1] = rows;
    table[3 * i + 2] = cols;
    at += rows * cols;
  });
  return table;
}

/** The index of the last layer with an activation, which foldOutput refers to; -1 if none. */
function lastActivationLayer(layers: readonly LayerSpec[]): number {
  for (let i = layers.length - 1; i >= 0; i--) if ("activation" in layers[i]) return i;
  return -1;
}

export class Model {
  readonly layers: Layer[];
  readonly inputWidth: number;
  readonly outputWidth: number;
  readonly dtype: Dtype;
  readonly shapes: ModelShapes;
  /** Every parameter, layer after layer (each layer's tensors are views into it). */
  readonly params: Floats;
  /** dLoss/dParams of the last backward, same layout as params. */
  readonly grads: Floats;
  /** How params (and grads) are laid out, layer after layer (kernels.ts: ParamBlocks). */
  readonly paramBlocks: ParamBlocks;
  /** Non-trainable values (batchnorm running statistics), layer after layer. */
  readonly buffers: Floats;
  /** The activation folded into the loss (forward returns logits; predict applies it), or null. */
  readonly outputActivation: FoldedActivation | null;
  /** Dropout masks: its own stream of the seed, so dropout changes neither init nor shuffling. */
  private readonly rng: Rng;
  private capacity = 0;

  constructor(readonly spec: ModelSpec, inputWidth: number, private readonly options: BuildOptions) {
    if (!Number.isInteger(inputWidth) || inputWidth < 1) {
      throw new TrainerError("dataset_mismatch", `The input width must be a positive integer, got ${inputWidth}.`);
    }
    const inputShape = spec.input_shape ? [...spec.input_shape] : [inputWidth];
    if (product(inputShape) !== inputWidth) {
      throw new TrainerError(
        "dataset_mismatch",
        `model.input_shape [${inputShape.join(", ")}] does not hold the dataset's ${inputWidth} input values.`,
      );
    }
    const inferred = inferShapes(spec, inputShape);
    if ("param" in inferred) throw new TrainerError("invalid_config", `${inferred.param}: ${inferred.message}`);
    this.shapes = { input: inputShape, layers: inferred.shapes };
    this.inputWidth = inputWidth;
    this.dtype = options.dtype ?? "float32";
    this.rng = new Rng(options.seed, RngStream.dropout);

    const layerSpecs = [...spec.layers];
    this.outputActivation = options.foldOutput ?? null;
    if (options.foldOutput) {
      const last = lastActivationLayer(layerSpecs);
      const folded = last >= 0 ? layerSpecs[last] : null;
      if (!folded || !("activation" in folded) || folded.activation !== options.foldOutput) {
        throw new TrainerError(
          "invalid_config",
          `Cannot fold ${options.foldOutput} into the loss: the model's last activation is not ${options.foldOutput}.`,
        );
      }
      // Both foldable functions use Glorot initialisation, like linear, so the weights stay the same.
      layerSpecs[last] = { ...folded, activation: "linear" };
    }

    let below = false; // whether some layer below has parameters, i.e. needs dLoss/dInput
    this.layers = layerSpecs.map((layerSpec, index) => {
      const layer = createLayer(layerSpec, {
        index,
        inShape: index === 0 ? inputShape : inferred.shapes[index - 1],
        outShape: inferred.shapes[index],
        needsInputGrad: below,
        rng: this.rng,
      });
      below ||= layer.paramCount > 0;
      return layer;
    });
    this.outputWidth = this.layers[this.layers.length - 1].outWidth;

    const paramCount = this.layers.reduce((n, layer) => n + layer.paramCount, 0);
    const bufferCount = this.layers.reduce((n, layer) => n + layer.bufferCount, 0);
    const shared = options.sharedParams;
    if (shared && (shared.length !== paramCount || this.dtype !== "float32")) {
      throw new Error(`sharedParams: ${shared.length} float32 values given for ${paramCount} ${this.dtype} parameters`);
    }
    this.params = shared ?? this.newArray(paramCount);
    this.grads = this.newArray(paramCount);
    this.paramBlocks = paramBlocksOf(this.layers, this.dtype === "float32" ? allocInt32 : (n) => new Int32Array(n));
    this.buffers = this.newArray(bufferCount);
    const storage = { params: this.params, grads: this.grads, buffers: this.buffers };
    const initRng = new Rng(options.seed, RngStream.init);
    let paramOffset = 0;
    let bufferOffset = 0;
    for (const layer of this.layers) {
      layer.bind(storage, paramOffset, bufferOffset);
      if (!shared) layer.init(initRng);
      paramOffset += layer.paramCount;
      bufferOffset += layer.bufferCount;
    }
  }

  /** float32 arrays live in the WebAssembly arena, where the kernels work on them in place;
   *  float64 ones (gradient checks) are ordinary arrays, on which the JS kernels run. */
  private newArray(length: number): Floats {
    return this.dtype === "float64" ? new Float64Array(length) : allocFloat32(length);
  }

  /** Makes sure batches of `rows` rows fit; buffers only ever grow, so steady state allocates nothing. */
  reserve(rows: number): void {
    if (rows <= this.capacity) return;
    this.capacity = rows;
    for (const layer of this.layers) layer.allocate(rows, (n) => this.newArray(n));
  }

  /** The outputs of `rows` rows (row-major, outputWidth each); logits when an activation is folded.
   *  The buffer is reused by the next call. `training` turns on dropout and batch statistics. */
  forward(input: Floats, rows: number, training: boolean): Floats {
    this.reserve(rows);
    let x = input;
    for (const layer of this.layers) x = layer.forward(x, rows, training);
    return x;
  }

  /** Backpropagates dLoss/dOutput of the last (training) forward, overwriting it, and fills `grads`. */
  backward(gradOutput: Floats, rows: number): void {
    let g: Floats | null = gradOutput;
    for (let i = this.layers.length - 1; i >= 0 && g; i--) g = this.layers[i].backward(g, rows);
  }

  /** Inference-mode outputs for `rows` rows, computed in batches; a new array. With a folded
   *  activation these are probabilities (softmax or sigmoid applied), not logits. */
  predict(x: Float32Array, rows: number): Float32Array {
    if (x.length !== rows * this.inputWidth) {
      throw new TrainerError("dataset_mismatch", `predict: expected ${rows} x ${this.inputWidth} input values, got ${x.length}.`);
    }
    const width = this.outputWidth;
    const out = new Float32Array(rows * width);
    const batch = Math.max(1, Math.min(rows, Math.max(this.capacity, PREDICT_BATCH)));
    for (let start = 0; start < rows; start += batch) {
      const n = Math.min(batch, rows - start);
      const y = this.forward(x.subarray(start * this.inputWidth, (start + n) * this.inputWidth), n, false);
      for (let i = 0; i < n * width; i++) out[start * width + i] = y[i];
    }
    if (this.outputActivation === "softmax") kernels.softmax(out, rows, width);
    else if (this.outputActivation === "sigmoid") kernels.sigmoid(out, rows * width);
    return out;
  }

  /** The dropout stream's state, for checkpoints: restoring it makes the next masks the same. */
  getRngState(): RngState {
    return this.rng.getState();
  }

  setRngState(state: RngState): void {
    this.rng.setState(state);
  }

  /** Rewrites, in place, values that are laid out as params were in snapshots of layout 1 (dense
   *  weights [in, units]; train.ts: SNAPSHOT_LAYOUT) in today's layout. */
  paramsFromLayout1(values: Floats): void {
    if (values.length !== this.params.length) throw new Error(`paramsFromLayout1: ${values.length} values for ${this.params.length} parameters`);
    let offset = 0;
    for (const layer of this.layers) {
      if (layer instanceof DenseLayer) layer.fromLayout1(values, offset);
      offset += layer.paramCount;
    }
  }

  /** Parameters and buffers as float32 tensors in PyTorch layouts, named `<layer index>.<name>`. */
  exportTensors(): NamedTensor[] {
    return this.layers.flatMap((layer) => layer.exportTensors());
  }

  /** Loads tensors as exported (or decoded from safetensors); every name must be present with the
   *  expected shape and no other names may appear. */
  importTensors(tensors: NamedTensor[] | Record<string, { shape: number[]; data: ArrayLike<number> }>): void {
    const byName = new Map(Array.isArray(tensors) ? tensors.map((t) => [t.name, t] as const) : Object.entries(tensors));
    const used = new Set<string>();
    const lookup: TensorLookup = (name, shape) => {
      const tensor = byName.get(name);
      if (!tensor) throw new TrainerError("invalid_config", `The weights have no tensor "${name}".`);
      const size = shape.reduce((a, b) => a * b, 1);
      if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i]) || tensor.data.length !== size) {
        throw new TrainerError(
          "invalid_config",
          `Tensor "${name}" has shape [${tensor.shape.join(", ")}] (${tensor.data.length} values); the model expects [${shape.join(", ")}].`,
        );
      }
      used.add(name);
      return tensor.data;
    };
    // Check everything before writing anything, so a bad file leaves the model untouched.
    const staged = new Model(this.spec, this.inputWidth, { ...this.options, dtype: this.dtype, sharedParams: undefined });
    for (const layer of staged.layers) layer.importTensors(lookup);
    const extra = [...byName.keys()].filter((name) => !used.has(name));
    if (extra.length > 0) throw new TrainerError("invalid_config", `The weights have unexpected tensor(s): ${extra.join(", ")}.`);
    this.params.set(staged.params);
    this.buffers.set(staged.buffers);
  }
}

/** Builds a model for inputs of `inputWidth` values, initialised from `opts.seed`. */
export function buildModel(spec: ModelSpec, inputWidth: number, opts: BuildOptions): Model {
  return new Model(spec, inputWidth, opts);
}
