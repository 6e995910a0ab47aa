// What the bench's parent process and its peer children say to each other, and the timing
// protocol every peer follows (peers/torch_bench.py implements the same protocol in Python).
//
// A child gets one ChildRequest as its single command-line argument (JSON), measures, and prints
// one line `@@BENCH_RESULT <json>` (a ChildResult) on stdout; anything else it prints is only shown
// when it fails. With `barrier`, every timed run waits for the parent: the child prints
// `@@BENCH_READY`, waits for a line on stdin, times the run and prints `@@BENCH_RUN <samples/s>`.
// The parent so decides when each run happens: concurrent children time the same intervals, and
// the 2-core ceiling check alternates two groups of children run by run (run.ts). A barrier run
// lasts `runSeconds` of wall time, not a fixed count of steps: concurrent children then stay busy
// over the same interval, and none runs alone (faster) at the end while a slower sibling finishes
// the same work.
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { createInterface } from "node:readline";
import type { Workload } from "./workloads.js";

export const RESULT_MARKER = "@@BENCH_RESULT ";
export const READY_MARKER = "@@BENCH_READY";
export const RUN_MARKER = "@@BENCH_RUN ";

export type PeerId = "ours" | "tfjs-cpu" | "tfjs-wasm" | "torch";
export const PEER_IDS: PeerId[] = ["ours", "tfjs-cpu", "tfjs-wasm", "torch"];

/** How long to warm up and how much to time. */
export interface TimingPlan {
  /** Untimed steps first (JIT, caches, allocator). */
  warmupSteps: number;
  /** And for at least this long. */
  warmupMinSeconds: number;
  /** A slow peer stops warming up after this long (but does at least 2 steps). */
  warmupMaxSeconds: number;
  /** Timed runs; the reported figure is their median. */
  runs: number;
  /** Steps per run are chosen from the warm-up's pace so that one run takes about this long (a
   *  barrier run: steps until this long has passed). */
  runSeconds: number;
  minSteps: number;
  maxSteps: number;
}

export const FULL_PLAN: TimingPlan = {
  warmupSteps: 20,
  warmupMinSeconds: 1,
  warmupMaxSeconds: 10,
  runs: 5,
  runSeconds: 1.5,
  minSteps: 1,
  maxSteps: 1_000_000,
};
export const QUICK_PLAN: TimingPlan = {
  warmupSteps: 5,
  warmupMinSeconds: 0.2,
  warmupMaxSeconds: 2,
  runs: 3,
  runSeconds: 0.2,
  minSteps: 1,
  maxSteps: 1_000_000,
};

export interface ChildRequest {
  peer: PeerId;
  /** ours: "default" kernels or the plain "js" reference kernels. */
  kernels?: "default" | "js";
  workload: Workload;
  threads: number;
  plan: TimingPlan;
  /** throughput: the timed runs. heap: heap growth over `heapSteps` warm steps (ours only). */
  mode: "throughput" | "heap";
  heapSteps?: number;
  /** Each timed run waits for the parent's go (see the top of this file). ours and TF.js only. */
  barrier?: boolean;
  seed: number;
}

export interface Measurement {
  warmupSteps: number;
  stepsPerRun: number;
  /** Samples per second of each timed run, in order. */
  runs: number[];
  median: number;
  min: number;
  max: number;
  /**
   * Cores kept busy by everything else on the machine during the timed runs: the machine's busy
   * time (/proc/stat) minus this process's own CPU time, per second. About 0 on a quiet machine
   * (about 1 for each concurrent sibling); more means the figure was disturbed. null if unknown.
   */
  otherCores: number | null;
  /** This process's own CPU time per second during the timed runs (about its thread count). */
  ownCores: number;
}

export interface HeapMeasurement {
  steps: number;
  /** process.memoryUsage().heapUsed after full collections, before and after the steps. */
  beforeBytes: number;
  afterBytes: number;
  growthBytes: number;
  /** The same for memoryUsage().arrayBuffers (typed-array and WebAssembly memory outside the heap). */
  arrayBuffersGrowthBytes: number;
}

export type ChildResult =
  | { ok: true; measurement?: Measurement; heap?: HeapMeasurement; info: Record<string, string> }
  | { ok: false; status: "cannot" | "skipped" | "n/a" | "error"; error: string; info: Record<string, string> };

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Runs the timing protocol on `step` (one batch; may return a promise, which is awaited): warm-up,
 * pick the steps per run from the warm-up's pace, optionally wait at the barrier, then `plan.runs`
 * timed runs. `samplesPerStep` is the batch size.
 */
export async function measure(step: () => unknown, samplesPerStep: number, plan: TimingPlan, barrier = false): Promise<Measurement> {
  const runSteps = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const r = step();
      if (r instanceof Promise) await r;
    }
  };
  // Warm-up, one step at a time: at least warmupSteps steps and warmupMinSeconds (tiny steps need
  // time, not a step count, for the JIT to settle), at most warmupMaxSeconds (but 2 steps) for a
  // slow peer. The second half of the warm-up gives the pace.
  const warmStart = performance.now();
  const elapsed = () => (performance.now() - warmStart) / 1000;
  const times: number[] = [];
  while (true) {
    const done = times.length;
    if (done >= 2 && elapsed() > plan.warmupMaxSeconds) break;
    if (done >= plan.warmupSteps && elapsed() >= plan.warmupMinSeconds) break;
    await runSteps(1);
    times.push(performance.now());
  }
  const warmed = times.length;
  const half = warmed >> 1;
  const paceFrom = half === 0 ? warmStart : times[half - 1];
  const secondsPerStep = (times[warmed - 1] - paceFrom) / 1000 / Math.max(1, warmed - half);
  const steps = Math.min(plan.maxSteps, Math.max(plan.minSteps, Math.ceil(plan.runSeconds / secondsPerStep)));
  const runs: number[] = [];
  const stepsDone: number[] = [];
  const ownFrom = process.cpuUsage();
  // Machine CPU time over the timed runs only: with a barrier the child idles between runs while
  // others run, and those gaps are not its measurement.
  let machineBusy = 0;
  let machineTotal = 0;
  let timedSeconds = 0;
  for (let r = 0; r < plan.runs; r++) {
    if (barrier) await waitAtBarrier();
    const machineFrom = machineCpu();
    const t0 = performance.now();
    let done = steps;
    if (barrier) {
      // Until runSeconds have passed (see the top of this file).
      done = 0;
      do {
        await runSteps(1);
        done++;
      } while (performance.now() - t0 < 1000 * plan.runSeconds);
    } else {
      await runSteps(steps);
    }
    const seconds = (performance.now() - t0) / 1000;
    const machineTo = machineCpu();
    if (machineFrom && machineTo) {
      machineBusy += machineTo.busy - machineFrom.busy;
      machineTotal += machineTo.total - machineFrom.total;
    }
    timedSeconds += seconds;
    runs.push((done * samplesPerStep) / seconds);
    stepsDone.push(done);
    if (barrier) process.stdout.write(`${RUN_MARKER}${runs[r]}\n`);
  }
  // Own CPU time includes the idle waits at the barrier (a blocked read costs next to nothing).
  const own = process.cpuUsage(ownFrom);
  const ownCores = (own.user + own.system) / 1e6 / timedSeconds;
  const otherCores = machineTotal > 0 ? (machineBusy / machineTotal) * cpus().length - ownCores : null;
  return { warmupSteps: warmed, stepsPerRun: median(stepsDone), runs, median: median(runs), min: Math.min(...runs), max: Math.max(...runs), otherCores, ownCores };
}

/** Busy and total CPU time of the whole machine (/proc/stat, in ticks), or null where there is none. */
export function machineCpu(): { busy: number; total: number } | null {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, total: busy + idle + iowait };
  } catch {
    return null;
  }
}

let stdinLines: AsyncIterator<string> | null = null;

/** Tells the parent we are ready for a timed run and waits for its go (one line on stdin). */
async function waitAtBarrier(): Promise<void> {
  process.stdout.write(`${READY_MARKER}\n`);
  // One reader for the whole process: a line that arrives while nobody waits stays buffered.
  stdinLines ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const next = await stdinLines.next();
  if (next.done) throw new Error("the parent closed stdin before the run's go");
}

/** The request a child was started with. */
export function readRequest(): ChildRequest {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: <peer entry> '<ChildRequest as JSON>'");
  return JSON.parse(arg) as ChildRequest;
}

/** Prints the result line; resolves once it is flushed (the child exits right after). */
export function emitResult(result: ChildResult): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${RESULT_MARKER}${JSON.stringify(result)}\n`, () => resolve()));
}

/** Runs a child's main function, turning an exception into an error result (never a crash). */
export async function runChild(main: (request: ChildRequest) => Promise<ChildResult>): Promise<void> {
  let result: ChildResult;
  // Keeps the event loop alive while main awaits things that do not (the trainer's kernel helper
  // threads are unref'd: waiting for them to start would otherwise end the process with code 13).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    result = await main(readRequest());
  } catch (error) {
    result = { ok: false, status: "error", error: errorText(error), info: {} };
  } finally {
    clearInterval(keepAlive);
  }
  await emitResult(result);
  // TF.js and friends may leave handles open; the result is out, so leave now.
  process.exit(0);
}

export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message.split("\n")[0];
  if (typeof error === "object" && error !== null && "message" in error) return String((error as { message: unknown }).message);
  return String(error);
}
