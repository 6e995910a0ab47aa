// Multi-threaded kernels: the hook through which the WebAssembly kernels (wasm/wasm-kernels.ts) hand
// ranges of a large product or convolution pass to helper threads. Pure: the threads themselves are
// started outside the trainer (workers/kernel-pool.ts), which installs an executor here.
//
// A parallel call fills `args` (the task's integer arguments: arena addresses, strides, sizes), then
// start() splits [0, total) into one contiguous range per thread, wakes the helpers on ranges 1..N-1
// and returns the end of range 0, which the calling thread computes itself; finish() then waits for
// the helpers. Every range runs the same code (wasm-kernels.ts: runRangeTask) on the same module and
// memory, and each output value is computed by the same operations whatever the split, so results
// are bit-identical to the single-thread run. Besides the products and convolution passes, the
// large elementwise passes (relu, max pooling) and the optimizer's loops (SGD's update, the
// gradient norm's sums of squares, in fixed blocks added in order) are split the same way, so that
// what stays on the calling thread alone is small: the loss, bias sums, small layers.

/** What a helper is asked to do (the kernel id of the work descriptor). */
export const TASK_QUIT = 0;
/** Output rows [i0, i1) of a GEMM. args: a, aRow, aCol, b, bRow, bCol, c, ldc, k, n, accumulate. */
export const TASK_GEMM = 1;
/** conv2d forward for samples [r0, r1). args: in, weight, bias, out, scratch, keep, filters, -, geometry. */
export const TASK_CONV_FORWARD = 2;
/** conv2d weight and bias gradients for filters [f0, f1) (kept patches only). args: grad, wGrad,
 *  bGrad, scratch, -, -, rows, filters, geometry. */
export const TASK_CONV_PARAM_GRADS = 3;
/** conv2d input gradients for samples [r0, r1). args: grad, weight, inGrad, -, -, -, -, filters, geometry. */
export const TASK_CONV_INPUT_GRADS = 4;

/** Columns [j0, j1) of a GEMM (for products with fewer rows than columns: each thread then packs
 *  only its own columns of B, and all of the smaller A). args as TASK_GEMM, plus m at 11. */
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

/** Where the 11 WindowGeometry numbers start in args. */
export const GEOMETRY_ARG = 8;
/** Length of args. */
export const MAX_ARGS = 24;
/** Length of fargs. */
export const MAX_FARGS = 4;

export interface ParallelExecutor {
  /** Threads taking part, the calling one included (>= 2). */
  readonly threads: number;
  /** The task's arguments, filled by the caller before start(). */
  readonly args: Int32Array;
  /** The task's float64 arguments (MAX_FARGS), filled by the caller before start(). */
  readonly fargs: Float64Array;
  /**
   * Splits [0, total) into `threads` ranges whose bounds are multiples of `align` (or total), starts
   * the helpers on all but the first, and returns the first's end, for the caller to compute. Each
   * helper has a work area of its own for GEMM packing, and, when `areaFloats` > 0, a scratch area of
   * at least that many floats (allocated by the caller's thread, never by a helper).
   */
  start(task: number, total: number, align: number, areaFloats: number): number;
  /** Waits until every helper has finished its range (call it even when the own range threw). */
  finish(): void;
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
