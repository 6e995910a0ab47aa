// A model: the layers of a ModelSpec over one flat parameter buffer and one flat gradient buffer
// (each tensor is a view), so optimizers update every parameter in one loop and a checkpoint is one
// copy. Activation buffers are allocated for the largest batch seen and reused.
import type { LayerSpec, ModelSpec } from "./config.js";
import { TrainerError } from "./errors.js";
import type { Floats } from "./kernels.js";
import { DenseLayer } from "./layers/dense.js";
import type { Layer, NamedTensor, TensorLookup } from "./layers/layer.js";
import { Rng, RngStream } from "./rng.js";

export type Dtype = "float32" | "float64";

export interface BuildOptions {
  /** Seeds the initial weights (the job seed; the init stream is derived from it). */
  seed: number;
  /** float32 (default) for training; float64 lets gradient checks run the same code exactly. */
  dtype?: Dtype;
}

/** The rows predict runs at once when no larger batch buffers exist yet. */
const PREDICT_BATCH = 256;

function createLayer(spec: LayerSpec, index: number, inWidth: number): Layer {
  switch (spec.type) {
    case "dense":
      return new DenseLayer(index, spec, inWidth, index > 0);
  }
}

export class Model {
  readonly layers: Layer[];
  readonly inputWidth: number;
  readonly outputWidth: number;
  readonly dtype: Dtype;
  /** Every parameter, layer after layer (each layer's tensors are views into it). */
  readonly params: Floats;
  /** dLoss/dParams of the last backward, same layout as params. */
  readonly grads: Floats;
  private capacity = 0;

  constructor(readonly spec: ModelSpec, inputWidth: number, options: BuildOptions) {
    if (!Number.isInteger(inputWidth) || inputWidth < 1) {
      throw new TrainerError("dataset_mismatch", `The input width must be a positive integer, got ${inputWidth}.`);
    }
    const shape = spec.input_shape;
    if (shape && shape.reduce((a, b) => a * b, 1) !== inputWidth) {
      throw new TrainerError(
        "dataset_mismatch",
        `model.input_shape [${shape.join(", ")}] does not hold the dataset's ${inputWidth} input values.`,
      );
    }
    this.inputWidth = inputWidth;
    this.dtype = options.dtype ?? "float32";

    let width = inputWidth;
    this.layers = spec.layers.map((layerSpec, i) => {
      const layer = createLayer(layerSpec, i, width);
      width = layer.outWidth;
      return layer;
    });
    this.outputWidth = width;

    const total = this.layers.reduce((n, layer) => n + layer.paramCount, 0);
    this.params = this.newArray(total);
    this.grads = this.newArray(total);
    let offset = 0;
    const rng = new Rng(options.seed, RngStream.init);
    for (const layer of this.layers) {
      layer.bind(this.params, this.grads, offset);
      layer.init(rng);
      offset += layer.paramCount;
    }
  }

  private newArray(length: number): Floats {
    return this.dtype === "float64" ? new Float64Array(length) : new Float32Array(length);
  }

  /** Makes sure batches of `rows` rows fit; buffers only ever grow, so steady state allocates nothing. */
  reserve(rows: number): void {
    if (rows <= this.capacity) return;
    this.capacity = rows;
    for (const layer of this.layers) layer.allocate(rows, (n) => this.newArray(n));
  }

  /** The outputs of `rows` rows (row-major, outputWidth each). The buffer is reused by the next call. */
  forward(input: Floats, rows: number, training: boolean): Floats {
    this.reserve(rows);
    let x = input;
    for (const layer of this.layers) x = layer.forward(x, rows, training);
    return x;
  }

  /** Backpropagates dLoss/dOutput of the last forward (overwriting it) and fills `grads`. */
  backward(gradOutput: Floats, rows: number): void {
    let g: Floats | null = gradOutput;
    for (let i = this.layers.length - 1; i >= 0 && g; i--) g = this.layers[i].backward(g, rows);
  }

  /** Inference-mode outputs for `rows` rows, computed in batches; a new array. */
  predict(x: Float32Array, rows: number): Float32Array {
    if (x.length !== rows * this.inputWidth) {
      throw new TrainerError("dataset_mismatch", `predict: expected ${rows} x ${this.inputWidth} input values, got ${x.length}.`);
    }
    const out = new Float32Array(rows * this.outputWidth);
    const batch = Math.max(1, Math.min(rows, Math.max(this.capacity, PREDICT_BATCH)));
    for (let start = 0; start < rows; start += batch) {
      const n = Math.min(batch, rows - start);
      const y = this.forward(x.subarray(start * this.inputWidth, (start + n) * this.inputWidth), n, false);
      for (let i = 0; i < n * this.outputWidth; i++) out[start * this.outputWidth + i] = y[i];
    }
    return out;
  }

  /** The parameters as float32 tensors in PyTorch layouts, named `<layer index>.<param>`. */
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
    const staged = new Model(this.spec, this.inputWidth, { seed: 0, dtype: this.dtype });
    for (const layer of staged.layers) layer.importTensors(lookup);
    const extra = [...byName.keys()].filter((name) => !used.has(name));
    if (extra.length > 0) throw new TrainerError("invalid_config", `The weights have unexpected tensor(s): ${extra.join(", ")}.`);
    this.params.set(staged.params);
  }
}

/** Builds a model for inputs of `inputWidth` values, initialised from `opts.seed`. */
export function buildModel(spec: ModelSpec, inputWidth: number, opts: BuildOptions): Model {
  return new Model(spec, inputWidth, opts);
}
