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
