// The benchmark's workloads, described once, in the job config's own vocabulary (a ModelSpec, a
// loss name, an optimizer spec). Every peer builds its model from this description: ours directly,
// TensorFlow.js and PyTorch by translating it (peers/tfjs.ts, peers/torch_bench.py), so the four
// runners cannot drift apart.
//
// Convolutions use padding "valid" (no padding), PyTorch's default, so the CNN's shapes are
// 1x28x28 -> conv 16x26x26 -> pool 16x13x13 -> conv 32x11x11 -> pool 32x5x5 -> 800 -> 10.
import type { LossName } from "../../src/trainer/index.js";
import { seededRandom } from "../helpers/random.js";

/** A layer as the benchmark writes it: a subset of the job config's layer specs, defaults explicit. */
export type BenchLayer =
  | { type: "dense"; units: number; activation: "relu" | "tanh" | "softmax" | "linear" }
  | { type: "conv2d"; filters: number; kernel_size: number; stride: 1; padding: "valid"; activation: "relu" | "linear" }
  | { type: "maxpool2d"; pool_size: number }
  | { type: "flatten" };

export type WorkloadId = "W1" | "W2" | "W3" | "W4";

export interface Workload {
  id: WorkloadId;
  title: string;
  /** train: forward, loss, backward, optimizer step per batch. infer: inference-mode forward only. */
  mode: "train" | "infer";
  /** One sample's input shape, channels first ([C, H, W] for images). */
  inputShape: number[];
  layers: BenchLayer[];
  /** cross_entropy: integer class labels over the last layer's units (softmax folded into the loss). */
  loss: Extract<LossName, "cross_entropy" | "mse">;
  optimizer: { type: "sgd"; lr: number; momentum: number };
  batch: number;
  /** Rows of synthetic data kept in memory; steps cycle through them batch by batch. */
  poolRows: number;
}

const W1_LAYERS: BenchLayer[] = [
  { type: "dense", units: 256, activation: "relu" },
  { type: "dense", units: 128, activation: "relu" },
  { type: "dense", units: 10, activation: "softmax" },
];

export const WORKLOADS: Record<WorkloadId, Workload> = {
  W1: {
    id: "W1",
    title: "MLP 784-256-128-10 relu, softmax CE, SGD m0.9, batch 64 (train)",
    mode: "train",
    inputShape: [784],
    layers: W1_LAYERS,
    loss: "cross_entropy",
    optimizer: { type: "sgd", lr: 0.01, momentum: 0.9 },
    batch: 64,
    poolRows: 2048,
  },
  W2: {
    id: "W2",
    title: "CNN 1x28x28 conv3x3x16-pool2-conv3x3x32-pool2-dense10 (padding valid), softmax CE, SGD m0.9, batch 64 (train)",
    mode: "train",
    inputShape: [1, 28, 28],
    layers: [
      { type: "conv2d", filters: 16, kernel_size: 3, stride: 1, padding: "valid", activation: "relu" },
      { type: "maxpool2d", pool_size: 2 },
      { type: "conv2d", filters: 32, kernel_size: 3, stride: 1, padding: "valid", activation: "relu" },
      { type: "maxpool2d", pool_size: 2 },
      { type: "flatten" },
      { type: "dense", units: 10, activation: "softmax" },
    ],
    loss: "cross_entropy",
    optimizer: { type: "sgd", lr: 0.01, momentum: 0.9 },
    batch: 64,
    poolRows: 2048,
  },
  W3: {
    id: "W3",
    title: "MLP 8-32-32-1 tanh, MSE, SGD (no momentum) lr 0.01, batch 32 (train)",
    mode: "train",
    inputShape: [8],
    layers: [
      { type: "dense", units: 32, activation: "tanh" },
      { type: "dense", units: 32, activation: "tanh" },
      { type: "dense", units: 1, activation: "linear" },
    ],
    loss: "mse",
    optimizer: { type: "sgd", lr: 0.01, momentum: 0 },
    batch: 32,
    poolRows: 2048,
  },
  W4: {
    id: "W4",
    title: "W1's MLP, inference (softmax probabilities), batch 1024",
    mode: "infer",
    inputShape: [784],
    layers: W1_LAYERS,
    loss: "cross_entropy",
    optimizer: { type: "sgd", lr: 0.01, momentum: 0.9 },
    batch: 1024,
    poolRows: 4096,
  },
};

export const WORKLOAD_IDS = Object.keys(WORKLOADS) as WorkloadId[];

export function inputWidth(w: Workload): number {
  return w.inputShape.reduce((a, b) => a * b, 1);
}

/** The last layer's units: classes for cross_entropy, target values per row for mse. */
export function outputUnits(w: Workload): number {
  for (let i = w.layers.length - 1; i >= 0; i--) {
    const layer = w.layers[i];
    if (layer.type === "dense") return layer.units;
  }
  throw new Error(`${w.id}: the last parametrised layer must be dense`);
}

/** Values per target row: 1 (the class index) for cross_entropy, the output width for mse. */
export function targetWidth(w: Workload): number {
  return w.loss === "cross_entropy" ? 1 : outputUnits(w);
}

/**
 * FLOPs of one sample, counting only the GEMMs (2·m·k·n per product, m = 1 row here). Training
 * counts the forward products, the weight gradients and the input gradients of every layer but the
 * first (which needs none). Elementwise work, pooling and the optimizer are not counted, so this is
 * the "useful" GEMM work a BLAS-backed framework would also do. Dense layers only: the figure is
 * reported for W1 and W4.
 */
export function gemmFlopsPerSample(w: Workload): number | null {
  if (w.layers.some((l) => l.type !== "dense")) return null;
  let inFeatures = inputWidth(w);
  let flops = 0;
  w.layers.forEach((layer, i) => {
    if (layer.type !== "dense") return;
    const product = 2 * inFeatures * layer.units;
    flops += product; // forward
    if (w.mode === "train") {
      flops += product; // dLoss/dW = xᵀ·g
      if (i > 0) flops += product; // dLoss/dx = g·Wᵀ
    }
    inFeatures = layer.units;
  });
  return flops;
}

export interface SyntheticData {
  rows: number;
  /** [rows, inputWidth], channels first for images. */
  x: Float32Array;
  /** [rows, targetWidth]: class indices (as floats, the trainer's convention) or regression targets. */
  y: Float32Array;
}

/**
 * The workload's in-memory data, generated once from a fixed seed: inputs uniform in [0, 1) (pixel
 * intensities) for the 784-wide workloads and in [-1, 1) for W3; labels uniform over the classes;
 * W3's target a smooth function of the inputs (so tanh units see realistic values).
 */
export function syntheticData(w: Workload, seed = 1234): SyntheticData {
  const rand = seededRandom(seed);
  const width = inputWidth(w);
  const rows = w.poolRows;
  const x = new Float32Array(rows * width);
  const signed = w.loss === "mse";
  for (let i = 0; i < x.length; i++) x[i] = signed ? rand() * 2 - 1 : rand();
  const tw = targetWidth(w);
  const y = new Float32Array(rows * tw);
  if (w.loss === "cross_entropy") {
    const classes = outputUnits(w);
    for (let r = 0; r < rows; r++) y[r] = Math.floor(rand() * classes);
  } else {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < width; j++) s += Math.sin((j + 1) * x[r * width + j]);
      for (let t = 0; t < tw; t++) y[r * tw + t] = s / width;
    }
  }
  return { rows, x, y };
}
