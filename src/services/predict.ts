// Prediction: a job's stored weights run through the trainer's own forward pass, in inference mode
// (no dropout, batchnorm's running statistics), in the API process. Built models are cached per
// (job, epoch) in a small LRU, so repeated requests decode the safetensors once.
import { AppError } from "../errors.js";
import {
  buildModel,
  createLoss,
  decodeSafetensors,
  jobConfigSchema,
  lossSpec,
  type CheckpointRef,
  type JobConfig,
  type Model,
} from "../trainer/index.js";
import type { Db } from "../db/client.js";
import * as jobs from "../db/jobs.js";

/** Most inputs one request may carry. */
export const MAX_PREDICT_INPUTS = 1024;
/** Built models kept in memory (each holds one checkpoint's weights). */
export const MODEL_CACHE_SIZE = 8;

export interface Prediction {
  checkpoint_epoch: number;
  /** The model's outputs per input: logits for classifiers (the softmax or sigmoid the loss
   *  applies is not applied here), values for regression. */
  outputs: number[][];
  /** cross_entropy: softmax of the outputs; binary_cross_entropy: sigmoid of each output. */
  probabilities?: number[][];
  /** cross_entropy: the class of the largest output, by the training dataset's labels. */
  labels?: string[];
}

/** A small least-recently-used map. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }
  get size(): number {
    return this.map.size;
  }
}

const models = new Lru<string, Model>(MODEL_CACHE_SIZE);

/**
 * Checks and flattens the inputs: each is a flat array of `prod(shape)` numbers, or nested arrays
 * of exactly `shape` (e.g. [1][28][28]). Throws a 422 `invalid_input` naming `inputs.<i>`.
 */
export function flattenInputs(inputs: readonly unknown[], shape: readonly number[]): Float32Array {
  const width = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(inputs.length * width);
  const expected = shape.length > 1 ? `${width} numbers, or nested arrays of shape [${shape.join(", ")}]` : `${width} numbers`;
  inputs.forEach((input, i) => {
    const fail = (why: string): never => {
      throw new AppError("invalid_input", `inputs[${i}]: ${why}; the model takes ${expected}.`, `inputs.${i}`);
    };
    if (!Array.isArray(input)) fail("not an array");
    const row = input as unknown[];
    let at = i * width;
    const put = (v: unknown, where: string) => {
      if (typeof v !== "number" || !Number.isFinite(v)) fail(`${where} is ${describe(v)}, not a finite number`);
      out[at++] = v as number;
    };
    if (row.length === width && row.every((v) => !Array.isArray(v))) {
      row.forEach((v, j) => put(v, `value ${j}`));
      return;
    }
    if (shape.length === 1 || !row.some((v) => Array.isArray(v))) {
      fail(`${row.length} values`);
    }
    // Nested: walk it, checking every level's length against the shape.
    const walk = (v: unknown, depth: number, path: string) => {
      if (depth === shape.length) return put(v, `value ${path}`);
      if (!Array.isArray(v)) fail(`${path || "it"} is ${describe(v)} where an array of ${shape[depth]} was expected`);
      const arr = v as unknown[];
      if (arr.length !== shape[depth]) fail(`${path ? `${path} has` : "it has"} ${arr.length} entries where the shape needs ${shape[depth]}`);
      arr.forEach((w, k) => walk(w, depth + 1, path ? `${path}[${k}]` : `[${k}]`));
    };
    walk(row, 0, "");
  });
  return out;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  return `a ${typeof v}`;
}

/** The activation the loss applies to the model's outputs itself, when the model ends with it. */
function foldedOutput(config: JobConfig): "softmax" | "sigmoid" | undefined {
  const folds = createLoss(config.loss).foldsOutput;
  if (!folds) return undefined;
  const layers = config.model.layers;
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i];
    if ("activation" in layer) return layer.activation === folds ? folds : undefined;
  }
  return undefined;
}

function inputShapeOf(config: JobConfig): number[] {
  // Stored configs carry the input shape (filled in from the dataset at submission).
  return config.model.input_shape ? [...config.model.input_shape] : [];
}

export async function predict(
  db: Db,
  job: jobs.JobRow,
  body: { inputs: unknown[]; checkpoint: CheckpointRef },
): Promise<Prediction> {
  const parsed = jobConfigSchema.safeParse(job.config);
  if (!parsed.success) throw new AppError("internal");
  const config = parsed.data;
  const shape = inputShapeOf(config);
  if (shape.length === 0) throw new AppError("internal");
  const x = flattenInputs(body.inputs, shape);

  const epoch = await jobs.checkpointEpoch(db, job.id, body.checkpoint);
  if (epoch === null) {
    throw new AppError("checkpoint_not_found", `Job ${job.id} has no \`${body.checkpoint}\` checkpoint${job.epoch === 0 ? " yet" : ""}.`, "checkpoint");
  }
  const key = `${job.id}:${epoch}`;
  let model = models.get(key);
  if (!model) {
    const cp = await jobs.findCheckpoint(db, job.id, epoch);
    if (!cp) throw new AppError("checkpoint_not_found", `Job ${job.id} has no checkpoint of epoch ${epoch} any more.`, "checkpoint");
    model = buildModel(config.model, shape.reduce((a, b) => a * b, 1), { seed: 0, foldOutput: foldedOutput(config) });
    model.importTensors(decodeSafetensors(cp.weights).tensors);
    models.set(key, model);
  }

  const rows = body.inputs.length;
  const width = model.outputWidth;
  const outputs: number[][] = [];
  // forward's buffer is reused by the next call: copy each batch out before the next.
  const batch = 256;
  for (let start = 0; start < rows; start += batch) {
    const n = Math.min(batch, rows - start);
    const y = model.forward(x.subarray(start * model.inputWidth, (start + n) * model.inputWidth), n, false);
    for (let r = 0; r < n; r++) outputs.push(Array.from(y.subarray(r * width, (r + 1) * width)));
  }

  const loss = lossSpec(config.loss).type;
  const result: Prediction = { checkpoint_epoch: epoch, outputs };
  if (loss === "cross_entropy") {
    result.probabilities = outputs.map(softmax);
    result.labels = outputs.map((o) => {
      let best = 0;
      for (let i = 1; i < o.length; i++) if (o[i] > o[best]) best = i;
      return job.classes[best] ?? String(best);
    });
  } else if (loss === "binary_cross_entropy") {
    result.probabilities = outputs.map((o) => o.map((v) => 1 / (1 + Math.exp(-v))));
  }
  return result;
}

function softmax(o: number[]): number[] {
  const max = Math.max(...o);
  const e = o.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
