// The job config's `threads`, end to end through the real API and worker. The same seeded job on
// 1 and on 2 threads: a dense MLP at batch 256 (rows shared out over the threads) matches to
// float32 rounding but not bit for bit, which shows the second thread really trained rows; the same
// MLP at batch 64 (each weight used too few times a batch to share rows) and a model with dropout
// or batchnorm split their kernels instead and give bit-identical weights; a small CNN shares rows
// and matches too. Each job says in its `threads` event how many threads it trained on and how.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client } from "../helpers/client.js";
import { digitsCsv, w1Config } from "../helpers/data.js";
import { readSafetensors, type Tensor } from "../helpers/reference.js";
import { startStack, type Stack } from "../helpers/stack.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let digits: string;

// Two cores and one job at a time, so a job's share is 2 threads and `threads: 2` is not clamped
// (set here rather than taken from the machine, so the test means the same everywhere).
const WORKER_ENV = { WORKER_CORES: "2", WORKER_CONCURRENCY: "1", THREADS_PER_JOB: "1" };

beforeAll(async () => {
  stack = await startStack("threads", { env: WORKER_ENV });
  c = client(stack);
  digits = (await c.uploadCsv(digitsCsv(1000, 5), "name=digits&target=digit&task=classification")).id;
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

async function finalWeights(jobId: string): Promise<Record<string, Tensor>> {
  const res = await fetch(`${stack.baseUrl}/v1/jobs/${jobId}/weights?checkpoint=last`, { headers: stack.auth });
  expect(res.status).toBe(200);
  return readSafetensors(Buffer.from(await res.arrayBuffer())).tensors;
}

interface Run {
  metrics: any[];
  weights: Record<string, Tensor>;
  /** The job's `threads` events (one, with its first epoch). */
  threads: any[];
}

async function threadsEvents(jobId: string): Promise<any[]> {
  const res = await fetch(`${stack.baseUrl}/v1/jobs/${jobId}/events?limit=1000`, { headers: stack.auth });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: any[] };
  return body.data.filter((e) => e.type === "threads");
}

/** Each run reported the threads it trained on, with its first epoch: 1, then 2 shared by `how`. */
function expectThreadsEvents(one: Run, two: Run, how: "rows" | "kernels") {
  expect(one.threads).toMatchObject([{ level: "info", epoch: 1, message: "Training on 1 thread.", data: { threads: 1, shared_by: "none" } }]);
  expect(two.threads).toMatchObject([{ level: "info", epoch: 1, data: { threads: 2, shared_by: how } }]);
  expect(two.threads[0].message).toMatch(how === "rows" ? /^Training on 2 threads: each batch's rows/ : /^Training on 2 threads: its large matrix products/);
}

/** Submits `config` with threads 1 and with threads 2, waits for both, and returns what each stored. */
async function runBoth(config: Record<string, unknown>, epochs: number): Promise<[Run, Run]> {
  const jobs = [await c.submit({ ...config, threads: 1 }), await c.submit({ ...config, threads: 2 })];
  const runs: Run[] = [];
  for (const [i, submitted] of jobs.entries()) {
    const job = await c.waitForJob(submitted.id, 60_000);
    expect(job.status, JSON.stringify(job)).toBe("succeeded");
    expect(job.epoch).toBe(epochs);
    expect(job.config.threads).toBe(i + 1);
    const metrics = await c.metrics(job.id);
    expect(metrics.map((m: any) => m.epoch)).toEqual(Array.from({ length: epochs }, (_, e) => e + 1));
    runs.push({ metrics, weights: await finalWeights(job.id), threads: await threadsEvents(job.id) });
  }
  return [runs[0], runs[1]];
}

/** The worker ran threads 2 as asked: no clamping, and its helper threads started (its log says
 *  when either happens; checked after the weights, so a silently dropped second thread fails on
 *  them first). */
function expectTwoThreadsUsed() {
  const out = stack.worker.output();
  expect(out, out).not.toMatch(/job threads clamped/);
  expect(out, out).not.toMatch(/kernel helper threads failed to start/);
}

/** Split kernels, not rows: the same losses and weights as one thread, bit for bit. */
function expectKernelsSplitBitIdentical(one: Run, two: Run) {
  expect(two.metrics.map((m: any) => [m.train_loss, m.val_loss])).toEqual(one.metrics.map((m: any) => [m.train_loss, m.val_loss]));
  const cmp = compareWeights(one.weights, two.weights);
  expect(cmp.differing, `max |diff| ${cmp.maxDiff}`).toBe(0);
  expectTwoThreadsUsed();
  expectThreadsEvents(one, two, "kernels");
}

function expectLossesClose(one: any[], two: any[]) {
  for (const [i, a] of one.entries()) {
    const b = two[i];
    for (const key of ["train_loss", "val_loss"] as const) {
      if (a[key] === null || a[key] === undefined) {
        expect(b[key] ?? null).toBeNull();
        continue;
      }
      expect(Number.isFinite(a[key])).toBe(true);
      const rel = Math.abs(a[key] - b[key]) / Math.max(Math.abs(a[key]), 1e-12);
      expect(rel, `epoch ${a.epoch} ${key}: ${a[key]} on 1 thread, ${b[key]} on 2`).toBeLessThanOrEqual(1e-4);
    }
  }
}

/** Largest |a - b| over every tensor, the largest |a|, and how many values differ at all. */
function compareWeights(a: Record<string, Tensor>, b: Record<string, Tensor>) {
  expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
  let maxDiff = 0;
  let maxAbs = 0;
  let differing = 0;
  let total = 0;
  for (const [name, ta] of Object.entries(a)) {
    const tb = b[name];
    expect(tb.shape, name).toEqual(ta.shape);
    for (let i = 0; i < ta.data.length; i++) {
      const d = Math.abs(ta.data[i] - tb.data[i]);
      if (!Object.is(ta.data[i], tb.data[i])) differing++;
      maxDiff = Math.max(maxDiff, d);
      maxAbs = Math.max(maxAbs, Math.abs(ta.data[i]));
      total++;
    }
  }
  return { maxDiff, maxAbs, differing, total };
}

describe("threads: 2 against threads: 1", () => {
  it("a dense MLP at batch 256: rows shared out over the threads, same losses and weights to float32 rounding, not bit for bit", async () => {
    const epochs = 4;
    const [one, two] = await runBoth(w1Config(digits, { epochs, seed: 13, batch_size: 256 }), epochs);
    expectLossesClose(one.metrics, two.metrics);
    const cmp = compareWeights(one.weights, two.weights);
    console.log(`dense MLP, 1 vs 2 threads: ${cmp.differing} of ${cmp.total} weights differ, max |diff| ${cmp.maxDiff.toExponential(2)} (max |w| ${cmp.maxAbs.toFixed(3)})`);
    expect(cmp.maxDiff).toBeLessThanOrEqual(1e-3 * cmp.maxAbs);
    // Bit-identical weights would mean the batch rows were never shared out (the data-parallel
    // path did not run, or the second thread was dropped).
    expect(cmp.differing, "weights that differ between 1 and 2 threads").toBeGreaterThan(0);
    expectTwoThreadsUsed();
    expectThreadsEvents(one, two, "rows");
  });

  it("the same MLP at batch 64: the kernels are split instead, and the weights are bit-identical", async () => {
    const epochs = 3;
    const [one, two] = await runBoth(w1Config(digits, { epochs, seed: 13 }), epochs);
    expectKernelsSplitBitIdentical(one, two);
  });

  it("dropout and batchnorm: the kernels are split instead, and the weights are bit-identical", async () => {
    const epochs = 3;
    const config = w1Config(digits, {
      epochs,
      seed: 17,
      model: {
        layers: [
          { type: "dense", units: 256 },
          { type: "batchnorm" },
          { type: "activation", activation: "relu" },
          { type: "dropout", rate: 0.2 },
          { type: "dense", units: 128, activation: "relu" },
          { type: "dropout", rate: 0.1 },
          { type: "dense", units: 10 },
        ],
      },
    });
    const [one, two] = await runBoth(config, epochs);
    expectKernelsSplitBitIdentical(one, two);
  });

  it("a small CNN (conv2d, maxpool2d, flatten, dense) matches to float32 rounding", async () => {
    const epochs = 3;
    const config = w1Config(digits, {
      epochs,
      seed: 19,
      model: {
        input_shape: [1, 28, 28],
        layers: [
          { type: "conv2d", filters: 8, kernel_size: 3, activation: "relu" },
          { type: "maxpool2d", pool_size: 2 },
          { type: "flatten" },
          { type: "dense", units: 10 },
        ],
      },
    });
    const [one, two] = await runBoth(config, epochs);
    expectLossesClose(one.metrics, two.metrics);
    const cmp = compareWeights(one.weights, two.weights);
    console.log(`CNN, 1 vs 2 threads: ${cmp.differing} of ${cmp.total} weights differ, max |diff| ${cmp.maxDiff.toExponential(2)} (max |w| ${cmp.maxAbs.toFixed(3)})`);
    expect(cmp.maxDiff).toBeLessThanOrEqual(1e-3 * cmp.maxAbs);
    expect(cmp.differing, "weights that differ between 1 and 2 threads").toBeGreaterThan(0);
    expectTwoThreadsUsed();
    expectThreadsEvents(one, two, "rows");
  });
});
