// The helper threads of one training thread's kernels: N - 1 threads that each instantiate the SAME
// WebAssembly kernels module on the SAME shared arena memory, and compute ranges of the large products
// and convolution passes the training thread hands them (src/trainer/parallel.ts). Results are
// bit-identical to a single-thread run: every range runs the same code on the same memory, and each
// output value's operations do not depend on the split. A helper can also keep a replica of the model
// being trained and train a share of each batch on it (src/trainer/data-parallel.ts): the request
// comes by message, the replica's buffers from an arena region the training thread reserved, and each
// helper writes its result (a loss part, an address) to its float64 slot of the control block.
//
// Coordination is a small Int32Array control block in the arena, with Atomics: the training thread
// writes the work descriptor (task id, integer and float64 arguments, one range per helper), sets
// `pending` to the number of helpers and bumps the generation counter (Atomics.notify only when a
// helper sleeps); each helper, waiting on the generation (a spin of up to HELPER_SPIN_MS, then
// Atomics.wait), runs its range, decrements `pending` and, when it was the last and the training
// thread sleeps, notifies. The training thread computes its own range meanwhile, then waits (a spin
// of up to MAIN_SPIN_MS, then Atomics.wait) for `pending` to reach 0. Helpers never allocate: their GEMM work areas and scratch areas are
// allocated here, on the training thread, from the arena.
import { Worker } from "node:worker_threads";
import { MAX_ARGS, MAX_FARGS, parallelExecutor, rangeStart, setParallelExecutor, TASK_QUIT, type ParallelExecutor, type ReplicaRequest } from "../src/trainer/parallel.js";
import { allocFloat32, allocInt32, arenaAddress, arenaAddressInt32, arenaMemory } from "../src/trainer/wasm/arena.js";
import { kernelExports, kernelsModule } from "../src/trainer/wasm/instance.js";

// The control block's layout (int32 indices).
/** Generation counter: bumped for every task. */
export const CTRL_GEN = 0;
/** Helpers still working on the current task. */
export const CTRL_PENDING = 1;
/** The current task's id (parallel.ts's TASK_*). */
export const CTRL_TASK = 2;
/** Helper ranges that threw (reported to the training thread by finish()). */
export const CTRL_ERRORS = 3;
/** Helpers asleep in Atomics.wait (or about to be): start() only notifies when there are any. */
export const CTRL_SLEEPERS = 4;
/** 1 while the training thread sleeps in finish(): the last helper only notifies then. */
export const CTRL_MAIN_WAITING = 5;
/** The task's arguments: MAX_ARGS values. */
export const CTRL_ARGS = 8;
/** The task's float64 arguments: MAX_FARGS values (2 int32 slots each; 8-byte aligned, as the
 *  block is 64-byte aligned and CTRL_ARGS + MAX_ARGS is even). */
export const CTRL_FARGS = CTRL_ARGS + MAX_ARGS;
/** Then 4 values per helper: r0, r1, work area address, scratch area address. */
export const CTRL_SLOTS = CTRL_FARGS + 2 * MAX_FARGS;
/** Then one float64 result per helper (2 int32 slots each; 8-byte aligned, as CTRL_SLOTS is even). */
export const ctrlResults = (helpers: number): number => CTRL_SLOTS + 4 * helpers;
export const controlLength = (helpers: number): number => ctrlResults(helpers) + 2 * helpers;
/** Arena bytes reserved for each helper's own allocations for its life, besides its kernels' GEMM
 *  work area (which it allocates when it trains a replica): their staging buffers, if ever needed. A
 *  helper never allocates elsewhere, except inside a replica's region. */
const HELPER_HEAP_EXTRA_BYTES = 1 << 18;
/** How long a helper spins on the generation counter before it sleeps in Atomics.wait, in ms.
 *  During training, parallel calls follow each other within tens of microseconds, and a wake-up
 *  from wait costs tens of microseconds (hundreds on a busy machine), each time: a helper that
 *  kept falling asleep between the calls of a step would halve what a second thread gives. So it
 *  spins through a whole step's serial parts, and only sleeps when training pauses (between
 *  epochs, after a run). */
export const HELPER_SPIN_MS = 0.2;
/** How long the training thread spins in finish() before it sleeps, in ms. */
export const MAIN_SPIN_MS = 0.1;
/** Atomics.load rounds between two looks at the clock while spinning. */
export const SPIN_CHECK = 256;

/**
 * Spins until `control[index]` differs from `value` or `ms` have passed; returns the last value
 * read. (The clock is read once per SPIN_CHECK loads.)
 */
export function spinWhile(control: Int32Array, index: number, value: number, ms: number): number {
  let now = Atomics.load(control, index);
  if (now !== value) return now;
  const until = performance.now() + ms;
  for (;;) {
    for (let i = 0; i < SPIN_CHECK; i++) {
      now = Atomics.load(control, index);
      if (now !== value) return now;
    }
    if (performance.now() >= until) return now;
  }
}

/** The float64 arguments of a control block. */
export function fargsView(control: Int32Array): Float64Array {
  return new Float64Array(control.buffer, control.byteOffset + 4 * CTRL_FARGS, MAX_FARGS);
}

/** The helpers' float64 results of a control block. */
export function resultsView(control: Int32Array, helpers: number): Float64Array {
  return new Float64Array(control.buffer, control.byteOffset + 4 * ctrlResults(helpers), helpers);
}

export interface HelperData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  controlAt: number;
  helpers: number;
  index: number;
  /** The helper's own stretch of the arena (arena.ts: adoptArena). */
  heapAt: number;
  heapBytes: number;
}

// Node 20 does not carry tsx's module hooks into worker threads: register them first (as
// training-thread.ts does for the training thread), then load the helper.
const HELPER_BOOT = new URL(
  "data:text/javascript," +
    encodeURIComponent(
      `import { register } from ${JSON.stringify(import.meta.resolve("tsx/esm/api"))}; register();` +
        `await import(${JSON.stringify(new URL("./kernel-helper.ts", import.meta.url).href)});`,
    ),
);

/**
 * The pool; while open it is the trainer's parallel executor (setParallelExecutor), so every model
 * trained on this thread uses it. Open one per training thread, around a run.
 */
export class KernelPool implements ParallelExecutor {
  readonly threads: number;
  readonly args: Int32Array;
  readonly fargs: Float64Array;
  readonly results: Float64Array;
  /** Settles when every helper has instantiated the kernels. */
  readonly ready: Promise<void>;
  private readonly control: Int32Array;
  private readonly workers: Worker[] = [];
  /** Arena blocks the helpers use: held here so they are never recycled while the pool is open. */
  private readonly works: Float32Array[] = [];
  private readonly heaps: Float32Array[] = [];
  private areas: Float32Array[] = [];
  private areaFloats = 0;
  private closed = false;
  private helperError: string | null = null;

  /** Starts `threads - 1` helpers (none when the WebAssembly kernels are unavailable: then threads
   *  is 1 and nothing is installed). */
  constructor(threads: number) {
    const module = kernelsModule();
    const memory = arenaMemory();
    const exports = kernelExports();
    const helpers = module && memory && exports ? Math.max(0, Math.floor(threads) - 1) : 0;
    this.threads = helpers + 1;
    this.control = helpers > 0 ? allocInt32(controlLength(helpers)) : new Int32Array(controlLength(0));
    this.args = this.control.subarray(CTRL_ARGS, CTRL_ARGS + MAX_ARGS);
    this.fargs = fargsView(this.control);
    this.results = resultsView(this.control, helpers);
    const controlAt = helpers > 0 ? arenaAddressInt32(this.control) : -1;
    if (helpers === 0 || controlAt < 0) {
      this.threads = 1;
      this.ready = Promise.resolve();
      return;
    }
    const readies: Promise<void>[] = [];
    for (let i = 0; i < helpers; i++) {
      const work = allocFloat32(exports!.gemm_work_bytes() / 4);
      this.works.push(work);
      this.control[CTRL_SLOTS + 4 * i + 2] = arenaAddress(work);
      const heapBytes = exports!.gemm_work_bytes() + HELPER_HEAP_EXTRA_BYTES;
      const heap = allocFloat32(heapBytes / 4);
      this.heaps.push(heap);
      const heapAt = arenaAddress(heap);
      const data: HelperData = { module: module!, memory: memory!, controlAt, helpers, index: i, heapAt, heapBytes: heapAt < 0 ? 0 : heapBytes };
      const worker = new Worker(HELPER_BOOT, { workerData: data });
      readies.push(
        new Promise<void>((resolve, reject) => {
          worker.once("message", () => resolve());
          worker.once("error", reject);
          worker.once("exit", (code) => reject(new Error(`kernel helper exited (${code}) before it was ready`)));
        }),
      );
      worker.on("message", (m: unknown) => {
        if (m && typeof m === "object" && "error" in m) this.helperError = String((m as { error: unknown }).error);
      });
      this.workers.push(worker);
    }
    // Helpers never keep a process alive by themselves once running (they only wait on the control
    // block), but until they are ready they must: a caller awaiting `ready` may have nothing else
    // holding its event loop open.
    this.ready = Promise.all(readies).then(() => {
      for (const worker of this.workers) worker.unref();
    });
    // (A rejection is the caller's to handle through `ready`; never unhandled here.)
    this.ready.catch(() => undefined);
    setParallelExecutor(this);
  }

  start(task: number, total: number, align: number, areaFloats: number): number {
    const n = this.threads;
    if (areaFloats > this.areaFloats) this.growAreas(areaFloats);
    const c = this.control;
    for (let i = 1; i < n; i++) {
      const slot = CTRL_SLOTS + 4 * (i - 1);
      c[slot] = rangeStart(total, n, align, i);
      c[slot + 1] = rangeStart(total, n, align, i + 1);
    }
    c[CTRL_TASK] = task;
    Atomics.store(c, CTRL_PENDING, n - 1);
    Atomics.add(c, CTRL_GEN, 1);
    // A helper announces itself in CTRL_SLEEPERS before it looks at the generation one last time
    // and sleeps; this thread bumped the generation before looking at CTRL_SLEEPERS (both
    // sequentially consistent): so either the helper sees the new generation, or this sees it.
    if (Atomics.load(c, CTRL_SLEEPERS) !== 0) Atomics.notify(c, CTRL_GEN);
    return rangeStart(total, n, align, 1);
  }

  finish(): void {
    const c = this.control;
    let pending = Atomics.load(c, CTRL_PENDING);
    while (pending !== 0) {
      // (Pending only goes down: spinWhile returns when it changes, so look again until 0.)
      pending = spinWhile(c, CTRL_PENDING, pending, MAIN_SPIN_MS);
      if (pending === 0) break;
      // The same handshake as start()'s, the other way round.
      Atomics.store(c, CTRL_MAIN_WAITING, 1);
      pending = Atomics.load(c, CTRL_PENDING);
      if (pending !== 0) Atomics.wait(c, CTRL_PENDING, pending);
      Atomics.store(c, CTRL_MAIN_WAITING, 0);
      pending = Atomics.load(c, CTRL_PENDING);
    }
    if (Atomics.load(c, CTRL_ERRORS) !== 0) {
      Atomics.store(c, CTRL_ERRORS, 0);
      throw new Error(`a kernel helper thread failed${this.helperError ? `: ${this.helperError}` : ""}`);
    }
  }

  postReplica(helper: number, request: ReplicaRequest): void {
    const worker = this.workers[helper];
    if (!worker) throw new Error(`kernel pool: no helper ${helper}`);
    worker.postMessage({ replica: request });
  }

  /** Uninstalls the executor and ends the helpers. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.workers.length === 0) return;
    if (parallelExecutor() === this) setParallelExecutor(null);
    const c = this.control;
    c[CTRL_TASK] = TASK_QUIT;
    Atomics.add(c, CTRL_GEN, 1);
    Atomics.notify(c, CTRL_GEN);
    const exits = this.workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => void w.terminate().then(() => resolve()), 5_000);
          w.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    );
    await Promise.all(exits);
    this.areas = [];
  }

  private growAreas(floats: number): void {
    const n = this.threads - 1;
    this.areas = [];
    for (let i = 0; i < n; i++) {
      const area = allocFloat32(floats);
      const at = arenaAddress(area);
      if (at < 0) throw new Error("kernel pool: the arena is full");
      this.areas.push(area);
      this.control[CTRL_SLOTS + 4 * i + 3] = at;
    }
    this.areaFloats = floats;
  }
}

/** Starts a pool of `threads` (the calling thread included) and waits until its helpers are ready. */
export async function startKernelPool(threads: number): Promise<KernelPool> {
  const pool = new KernelPool(threads);
  try {
    await pool.ready;
  } catch (err) {
    await pool.close();
    throw err;
  }
  return pool;
}
