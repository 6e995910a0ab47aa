// Where a multi-threaded training step spends its time, second by second: for each parallel task of
// the step (in the order the step starts them), how long it took, how long the training thread
// spent on its own ranges, and how long each helper was busy on it, on average (workers/kernel-pool.ts:
// rangeTimes). What is left of the step is the training thread's serial work. A task whose total
// is well above both threads' times had a helper that started late; one whose training-thread time
// is well above the helper's had a slow training core, and the other way round.
//
//   npx tsx test/bench/thread-profile.ts [--workload W1] [--threads 2] [--seconds 20]
//
// At the end, for each task over the whole run: how long the training thread waited for the helpers
// once it had no range left to claim (median, 90th and 99th percentiles, mean), and how much of that mean
// came from waits over STALL_MS: a helper descheduled for a while shows there, not in the shares.
//
// Not part of `npm run bench`: a tool for finding what a second thread loses, on this machine, now,
// in a step whose products and optimizer are split over the threads (W1; not a data-parallel step).
import { parseArgs } from "node:util";
import * as parallel from "../../src/trainer/parallel.js";
import { parallelExecutor, setParallelExecutor, type ParallelExecutor } from "../../src/trainer/parallel.js";
import type { KernelPool } from "../../workers/kernel-pool.js";
import { createOursRunner } from "./peers/ours-runner.js";
import { WORKLOADS, type WorkloadId } from "./workloads.js";

const { values: args } = parseArgs({
  options: {
    workload: { type: "string", default: "W1" },
    threads: { type: "string", default: "2" },
    seconds: { type: "string", default: "20" },
  },
});
const workload = WORKLOADS[args.workload as WorkloadId];
const threads = Number(args.threads);
const seconds = Number(args.seconds);
if (!workload || workload.mode !== "train" || !(threads >= 2) || !(seconds > 0)) {
  console.error("usage: npx tsx test/bench/thread-profile.ts [--workload W1|W2|W3] [--threads N>=2] [--seconds S]");
  process.exit(2);
}

const runner = await createOursRunner(workload, { kernels: "default", threads, seed: 1 });
if (runner.info.batchThreads !== "1") {
  // A data-parallel pass runs only on the executor it was made with (data-parallel.ts), not on the
  // timed stand-in below: its chunks would fall back to split kernels, another step than the bench's.
  console.error(`${workload.id} trains data-parallel on ${runner.info.batchThreads} threads; this profile covers steps that split their kernels (W1)`);
  await runner.close();
  process.exit(2);
}
const pool = parallelExecutor() as (ParallelExecutor & Pick<KernelPool, "rangeTimes" | "shares">) | null;
if (!pool) {
  console.error("no parallel executor: the kernel pool did not start");
  process.exit(1);
}

/** TASK_GEMM_COLUMNS -> "gemm_columns", from parallel.ts's names. */
const TASK_NAMES = new Map<number, string>(
  Object.entries(parallel)
    .filter(([name, value]) => name.startsWith("TASK_") && typeof value === "number")
    .map(([name, value]) => [value as number, name.slice(5).toLowerCase()]),
);

/** Per task of the step (by its place in the step): summed ms over the current second, and every
 *  wait of the run after the training thread's own range. */
interface Site {
  label: string;
  total: number;
  own: number;
  helper: number;
  waits: number[];
}
const sites: Site[] = [];
let at = 0;
let began = 0;
let ownDone = false;
let ownEnd = 0;
/** A wait longer than this (ms) counts as a stall. */
const STALL_MS = 0.2;

// The executor the kernels see: the pool, with its calls timed.
const timed = new Proxy(pool, {
  get(target, key) {
    if (key === "start") {
      return (task: number, total: number, align: number, areaFloats: number, piece?: number) => {
        sites[at] ??= { label: `${TASK_NAMES.get(task) ?? task} over ${total}`, total: 0, own: 0, helper: 0, waits: [] };
        ownDone = false;
        target.rangeTimes.fill(0);
        began = performance.now();
        target.start(task, total, align, areaFloats, piece);
      };
    }
    if (key === "claim") {
      return () => {
        const more = target.claim();
        if (!more && !ownDone) {
          ownDone = true;
          ownEnd = performance.now();
          sites[at].own += ownEnd - began;
        }
        return more;
      };
    }
    if (key === "finish") {
      return () => {
        target.finish();
        const site = sites[at++];
        const now = performance.now();
        site.total += now - began;
        site.waits.push(ownDone ? now - ownEnd : 0);
        // rangeTimes holds the ranges the helpers ran (zeroed at start: the others stay 0, or -1
        // where the pool marks the ranges it times).
        let busy = 0;
        for (const ms of target.rangeTimes) if (ms > 0) busy += ms;
        site.helper += busy / (target.threads - 1);
      };
    }
    const value = Reflect.get(target, key, target) as unknown;
    return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
  },
});
setParallelExecutor(timed);

const step = (): void => {
  at = 0;
  runner.step();
};
for (const until = performance.now() + 1000; performance.now() < until; ) step(); // warm-up
for (const site of sites) {
  site.total = site.own = site.helper = 0;
  site.waits = [];
}

/** The threads' shares of the one-range-per-thread tasks now (kernel-pool.ts: shares), in %. */
const shareText = (): string =>
  Array.from({ length: pool.threads }, (_, i) => ((100 * (pool.shares[i + 1] - pool.shares[i])) / pool.shares[pool.threads]).toFixed(0)).join(":");
const us = (ms: number, steps: number): string => ((ms * 1000) / steps).toFixed(0).padStart(5);
console.log(`${workload.id} on ${threads} threads; per step, in µs: each task as total / training thread / the helpers' mean busy time`);
for (let s = 0; s < seconds; s++) {
  const start = performance.now();
  let steps = 0;
  while (performance.now() - start < 1000) {
    step();
    steps++;
  }
  const elapsed = performance.now() - start;
  const parallel = sites.reduce((sum, site) => sum + site.total, 0);
  const perSample = ((steps * runner.samplesPerStep) / elapsed) * 1000;
  const tasks = sites.map((site) => `${us(site.total, steps)}/${us(site.own, steps)}/${us(site.helper, steps)}`).join(" |");
  console.log(
    `${String(s).padStart(3)} ${perSample.toFixed(0).padStart(7)} samples/s  step ${us(elapsed, steps)}  serial ${us(elapsed - parallel, steps)}` +
      `  shares ${shareText()}  |${tasks}`,
  );
  for (const site of sites) site.total = site.own = site.helper = 0;
}
console.log(`tasks: ${sites.map((site, i) => `${i + 1}: ${site.label}`).join("; ")}`);
console.log(`the training thread's wait once it had no range left to claim, per task, in µs: median, 90th, 99th percentile, mean (of which from waits over ${STALL_MS * 1000} µs)`);
for (const [i, site] of sites.entries()) {
  const waits = site.waits.sort((a, b) => a - b);
  const at = (q: number): string => (1000 * waits[Math.floor(q * (waits.length - 1))]).toFixed(0);
  const mean = (list: number[]): string => ((1000 * list.reduce((sum, ms) => sum + ms, 0)) / waits.length).toFixed(0);
  console.log(`  ${i + 1}: ${at(0.5)}, ${at(0.9)}, ${at(0.99)}, ${mean(waits)} (${mean(waits.filter((ms) => ms > STALL_MS))})`);
}
setParallelExecutor(pool);
await runner.close();
