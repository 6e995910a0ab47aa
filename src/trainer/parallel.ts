// Helper threads: the hook through which the trainer hands work to them. Pure: the threads
// themselves are started outside the trainer (workers/kernel-pool.ts), which installs an executor
// here. Two uses: data-parallel steps (data-parallel.ts: the threads train chunks of each batch, a
// helper on a replica of the model; see TASK_REPLICA_*), for models whose rows are independent,
// and, for the others and for inference, multi-threaded kernels: the WebAssembly kernels
// (wasm/wasm-kernels.ts) hand ranges of a large product or convolution pass to the helpers, as
// described here.
//
// A parallel call fills `args` (the task's integer arguments: arena addresses, strides, sizes), then
// start() cuts [0, total) into ranges (ownedPieces: one per thread, a product's ending in small
// pieces; chunkBounds: one per thread, and, for the passes where cutting costs nothing, smaller ones
// for the end) and wakes the helpers. Each thread computes its own range (claim()), and a thread
// that has finished its own claims any range still unclaimed: a helper that the machine is slow to
// wake (a virtual machine's cores are shared with the host; waking one that sleeps can take
// hundreds of microseconds), or slows down for a while, then holds the other up by at most a small
// range.
// finish() waits until every claimed range is done. Every range runs the same code
// (wasm-kernels.ts: runRangeTask) on the same module and memory, and each output value is computed
// by the same operations whatever the split and whichever thread computes it, so results are
// bit-identical to the single-thread run. Besides the products and convolution passes, the large
// elementwise passes (relu, max pooling) and the optimizer's loops (SGD's and Adam's updates, the
// gradient norm's sums of squares, in fixed blocks added in order) are split the same way, so that
// what stays on the calling thread alone is small: the loss, bias sums, small layers.
//
// Where each value is computed matters too: a cache line that one core wrote and another reads
// next has to cross between them, which on a virtual machine whose two cores the host has placed
// far apart costs hundreds of nanoseconds a line. So a dense layer's units have one thread each
// whenever the batch is smaller than the units: its forward product is split by columns (units),
// its weight gradient ([units, in]) by rows into the same runs, and the optimizer updates each
// parameter block by the same runs of rows (TASK_SGD_BLOCKS, kernels.ts: ParamBlocks). Each thread
// then finds the weights, gradients and optimizer state of its units where it left them. The runs
// are cut at the threads' shares (chunkBounds, ownedPieces), which the pool moves towards each
// thread's measured speed (workers/kernel-pool.ts: shares): with one range per thread, a core the
// host slows down would otherwise hold up every task by all of its slowness. And a product's range
// ends in two pieces of an eighth each, which a thread that has finished its own may take
// (ownedPieces, takesTails): a core the host holds up for a moment gives them to the other instead
// of keeping it waiting. A thread packs the operand its pieces share once (kernels.wat: gemm_keep),
// so the pieces cost no more than the range.
//
// Two tasks cut their ranges otherwise: a replica's build is one range per helper, its own
// (fixedRanges), and a data-parallel batch is cut into chunks by its rows alone (chunkedRanges).

import type { LossConfig } from "./schema/loss.js";
import type { ModelSpec } from "./config.js";
import type { FoldedActivation } from "./model.js";

/** What a helper is asked to do (the kernel id of the work descriptor). */
export const TASK_QUIT = 0;
/** Output rows [i0, i1) of a GEMM. args: a, aRow, aCol, b, bRow, bCol, c, ldc, k, n, accumulate, m,
 *  then what a dense layer does around it on the same rows (wasm-kernels.ts: gemmRange): bias (0:
 *  none), relu, reluOf (A's relu derivative first, 0: none), sums (A's column sums, 0: none). */
export const TASK_GEMM = 1;
/** conv2d forward for samples [r0, r1). args: in, weight, bias, out, scratch, keep, filters, -, geometry. */
export const TASK_CONV_FORWARD = 2;
/** conv2d weight and bias gradients for filters [f0, f1) (kept patches only). args: grad, wGrad,
 *  bGrad, scratch, -, -, rows, filters, geometry. */
export const TASK_CONV_PARAM_GRADS = 3;
/** conv2d input gradients for samples [r0, r1). args: grad, weight, inGrad, -, -, -, -, filters, geometry. */
export const TASK_CONV_INPUT_GRADS = 4;

/** Columns [j0, j1) of a GEMM (for products with fewer rows than columns: each thread then packs
 *  only its own columns of B, and all of the smaller A). args as TASK_GEMM (the bias and relu on these columns; no A prologue). */
export const TASK_GEMM_COLUMNS = 5;
/** SGD with momentum on parameters [i0, i1). args: params, grads, velocity, nesterov; fargs: lr,
 *  momentum, weight decay. */
export const TASK_SGD = 6;
/** Sums of squares of blocks [b0, b1) (wasm sum_squares_blocks). args: a, count, out. */
export const TASK_SUM_SQUARES = 7;
/** relu in place on values [i0, i1). args: x. */
export const TASK_RELU = 8;
/** relu's backward on values [i0, i1). args: y, grad. */
export const TASK_RELU_BACKWARD = 9;
/** 2×2 max pooling of planes [p0, p1). args: in, out, argmax, height, width, outHeight, outWidth. */
export const TASK_MAX_POOL = 10;
/** max pooling's backward on planes [p0, p1). args: gradOut, argmax, inGrad, inPlane, outPlane. */
export const TASK_MAX_POOL_BACKWARD = 11;

/** conv2d weight and bias gradients for weight columns (patch values) [q0, q1), kept patches only;
 *  the range that starts at 0 (the calling thread's) also takes every bias gradient. args as TASK_CONV_PARAM_GRADS. */
export const TASK_CONV_PARAM_GRADS_COLUMNS = 12;

/** SGD with momentum on the part between shares [s0, s1) of every parameter block (kernels.ts:
 *  ParamBlocks; wasm sgd_update_blocks): the task is over SHARE_ONE, so its ranges are the threads'
 *  shares, and each block's rows are cut at them as a product's are. args: params, grads, velocity,
 *  nesterov, blocks, block count; fargs as TASK_SGD. */
export const TASK_SGD_BLOCKS = 17;
/** Adam on the part between shares [s0, s1) of every parameter block (as TASK_SGD_BLOCKS). args:
 *  params, grads, exp_avg, exp_avg_sq, decoupled, blocks, block count; fargs as TASK_ADAM. */
export const TASK_ADAM_BLOCKS = 18;

/** Adam on parameters [i0, i1). args: params, grads, exp_avg, exp_avg_sq, decoupled; fargs: beta1,
 *  beta2, eps, l2, shrink, stepSize, correction2 (Kernels.adamUpdate). */
export const TASK_ADAM = 16;

// Data-parallel steps (data-parallel.ts): each helper keeps a replica of the model that shares its
// parameters and has gradients and activations of its own, and trains chunks of each batch.
/** Adds gradient slots into the model's gradients, values [i0, i1), each value slot after slot in
 *  order. args: model grads, slot count, then each slot's address. */
export const TASK_ADD_GRADS = 13;
/** Builds the helper's replica (discarding any earlier one) from the ReplicaRequest that was posted
 *  to it. The ranges are [i, i + 1). */
export const TASK_REPLICA_BUILD = 14;
/** Chunk `at` of the batch, rows [r0, r1), on the claiming thread's replica: forward (training
 *  mode), loss, backward; the chunk's gradients go to its slot and its part of the batch loss to
 *  result `at`. The ranges are the batch's chunks (chunkedRanges), claimed by whichever thread is
 *  free. args: x, y, the batch's rows, the slots' base (slot c at base + 4·(c − 1)·params). */
export const TASK_REPLICA_STEP = 15;

/** Most chunks a data-parallel batch is cut into. */
export const MAX_REPLICA_CHUNKS = 16;

/** What a helper needs to build a replica of a model (posted to it as a message). */
export interface ReplicaRequest {
  spec: ModelSpec;
  inputWidth: number;
  foldOutput: FoldedActivation | null;
  loss: LossConfig;
  /** Rows the replica's buffers hold (a chunk's). */
  capacity: number;
  /** Where the model's parameters are in the arena, and how many. */
  paramsAt: number;
  paramCount: number;
  /** The arena region (reserved by the training thread) the replica's buffers are taken from. */
  regionAt: number;
  regionBytes: number;
}

/** Where the 11 WindowGeometry numbers start in args. */
export const GEOMETRY_ARG = 8;
/** Length of args. */
export const MAX_ARGS = 24;
/** Length of fargs. */
export const MAX_FARGS = 8;

export interface ParallelExecutor {
  /** Threads taking part, the calling one included (>= 2). */
  readonly threads: number;
  /** The task's arguments, filled by the caller before start(). */
  readonly args: Int32Array;
  /** The task's float64 arguments (MAX_FARGS), filled by the caller before start(). */
  readonly fargs: Float64Array;
  /**
   * Cuts [0, total) into ranges whose bounds are multiples of `align` (or total): one per thread
   * at the threads' shares, a product's ending in pieces another thread may take (ownedPieces);
   * with `piece` > 0, one per thread and smaller ones of at least `piece` for whichever thread is
   * free first (chunkBounds); one per thread for a task with fixedRanges, and chunks of `align` for
   * one with chunkedRanges. Wakes the helpers. Each helper has a work area of its own for GEMM packing,
   * and, when `areaFloats` > 0, a scratch area of at least that many floats (allocated by the
   * caller's thread, never by a helper).
   */
  start(task: number, total: number, align: number, areaFloats: number, piece?: number): void;
  /**
   * The calling thread's next range, in `from` and `to`; false when none is left: first its own,
   * then any a helper has not claimed (a helper's pieces from the last; with fixed ranges, only its
   * own). Call it until false, computing each range.
   */
  claim(): boolean;
  /** The range the last successful claim() gave, and its index. */
  readonly from: number;
  readonly to: number;
  readonly at: number;
  /** Whether the last successful claim() gave this thread its first range of the task (a product's
   *  later ranges on a thread reuse the operand its first packed: wasm-kernels.ts, gemmRange). */
  readonly fresh: boolean;
  /** Waits until every range claimed by any thread is done (call it even when the own range threw). */
  finish(): void;
  /** One float64 per range (maxRanges), that the thread computing the range may write (a chunk's
   *  loss part). */
  readonly results: Float64Array;
  /** Posts a replica request to helper `helper` (0-based), for a TASK_REPLICA_BUILD to follow. */
  postReplica(helper: number, request: ReplicaRequest): void;
}

let current: ParallelExecutor | null = null;

/** Installs (or, with null, removes) the executor the kernels split large calls over. Only from the
 *  thread that trains, between steps. */
export function setParallelExecutor(executor: ParallelExecutor | null): void {
  current = executor;
}

export function parallelExecutor(): ParallelExecutor | null {
  return current;
}

/** The start of range `part` of `parts` over [0, total), aligned up to `align`. */
export function rangeStart(total: number, parts: number, align: number, part: number): number {
  if (part <= 0) return 0;
  if (part >= parts) return total;
  const at = Math.ceil(Math.floor((total * part) / parts) / align) * align;
  return Math.min(at, total);
}

/** Whether each thread of a task has one range of its own, fixed by its place: a replica's build
 *  (only the helper can build its own). */
export function fixedRanges(task: number): boolean {
  return task === TASK_REPLICA_BUILD;
}

/** Whether a task's ranges are chunks of `align` each (the last may be shorter), whoever computes
 *  them: a data-parallel batch, whose chunks are cut by the batch alone so that its gradients are
 *  added up the same way whatever the threads. */
export function chunkedRanges(task: number): boolean {
  return task === TASK_REPLICA_STEP;
}

/** Whether a task's ranges are the threads' shares themselves (its total is SHARE_ONE): the
 *  optimizer's blocks, which cut each block's rows at the shares. A range's part of such a task's
 *  work is then not its part of the total, so it tells nothing of its thread's speed. */
export function sharesAsRanges(task: number): boolean {
  return task === TASK_SGD_BLOCKS || task === TASK_ADAM_BLOCKS;
}

/** With pieces, the share of the work the threads' first ranges take together, in tenths. */
const FIRST_TENTHS = 7;
/** Most ranges a task is cut into, for `threads` threads. */
export const maxChunks = (threads: number): number => 3 * threads;
/** Most ranges any task has, for `threads` threads. */
export const maxRanges = (threads: number): number => Math.max(maxChunks(threads), MAX_REPLICA_CHUNKS);

/** What the threads' shares of a task add up to (a power of two: a share's bound is exact in
 *  doubles and in the kernels' integers). */
export const SHARE_ONE = 1 << 16;

/** Even shares for `threads` threads: the cumulative bounds, 0 first and SHARE_ONE last. */
export function evenShares(threads: number): Int32Array {
  const shares = new Int32Array(threads + 1);
  for (let i = 0; i <= threads; i++) shares[i] = Math.round((SHARE_ONE * i) / threads);
  return shares;
}

/**
 * Cuts [0, total) into ranges, writing their bounds to `bounds` (count + 1 values; bounds are
 * multiples of `align`, or total) and returning the count. The first `threads` ranges are one per
 * thread: the calling thread takes the first, each helper claims one of the others, and a thread
 * that has finished its own claims any still unclaimed. Without `piece`, they cover everything, cut
 * at the threads' cumulative `shares` (of SHARE_ONE; even when not given): bound i is
 * align·ceil(units·shares[i] / SHARE_ONE), as the kernels' part_bound cuts parameter blocks, so that
 * a thread's rows of a product and of the optimizer's blocks are the same. With `piece` > 0 (a task
 * whose ranges cost nothing extra to cut: elementwise passes, products whose packed operand is
 * small), those take FIRST_TENTHS tenths of the work, evenly, and the rest is cut into up to 2
 * ranges per thread of at least `piece`, for whichever thread is free first: a thread the machine
 * slows down for a while then holds the other up by at most one small range. Fewer ranges when there
 * are fewer aligned units.
 */
export function chunkBounds(
  total: number, align: number, threads: number, bounds: Int32Array, piece = 0, shares: Int32Array | null = null,
): number {
  const units = Math.ceil(total / align);
  const pieceUnits = Math.max(1, Math.ceil(piece / align));
  const rest = units - Math.floor((units * FIRST_TENTHS) / 10);
  const tail = piece > 0 ? Math.min(2 * threads, Math.floor(rest / pieceUnits)) : 0;
  const firstUnits = tail > 0 ? units - rest : units;
  bounds[0] = 0;
  let count = 0;
  for (let i = 1; i <= threads; i++) {
    const cut = tail === 0 && shares ? Math.ceil((firstUnits * shares[i]) / SHARE_ONE) : Math.ceil((firstUnits * i) / threads);
    const end = Math.min(total, cut * align);
    if (end > bounds[count]) bounds[++count] = end;
  }
  for (let i = 1; i <= tail; i++) {
    const end = Math.min(total, (firstUnits + Math.round(((units - firstUnits) * i) / tail)) * align);
    if (end > bounds[count]) bounds[++count] = end;
  }
  return count;
}

/** Whether a task's one range per thread is cut into a head and up to TAIL_PIECES pieces at its
 *  end, which a thread that has finished its own may take (ownedPieces): the products, whose later
 *  pieces on one thread reuse the operand they share, packed for the first (kernels.wat:
 *  gemm_keep), so that a piece costs no more than its part of the range. */
export function takesTails(task: number): boolean {
  return task === TASK_GEMM || task === TASK_GEMM_COLUMNS;
}

/** Most pieces at the end of a thread's range (takesTails). */
export const TAIL_PIECES = 2;
/** A tail piece's part of its thread's range: an eighth (so a thread can give away up to a quarter). */
const TAIL_EIGHTHS = 1;

/**
 * Cuts [0, total) for a task of one range per thread into pieces, writing their bounds to `bounds`
 * (count + 1 values, multiples of `align` or total) and, in `firsts`, each thread's first piece
 * (threads + 1 values: thread t has pieces firsts[t] up to firsts[t + 1]); returns the count. The
 * threads' ranges are cut at their cumulative `shares` as chunkBounds cuts them; with `tails`, each
 * range with more than one aligned unit keeps a head and ends in up to `tails` pieces of an eighth
 * of it (at least one unit each). A thread takes its own pieces from the first, and, once it has
 * none left, another's from the last (workers/kernel-pool.ts: claimOwned): a thread that falls
 * behind gives its end away. No piece is empty; a thread whose share holds no unit has none.
 */
export function ownedPieces(
  total: number, align: number, threads: number, shares: Int32Array, tails: number, bounds: Int32Array, firsts: Int32Array,
): number {
  const units = Math.ceil(total / align);
  let count = 0;
  let u0 = 0;
  bounds[0] = 0;
  for (let t = 0; t < threads; t++) {
    firsts[t] = count;
    const u1 = t === threads - 1 ? units : Math.ceil((units * shares[t + 1]) / SHARE_ONE);
    const width = u1 - u0;
    if (width <= 0) continue;
    const piece = Math.max(1, Math.floor((width * TAIL_EIGHTHS) / 8));
    const tailCount = Math.min(tails, Math.floor((width - 1) / piece));
    for (let i = tailCount; i >= 0; i--) bounds[++count] = Math.min(total, (u1 - i * piece) * align);
    u0 = u1;
  }
  firsts[threads] = count;
  return count;
}

/** The least a thread's share moves to, of SHARE_ONE / threads (before the shares are scaled to add
 *  up, so about that): a thread that got nothing could not be timed any more. */
const MIN_SHARE_PART = 0.25;

/**
 * The threads' next shares, from what each did over the last while: `work[i]` the fraction of
 * their tasks range i held (summed over tasks), `ms[i]` the time its thread took on them. Each
 * thread's speed is work ÷ time, and its share moves halfway from where it is to its part of the
 * summed speeds (halfway: one disturbed window moves it only so far). Writes `shares` (cumulative,
 * as chunkBounds takes them) in place; leaves them as they are when a figure is missing.
 */
export function rebalanceShares(shares: Int32Array, work: Float64Array, ms: Float64Array): void {
  const threads = shares.length - 1;
  let speeds = 0;
  for (let i = 0; i < threads; i++) {
    if (!(work[i] > 0) || !(ms[i] > 0)) return;
    speeds += work[i] / ms[i];
  }
  const least = (MIN_SHARE_PART * SHARE_ONE) / threads;
  const widths: number[] = [];
  let sum = 0;
  for (let i = 0; i < threads; i++) {
    const now = shares[i + 1] - shares[i];
    const target = (SHARE_ONE * work[i]) / ms[i] / speeds;
    const width = Math.max(least, (now + target) / 2);
    widths.push(width);
    sum += width;
  }
  let at = 0;
  for (let i = 0; i < threads; i++) {
    at += widths[i];
    shares[i + 1] = i === threads - 1 ? SHARE_ONE : Math.round((at * SHARE_ONE) / sum);
  }
}
