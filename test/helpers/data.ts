// Small synthetic datasets, generated in the tests from a fixed seed.
import { seededRandom as testRng } from "./random.js";

function gaussian(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** y = 2 x0 - 3 x1 + 0.5 x2 + 1 + noise, x uniform in [-1, 1]. */
export function regressionCsv(rows: number, seed: number): string {
  const rand = testRng(seed);
  const lines = ["x0,x1,x2,y"];
  for (let i = 0; i < rows; i++) {
    const x = [rand() * 2 - 1, rand() * 2 - 1, rand() * 2 - 1];
    const y = 2 * x[0] - 3 * x[1] + 0.5 * x[2] + 1 + 0.1 * gaussian(rand);
    lines.push([...x.map((v) => v.toFixed(5)), y.toFixed(5)].join(","));
  }
  return lines.join("\n") + "\n";
}

export const BLOB_CLASSES = ["blue", "green", "red"] as const;

/** Three gaussian blobs in the plane, labelled by colour name; the label column comes first. */
export function blobsCsv(rows: number, seed: number): { csv: string; x: number[][]; labels: string[] } {
  const rand = testRng(seed);
  const centres: Record<string, [number, number]> = { red: [2, 0], green: [-1, 1.7], blue: [-1, -1.7] };
  const names = ["red", "green", "blue"];
  const lines = ["colour,a,b"];
  const x: number[][] = [];
  const labels: string[] = [];
  for (let i = 0; i < rows; i++) {
    const label = names[i % 3];
    const [cx, cy] = centres[label];
    const p = [cx + 0.6 * gaussian(rand), cy + 0.6 * gaussian(rand)].map((v) => Number(v.toFixed(5)));
    x.push(p);
    labels.push(label);
    lines.push(`${label},${p[0]},${p[1]}`);
  }
  return { csv: lines.join("\n") + "\n", x, labels };
}

/**
 * MNIST-shaped rows (784 features in [0, 1], 10 classes), for W1-sized models (784-256-128-10):
 * class k lights up a band of rows around 2k + 4 of a 28x28 image, plus noise. The label column
 * `digit` comes last. Two decimals keep the CSV small (about 3.7 kB per row).
 */
export function digitsCsv(rows: number, seed: number): string {
  const rand = testRng(seed);
  const header = [...Array.from({ length: 784 }, (_, i) => `p${i}`), "digit"].join(",");
  const lines = [header];
  for (let r = 0; r < rows; r++) {
    const label = r % 10;
    const band = 2 * label + 4;
    const values: string[] = [];
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const lit = Math.abs(y - band) <= 1 ? 0.6 : 0;
        values.push(Math.min(1, lit + 0.3 * rand()).toFixed(2));
      }
    }
    values.push(String(label));
    lines.push(values.join(","));
  }
  return lines.join("\n") + "\n";
}

/** A job config for the W1 model (784-256-128-10 MLP, batch 64) on a digitsCsv dataset. */
export function w1Config(datasetId: string, overrides: Record<string, unknown> = {}) {
  return {
    dataset_id: datasetId,
    validation: { split: 0.2 },
    model: {
      layers: [
        { type: "dense", units: 256, activation: "relu" },
        { type: "dense", units: 128, activation: "relu" },
        { type: "dense", units: 10 },
      ],
    },
    loss: "cross_entropy",
    optimizer: { type: "sgd", lr: 0.05, momentum: 0.9 },
    batch_size: 64,
    seed: 7,
    ...overrides,
  };
}
