// The helper threads of one training thread's kernels: N - 1 threads that each instantiate the SAME
// WebAssembly kernels module on the SAME shared arena memory, and compute ranges of the large products
// and convolution passes the training thread hands them (src/trainer/parallel.ts). Results are
// bit-identical to a single-thread run: every range runs the same code on the same memory, and each
// output value's operations do not depend on the split. A helper can also keep a replica of the model
// being trained and train chunks of each batch on it (src/trainer/data-parallel.ts): the request
// comes by message, the replica's buffers from an arena region the training thread reserved, and the
// thread that trains a chunk writes its loss part to that range's float64 result in the control block.
//
// Coordination is a small Int32Array control block in the arena, with Atomics. The training thread
// writes the work descriptor (task id, integer and float64 arguments, the ranges' bounds), resets
// the count of ranges done, stores the task's ticket (its generation and the next range to claim)
// and bumps the generation counter (Atomics.notify only when a helper sleeps). Each helper waits on
// the generation (a spin of up to HELPER_SPIN_MS, then Atomics.wait), then claims ranges by
// compare-and-swap on the ticket until none is left, counting each one done; the training thread
// claims and computes ranges the same way, then waits (a spin of up to MAIN_SPIN_MS, then
// Atomics.wait) until all are done. A helper that wakes late finds nothing left and goes back to
// waiting: the training thread never waits for a helper that has claimed nothing. The ticket
// carries the generation so that a helper waking very late cannot claim a range of a later task
// with the earlier task in mind. Helpers never allocate: their GEMM work areas and scratch areas are
// allocated here, on the training thread, from the arena.
//
// A task of one range per thread (parallel.ts: ownedPieces) is claimed otherwise: each thread has a
// word of its own in the control block (generation, first and end of its pieces not yet claimed),
// takes its pieces from the first, and then the others' from the last (claimOwned). A product's
// range ends in small pieces, so a thread the host holds up for a while gives the end of its range
// to the other, which would otherwise wait for it; its first, large piece stays its own, with the
// data its core holds. What each thread did and how long it was busy move the threads' shares.
import { Worker } from "node:worker_threads";
import {
  chunkBounds,
  evenShares,
  rebalanceShares,
  sharesAsRanges,
  ownedPieces,
  takesTails,
  TAIL_PIECES,
  chunkedRanges,
  maxRanges,
  fixedRanges,
  MAX_ARGS,
  MAX_FARGS,
  parallelExecutor,
  rangeStart,
  setParallelExecutor,
  TASK_QUIT,
  type ParallelExecutor,
  type ReplicaRequest,
} from "../src/trainer/parallel.js";
import { allocFloat32, allocInt32, arenaAddress, arenaAddressInt32, arenaMemory } from "../src/trainer/wasm/arena.js";
import { kernelExports, kernelsModule } from "../src/trainer/wasm/instance.js";

// The control block's layout (int32 indices).
/** Generation counter: bumped for every task. */
export const CTRL_GEN = 0;
/** Ranges of the current task done (by any thread). */
export const CTRL_DONE = 1;
/** The current task's id (parallel.ts's TASK_*). */
export const CTRL_TASK = 2;
/** Helper ranges that threw (reported to the training thread by finish()). */
export const CTRL_ERRORS = 3;
/** Helpers asleep in Atomics.wait (or about to be): start() only notifies when there are any. */
export const CTRL_SLEEPERS = 4;
/** 1 while the training thread sleeps in finish(): the thread that completes the last range only
 *  notifies then. */
export const CTRL_MAIN_WAITING = 5;
/** The ticket: the task's generation (low 24 bits) times 256, plus the next range to claim. */
export const CTRL_TICKET = 6;
/** How many ranges the current task has. */
export const CTRL_CHUNKS = 7;
/** The task's arguments: MAX_ARGS values. */
export const CTRL_ARGS = 8;
/** The task's float64 arguments: MAX_FARGS values (2 int32 slots each; 8-byte aligned, as the
 *  block is 64-byte aligned and CTRL_ARGS + MAX_ARGS is even). */
export const CTRL_FARGS = CTRL_ARGS + MAX_ARGS;
/** Then the ranges' bounds: up to maxRanges(threads) + 1 values (an even count of slots). */
export const CTRL_BOUNDS = CTRL_FARGS + 2 * MAX_FARGS;
const boundsLength = (helpers: number): number => 2 * Math.ceil((maxRanges(helpers + 1) + 1) / 2);
/** Then 2 values per helper: its work area's address, its scratch area's address. */
export const ctrlSlots = (helpers: number): number => CTRL_BOUNDS + boundsLength(helpers);
/** Then one float64 result per range (2 int32 slots each; 8-byte aligned, as every part before is even). */
export const ctrlResults = (helpers: number): number => ctrlSlots(helpers) + 2 * helpers;
/** Then one float64 per range: how long the helper that ran it took, in ms; in a task of owned
 *  pieces, one per thread instead: how long helper thread t (1 up) has been busy on it so far. */
export const ctrlTimes = (helpers: number): number => ctrlResults(helpers) + 2 * maxRanges(helpers + 1);
/** Then one int32 per thread (an even count of slots): in a task of owned pieces, the thread's
 *  pieces not yet claimed (ownedWord). */
export const ctrlOwned = (helpers: number): number => ctrlTimes(helpers) + 2 * maxRanges(helpers + 1);
/** Then one float64 per thread: in a task of owned pieces, how much of its total the thread has done. */
export const ctrlWork = (helpers: number): number => ctrlOwned(helpers) + 2 * Math.ceil((helpers + 1) / 2);
export const controlLength = (helpers: number): number => ctrlWork(helpers) + 2 * (helpers + 1);
/** The ticket's second part for a task with fixed ranges (parallel.ts: fixedRanges): nothing to
 *  claim, each helper takes its own range. */
export const FIXED_TICKET = 0xff;
/** The ticket's second part for a task of owned pieces (parallel.ts: ownedPieces): each thread
 *  claims its own pieces, then what is left of the others' (claimOwned). */
export const OWNED_TICKET = 0xfd;
/** The ticket's second part once a task has ended (start() closes it first thing): nothing to claim. */
export const CLOSED_TICKET = 0xfe;
/** The ticket of generation `gen` with `next` ranges claimed. */
export const ticket = (gen: number, next: number): number => (((gen & 0xffffff) << 8) | next) | 0;

/**
 * Claims the next range of generation `gen`'s task: its index, or -1 when none is left, or the task
 * has ended (start() closes its ticket before writing the next task's count of ranges, so a count
 * read here that is the next task's comes with a ticket that no longer matches), or a later task has
 * started. The ticket's generation is checked in the same compare-and-swap that claims.
 */
export function claimRange(control: Int32Array, gen: number): number {
  for (;;) {
    const t = Atomics.load(control, CTRL_TICKET);
    if (t >>> 8 !== (gen & 0xffffff)) return -1;
    const next = t & 0xff;
    if (next >= Atomics.load(control, CTRL_CHUNKS)) return -1;
    if (Atomics.compareExchange(control, CTRL_TICKET, t, t + 1) === t) return next;
  }
}

/** A thread's word in a task of owned pieces: the task's generation (low 16 bits), then the first
 *  and the end of the thread's pieces not yet claimed (piece indices, below 256). */
export const ownedWord = (gen: number, front: number, back: number): number => (((gen & 0xffff) << 16) | (front << 8) | back) | 0;

/**
 * Claims a piece of generation `gen`'s task of owned pieces for thread `thread` of `threads`: the
 * first of its own still unclaimed, else the last of the next thread's that has any left (so a
 * thread that falls behind loses the end of its range, and keeps the start, whose data it holds);
 * returns the piece's index, or -1 when none is left or the task is another's. Each word is
 * claimed from by compare-and-swap, its generation checked in the same operation.
 */
export function claimOwned(control: Int32Array, gen: number, thread: number, threads: number): number {
  const base = ctrlOwned(threads - 1);
  for (let i = 0; i < threads; i++) {
    const at = base + ((thread + i) % threads);
    for (;;) {
      const word = Atomics.load(control, at);
      if (word >>> 16 !== (gen & 0xffff)) break;
      const front = (word >>> 8) & 0xff;
      const back = word & 0xff;
      if (front >= back) break;
      if (Atomics.compareExchange(control, at, word, i === 0 ? word + 0x100 : word - 1) === word) return i === 0 ? front : back - 1;
    }
  }
  return -1;
}

/** Counts one range of a task of `chunks` ranges done; wakes the training thread if that was the
 *  last and it sleeps. */
export function rangeDone(control: Int32Array, chunks: number): void {
  if (Atomics.add(control, CTRL_DONE, 1) + 1 >= chunks && Atomics.load(control, CTRL_MAIN_WAITING) !== 0) Atomics.notify(control, CTRL_DONE);
}

/** Most threads a pool runs (a task's ranges are counted in the ticket's low 8 bits). */
export const MAX_THREADS = 64; // maxRanges(64) = 192 ranges: below CLOSED_TICKET
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
/** How much of the training thread's timed work (ms) the shares' figures gather before the shares
 *  move: tens of W1 steps, so that they follow a core the host slows down for seconds. */
export const SHARE_WINDOW_MS = 20;
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

/** A control block's float64 values, one per range, from int32 index `at`. */
const perRange = (control: Int32Array, at: number, helpers: number): Float64Array =>
  new Float64Array(control.buffer, control.byteOffset + 4 * at, maxRanges(helpers + 1));

/** The float64 results of a control block, one per range. */
export const resultsView = (control: Int32Array, helpers: number): Float64Array => perRange(control, ctrlResults(helpers), helpers);

/** The float64 range times of a control block, one per range. */
export const timesView = (control: Int32Array, helpers: number): Float64Array => perRange(control, ctrlTimes(helpers), helpers);

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
  /**
   * How long range `at` of the last task took, in ms, when a helper ran it (written before the
   * helper counts the range done, so final once finish() returns; a range this thread ran keeps an
   * older figure: time those around claim()). In a task of owned pieces, one figure per thread
   * instead: how long helper thread t (1 up) was busy on its pieces, -1 when it ran none. The
   * shares are moved by these; test/bench/thread-profile.ts shows them.
   */
  readonly rangeTimes: Float64Array;
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
  /** The ranges' bounds in the control block. */
  private readonly bounds: Int32Array;
  /** The current task: its generation, ranges, and whether they are fixed (one per thread), or
   *  owned pieces (parallel.ts: ownedPieces; each thread's first piece in `firsts`). */
  private gen = 0;
  private chunks = 0;
  private fixed = false;
  private owned = false;
  private readonly firsts: Int32Array;
  /** In a task of owned pieces, how much of the total each thread has done (helpers write theirs). */
  private readonly threadWork: Float64Array;
  /** Whether the last claim() gave this thread its first range of the task. */
  fresh = false;
  /** Whether this thread holds a claimed range not yet counted done, and whether it took its own (range 0). */
  private holding = false;
  /** Whether this thread has claimed any range of the current task. */
  private claimedAny = false;
  private tookOwn = false;
  from = 0;
  to = 0;
  at = 0;
  /** Ranges this thread has taken that were meant for a helper (none had claimed them yet). */
  taken = 0;
  /**
   * The threads' cumulative shares (of SHARE_ONE) at which a task of one range per thread is cut
   * (parallel.ts: chunkBounds; the optimizer's blocks are cut at the same, TASK_SGD_BLOCKS). Even at
   * first, then moved towards each thread's measured speed (timeShares): a core the host slows down
   * would otherwise hold every task up by all its slowness. Any cut gives the same bits.
   */
  readonly shares: Int32Array;
  /** Whether the current task is timed for the shares, its total, when it began, and this thread's
   *  time on its own range (-1 until done). */
  private timing = false;
  private total = 0;
  private began = 0;
  private ownMs = -1;
  /** Since the shares last moved: each range's summed fraction of its tasks, and summed time. */
  private readonly shareWork: Float64Array;
  private readonly shareMs: Float64Array;

  /** Starts `threads - 1` helpers (none when the WebAssembly kernels are unavailable: then threads
   *  is 1 and nothing is installed). */
  constructor(threads: number) {
    const module = kernelsModule();
    const memory = arenaMemory();
    const exports = kernelExports();
    const helpers = module && memory && exports ? Math.max(0, Math.min(MAX_THREADS, Math.floor(threads)) - 1) : 0;
    this.threads = helpers + 1;
    this.control = helpers > 0 ? allocInt32(controlLength(helpers)) : new Int32Array(controlLength(0));
    this.args = this.control.subarray(CTRL_ARGS, CTRL_ARGS + MAX_ARGS);
    this.fargs = fargsView(this.control);
    this.results = resultsView(this.control, helpers);
    this.rangeTimes = timesView(this.control, helpers);
    this.shares = evenShares(helpers + 1);
    this.shareWork = new Float64Array(helpers + 1);
    this.shareMs = new Float64Array(helpers + 1);
    this.bounds = this.control.subarray(CTRL_BOUNDS, CTRL_BOUNDS + maxRanges(helpers + 1) + 1);
    this.firsts = new Int32Array(helpers + 2);
    this.threadWork = new Float64Array(this.control.buffer, this.control.byteOffset + 4 * ctrlWork(helpers), helpers + 1);
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
      this.control[ctrlSlots(helpers) + 2 * i] = arenaAddress(work);
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

  start(task: number, total: number, align: number, areaFloats: number, piece = 0): void {
    const n = this.threads;
    if (areaFloats > this.areaFloats) this.growAreas(areaFloats);
    const c = this.control;
    // Close the last task's ticket before anything of this one is written: a helper that woke late
    // for it may have read its ticket (all claimed) and be about to read the count of ranges, which
    // is this task's from the next line on; with the ticket closed its compare-and-swap fails,
    // instead of claiming a range of a finished task (and counting it done in this one).
    Atomics.store(c, CTRL_TICKET, ticket(this.gen, CLOSED_TICKET));
    const bounds = this.bounds;
    this.fixed = fixedRanges(task);
    this.owned = !this.fixed && !chunkedRanges(task) && piece === 0;
    if (this.owned) {
      this.chunks = ownedPieces(total, align, n, this.shares, takesTails(task) ? TAIL_PIECES : 0, bounds, this.firsts);
    } else if (this.fixed) {
      for (let i = 0; i <= n; i++) bounds[i] = rangeStart(total, n, align, i);
      this.chunks = n;
    } else if (chunkedRanges(task)) {
      this.chunks = Math.min(Math.ceil(total / align), bounds.length - 1);
      for (let i = 0; i <= this.chunks; i++) bounds[i] = Math.min(total, i * align);
      bounds[this.chunks] = total;
    } else {
      this.chunks = chunkBounds(total, align, n, bounds, piece, this.shares);
    }
    // Owned pieces, every thread with some: timed, so that the shares follow the threads' speeds.
    this.timing = this.owned && !sharesAsRanges(task);
    for (let i = 0; this.timing && i < n; i++) this.timing = this.firsts[i + 1] > this.firsts[i];
    if (this.owned) {
      this.rangeTimes.fill(-1, 1, n);
      this.threadWork.fill(0);
      this.total = total;
      this.began = performance.now();
      this.ownMs = -1;
    }
    this.gen = (this.gen + 1) | 0;
    this.holding = false;
    this.fresh = false;
    this.claimedAny = false;
    // (With nothing to split, or owned pieces, there is no range 0 to take first.)
    this.tookOwn = this.chunks === 0 || this.owned;
    c[CTRL_TASK] = task;
    Atomics.store(c, CTRL_CHUNKS, this.chunks);
    Atomics.store(c, CTRL_DONE, 0);
    if (this.owned) {
      const words = ctrlOwned(n - 1);
      for (let i = 0; i < n; i++) Atomics.store(c, words + i, ownedWord(this.gen, this.firsts[i], this.firsts[i + 1]));
    }
    // This thread's own range is range 0, taken before the helpers may claim: the ticket starts at 1.
    Atomics.store(c, CTRL_TICKET, ticket(this.gen, this.fixed ? FIXED_TICKET : this.owned ? OWNED_TICKET : 1));
    Atomics.store(c, CTRL_GEN, this.gen);
    // A helper announces itself in CTRL_SLEEPERS before it looks at the generation one last time
    // and sleeps; this thread bumped the generation before looking at CTRL_SLEEPERS (both
    // sequentially consistent): so either the helper sees the new generation, or this sees it.
    if (Atomics.load(c, CTRL_SLEEPERS) !== 0) Atomics.notify(c, CTRL_GEN);
  }

  claim(): boolean {
    const c = this.control;
    if (this.holding) {
      this.holding = false;
      rangeDone(c, this.chunks);
    }
    let index = 0;
    if (this.owned) {
      index = claimOwned(c, this.gen, 0, this.threads);
      if (index < 0) {
        if (this.timing && this.ownMs < 0) this.ownMs = performance.now() - this.began;
        return false;
      }
      if (index >= this.firsts[1]) this.taken++;
      this.threadWork[0] += this.bounds[index + 1] - this.bounds[index];
    } else if (!this.tookOwn) this.tookOwn = true;
    else if (this.fixed) return false;
    else {
      index = claimRange(c, this.gen);
      if (index < 0) return false;
      this.taken++;
    }
    this.holding = true;
    this.fresh = !this.claimedAny;
    this.claimedAny = true;
    this.at = index;
    this.from = this.bounds[index];
    this.to = this.bounds[index + 1];
    return true;
  }

  finish(): void {
    const c = this.control;
    if (this.holding) {
      this.holding = false;
      rangeDone(c, this.chunks);
    }
    // This thread's own range counts done even when it was never taken (when the caller threw
    // first, or has nothing to do itself: a replica build's range 0); so do the owned pieces no
    // thread has claimed (only when the caller threw: it claims until none is left).
    if (!this.tookOwn) {
      this.tookOwn = true;
      rangeDone(c, this.chunks);
    }
    if (this.owned) while (claimOwned(c, this.gen, 0, this.threads) >= 0) rangeDone(c, this.chunks);
    const chunks = this.chunks;
    let done = Atomics.load(c, CTRL_DONE);
    while (done < chunks) {
      // (Done only goes up: spinWhile returns when it changes, so look again until all are done.)
      done = spinWhile(c, CTRL_DONE, done, MAIN_SPIN_MS);
      if (done >= chunks) break;
      // The same handshake as start()'s, the other way round.
      Atomics.store(c, CTRL_MAIN_WAITING, 1);
      done = Atomics.load(c, CTRL_DONE);
      if (done < chunks) Atomics.wait(c, CTRL_DONE, done);
      Atomics.store(c, CTRL_MAIN_WAITING, 0);
      done = Atomics.load(c, CTRL_DONE);
    }
    // Each range is counted once (see start()); a count past the ranges would mean a range was
    // computed by two threads, or one of another task: say so rather than go on.
    if (done !== chunks) throw new Error(`kernel pool: ${done} ranges counted done of ${chunks}`);
    if (this.timing) this.timeShares();
    if (Atomics.load(c, CTRL_ERRORS) !== 0) {
      Atomics.store(c, CTRL_ERRORS, 0);
      throw new Error(`a kernel helper thread failed${this.helperError ? `: ${this.helperError}` : ""}`);
    }
  }

  /** Adds the task just finished to the shares' figures when every thread did some of it (what
   *  each did, and how long it was busy), and moves the shares every SHARE_WINDOW_MS of this
   *  thread's timed work. */
  private timeShares(): void {
    const n = this.threads;
    if (this.ownMs < 0) return;
    for (let i = 1; i < n; i++) if (!(this.rangeTimes[i] >= 0)) return;
    for (let i = 0; i < n; i++) {
      this.shareWork[i] += this.threadWork[i] / this.total;
      this.shareMs[i] += i === 0 ? this.ownMs : this.rangeTimes[i];
    }
    if (this.shareMs[0] < SHARE_WINDOW_MS) return;
    rebalanceShares(this.shares, this.shareWork, this.shareMs);
    this.shareWork.fill(0);
    this.shareMs.fill(0);
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
      this.control[ctrlSlots(n) + 2 * i + 1] = at;
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
