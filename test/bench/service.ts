// The service's overhead on training speed: `tsx test/bench/service.ts [--rows N] [--epochs N] [--quick]`.
//
// A: measures W1 in this process with the bench's own runner (peers/ours-runner.ts, the same step
// as the trainer's). B: runs the trainer's train() in this process on the job's own rows and config
// (to tell the loop's cost from the service's). C: starts a throwaway stack (a fresh migrated
// database, a fresh queue, the real API and worker processes; test/helpers/stack.ts), streams a
// W1-shaped synthetic classification dataset to it as CSV (default 20,000 rows x 784 features, 10
// classes), submits a job with W1's network and optimizer (8 epochs, 2% validation split), waits
// for it and takes the median samples_per_sec of its epochs. The target: C >= 0.9x A.
// An epoch of 20,000 rows takes under a second, and the first one or two carry the start-up (JIT,
// first touches of the buffers): with 3 epochs the median was the second, and the figure moved with
// the start-up rather than the service; 8 epochs give the job's steady pace.
//
// A and B run before the stack starts, so nothing else of ours competes for the CPU, and before the
// stack's client libraries are even loaded (see main). The stack is closed (processes stopped,
// queue obliterated, database dropped) whatever happens.
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { jobConfigSchema, splitValidation, train, type TrainSet } from "../../src/trainer/index.js";
import { FULL_PLAN, machineCpu, measure, median, QUICK_PLAN } from "./protocol.js";
import { createOursRunner } from "./peers/ours-runner.js";
import { seededRandom } from "../helpers/random.js";
import type { Stack } from "../helpers/stack.js";
import { runOne, waitForQuiet } from "./children.js";
import { WORKLOADS } from "./workloads.js";

const TARGET = 0.9;
const FEATURES = 784;
const CLASSES = 10;

const { values: args } = parseArgs({
  options: {
    rows: { type: "string" },
    epochs: { type: "string" },
    quick: { type: "boolean", default: false },
  },
});
const rows = Number(args.rows ?? (args.quick ? 4000 : 20000));
const epochs = Number(args.epochs ?? (args.quick ? 2 : 8));
if (!Number.isInteger(rows) || rows < 1000 || !Number.isInteger(epochs) || epochs < 1) {
  throw new Error("--rows must be an integer >= 1000 and --epochs a positive integer");
}

const log = (text: string) => process.stderr.write(`${text}\n`);

/**
 * The dataset, kept as two-decimal values (the digits 0..99 of each feature) so that the CSV sent
 * and the arrays trained on in-process hold exactly the same numbers: each row is a class template
 * (30%, fixed per class) plus noise (70%) in [0, 1), so the job has something to learn, and a CSV
 * row is about 3 KB (".37,").
 */
interface Dataset {
  rows: number;
  digits: Uint8Array;
  labels: Uint8Array;
}

function makeDataset(totalRows: number, seed: number): Dataset {
  const rand = seededRandom(seed);
  const templates = Array.from({ length: CLASSES }, () => Float64Array.from({ length: FEATURES }, () => rand()));
  const digits = new Uint8Array(totalRows * FEATURES);
  const labels = new Uint8Array(totalRows);
  for (let r = 0; r < totalRows; r++) {
    const label = Math.floor(rand() * CLASSES);
    labels[r] = label;
    const t = templates[label];
    for (let i = 0; i < FEATURES; i++) digits[r * FEATURES + i] = Math.min(99, Math.floor((0.3 * t[i] + 0.7 * rand()) * 100));
  }
  return { rows: totalRows, digits, labels };
}

/** The dataset as the trainer sees it after upload: values d/100 in float32, labels as class indices. */
function toTrainSet(d: Dataset): TrainSet {
  const x = new Float32Array(d.digits.length);
  for (let i = 0; i < x.length; i++) x[i] = d.digits[i] / 100;
  return { x, y: Float32Array.from(d.labels), rows: d.rows, inputWidth: FEATURES, targetWidth: 1 };
}

/** The CSV (`label,f0..f783`, values like ".37"), generated 500 rows at a time as it is sent. */
function csvStream(d: Dataset): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const cells = Array.from({ length: 100 }, (_, v) => (v < 10 ? `.0${v}` : `.${v}`));
  let sent = 0;
  let headerSent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const lines: string[] = [];
      if (!headerSent) {
        lines.push(["label", ...Array.from({ length: FEATURES }, (_, i) => `f${i}`)].join(","));
        headerSent = true;
      }
      for (let n = 0; n < 500 && sent < d.rows; n++, sent++) {
        const row = new Array<string>(FEATURES + 1);
        row[0] = String(d.labels[sent]);
        for (let i = 0; i < FEATURES; i++) row[i + 1] = cells[d.digits[sent * FEATURES + i]];
        lines.push(row.join(","));
      }
      controller.enqueue(encoder.encode(lines.join("\n") + "\n"));
      if (sent >= d.rows) controller.close();
    },
  });
}

async function api(stack: Stack, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method,
    headers: body === undefined ? stack.auth : { ...stack.auth, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return parsed;
}

async function upload(stack: Stack, d: Dataset): Promise<any> {
  const query = new URLSearchParams({ name: "bench-w1", format: "csv", target: "label", task: "classification" });
  const init: RequestInit & { duplex: "half" } = {
    method: "POST",
    headers: { ...stack.auth, "content-type": "text/csv" },
    body: csvStream(d),
    duplex: "half", // a streamed request body
  };
  const res = await fetch(`${stack.baseUrl}/v1/datasets?${query}`, init);
  const body = await res.json();
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Cores the whole machine keeps busy between two readings of /proc/stat. */
function machineBusy(): () => number | null {
  const from = machineCpu();
  return () => {
    const to = machineCpu();
    return from && to && to.total > from.total ? ((to.busy - from.busy) / (to.total - from.total)) * cpus().length : null;
  };
}

const fmt = (v: number) => Math.round(v).toLocaleString("en-US");

async function main(): Promise<void> {
  const w1 = WORKLOADS.W1;
  const jobConfig = {
    validation: { split: 0.02 },
    model: { layers: w1.layers },
    loss: w1.loss,
    optimizer: { type: "sgd" as const, lr: w1.optimizer.lr, momentum: w1.optimizer.momentum },
    epochs,
    batch_size: w1.batch,
    seed: 42,
  };
  const dataset = makeDataset(rows, 99);

  // A: the bench's W1 figure, in this process (before the stack exists: nothing else of ours runs).
  // Other people's work on the machine disturbs every figure: start each part in a quiet moment.
  const quiet = async () => {
    const waited = await waitForQuiet(args.quick ? 0 : 120, 0.25);
    if (waited > 2) log(`   (waited ${waited.toFixed(0)} s for the machine to be quiet)`);
  };
  await quiet();
  log(`A. In-process W1 step, the bench's runner (${w1.title}) ...`);
  const runner = await createOursRunner(w1, { kernels: "default", threads: 1, seed: 1234 });
  const a = await measure(() => runner.step(), runner.samplesPerStep, args.quick ? QUICK_PLAN : FULL_PLAN);
  await runner.close();
  log(`   ${fmt(a.median)} samples/s (runs ${a.runs.map(fmt).join(", ")}; other load ${a.otherCores?.toFixed(2)} cores)`);

  // B: the trainer's own loop on the same rows and config, in this process: what the job would do
  // without the service (the difference from A is the loop itself: shuffled gathers from the whole
  // set, validation excluded by its timer).
  log("B. In-process train() on the same dataset and config ...");
  const parsed = jobConfigSchema.parse({ ...jobConfig, dataset_id: "00000000-0000-4000-8000-000000000000" });
  const split = splitValidation(toTrainSet(dataset), 0.02, parsed.seed ?? 0);
  const b: number[] = [];
  train(parsed, { train: split.train, val: split.val, task: "classification" }, { onEpoch: (r) => void b.push(r.samplesPerSec) });
  log(`   epochs ${b.map(fmt).join(", ")} samples/s`);

  // Only now load the stack helpers: they bring BullMQ, ioredis and Prisma into this process, and
  // merely loading some of those libraries (e.g. semver, ioredis, tslib) makes the trainer's W1 step
  // about 15% slower in the same process, which would flatter the ratio below.
  const { startStack, waitFor, adminQuery } = await import("../helpers/stack.js");
  log("C. Starting a throwaway stack (database, API, worker) ...");
  const stack = await startStack("bench");
  try {
    const t0 = performance.now();
    const uploaded = await upload(stack, dataset);
    log(`   uploaded ${uploaded.rows} rows (${(Number(uploaded.bytes) / 2 ** 20).toFixed(1)} MiB of CSV) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // The upload left tens of MB of dirty pages and WAL: flush them now, not during the job.
    await adminQuery(stack.db.url, "CHECKPOINT");
    await quiet();
    const busy = machineBusy();
    const job = await api(stack, "POST", "/v1/jobs", { ...jobConfig, dataset_id: uploaded.id });
    log(`   job ${job.id}: ${epochs} epochs ...`);
    let final: any = job;
    await waitFor(
      async () => {
        final = await api(stack, "GET", `/v1/jobs/${job.id}`);
        return ["succeeded", "failed", "cancelled"].includes(final.status);
      },
      30 * 60_000,
      () => `job ${JSON.stringify(final)}\nworker:\n${stack.worker.output()}`,
      // A client checking once a second, as a person or a script would (the stream would not poll
      // at all); ten requests a second would be work of the bench's own on a 2-core machine.
      1000,
    );
    const busyCores = busy();
    if (final.status !== "succeeded") throw new Error(`the job ended ${final.status}: ${JSON.stringify(final.error)}`);
    const metrics: any[] = (await api(stack, "GET", `/v1/jobs/${job.id}/metrics`)).data;
    const c = metrics.map((m) => m.samples_per_sec as number);
    const last = metrics[metrics.length - 1];

    // A again, right after the job, in a fresh child process (as `npm run bench` measures it): on a
    // shared machine, the moment matters as much as the code, and this one is C's.
    log("A'. The bench's W1 child process, right after the job ...");
    const again = await runOne(
      { peer: "ours", workload: w1, threads: 1, plan: args.quick ? QUICK_PLAN : FULL_PLAN, mode: "throughput", seed: 1234 },
      600_000,
    );
    const a2 = again.ok ? again.measurement! : null;
    if (a2) log(`   ${fmt(a2.median)} samples/s (other load ${a2.otherCores?.toFixed(2)} cores)`);
    else log(`   failed: ${again.ok ? "" : again.error}`);

    const ratio = median(c) / a.median;
    console.log(`Service overhead check, W1 (${w1.title}); ${uploaded.rows} rows, ${epochs} epochs, 2% validation`);
    console.log(`  A in-process bench step:        ${fmt(a.median)} samples/s (median of ${a.runs.length} runs)`);
    console.log(`  B in-process train(), same data: ${fmt(median(b))} samples/s (epochs ${b.map(fmt).join(", ")})`);
    console.log(`  C API + worker job:              ${fmt(median(c))} samples/s (epochs ${c.map(fmt).join(", ")}; reported samples_per_sec)`);
    if (a2) console.log(`  A' bench child right after C:    ${fmt(a2.median)} samples/s (other load ${a2.otherCores?.toFixed(2)} cores); C/A' ${(median(c) / a2.median).toFixed(3)}x`);
    console.log(`  job: train_loss ${last.train_loss.toFixed(4)}, val_loss ${last.val_loss?.toFixed(4)}, ${JSON.stringify(last.metrics)}`);
    console.log(
      `  machine busy while the job ran: ${busyCores?.toFixed(2)} of ${cpus().length} cores ` +
        `(the training thread is 1; the rest is the worker, API, Postgres, Redis and anything else running)`,
    );
    console.log(`  C/B (service vs the same loop in-process): ${(median(c) / median(b)).toFixed(3)}x; B/A (loop vs bench step): ${(median(b) / a.median).toFixed(3)}x`);
    console.log(`  C/A service / in-process bench: ${ratio.toFixed(3)}x (target >= ${TARGET}x: ${ratio >= TARGET ? "pass" : "FAIL"})`);
    console.log(`  (A: other load ${a.otherCores?.toFixed(2)} cores; past 0.25 the figures were disturbed by other work on the machine)`);
  } finally {
    log("Closing the stack ...");
    await stack.close();
  }
}

await main();
