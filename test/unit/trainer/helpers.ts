// Shared fixtures for the trainer tests: small synthetic datasets and configs.
import { jobConfigSchema, Rng, type JobConfig, type JobConfigInput, type TrainSet } from "../../../src/trainer/index.js";

export const DATASET_ID = "6f1c2a9e-8d3b-4f5a-9c7e-1b2d3e4f5a6b";

/** A parsed config with defaults, overridden by `over`. */
export function makeConfig(over: Partial<JobConfigInput> & Pick<JobConfigInput, "model" | "loss">): JobConfig {
  return jobConfigSchema.parse({ dataset_id: DATASET_ID, ...over });
}

/** y = x·w + b + noise, with fixed "true" coefficients. */
export function linearRegression(rows: number, seed: number, noise = 0.1): TrainSet {
  const rng = new Rng(seed, 99);
  const w = [1.5, -2, 0.5, 3];
  const b = 0.7;
  const x = new Float32Array(rows * w.length);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let t = b;
    for (let j = 0; j < w.length; j++) {
      const v = rng.uniform(-1, 1);
      x[r * w.length + j] = v;
      t += w[j] * v;
    }
    y[r] = t + noise * rng.normal();
  }
  return { x, y, rows, inputWidth: w.length, targetWidth: 1 };
}

/** Three Gaussian blobs in 2-D, overlapping a little (spread 0.8: a few percent of points lie nearer another centre), labels 0..2 stored as floats. */
export function threeBlobs(rows: number, seed: number, spread = 0.8): TrainSet {
  const rng = new Rng(seed, 98);
  const centres = [
    [0, 2],
    [-2, -1],
    [2, -1],
  ];
  const x = new Float32Array(rows * 2);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const label = r % 3;
    x[r * 2] = centres[label][0] + spread * rng.normal();
    x[r * 2 + 1] = centres[label][1] + spread * rng.normal();
    y[r] = label;
  }
  return { x, y, rows, inputWidth: 2, targetWidth: 1 };
}

export function bytesOf(a: Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
