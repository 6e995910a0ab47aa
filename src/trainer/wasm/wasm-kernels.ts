// The Kernels interface on the WebAssembly kernels of kernels.wat. A call runs in WebAssembly when
// its arrays are Float32Array views of the arena (see arena.ts), which is where a float32 model
// keeps everything; the kernels then read and write them in place. Otherwise the call goes to the
// JS reference kernels, which is how float64 models (gradient checks) and arbitrary callers work.
// One exception saves a copy of the whole batch on the JS side: a read-only float32 operand outside
// the arena (a caller's input batch, e.g. through Model.predict) is copied into an arena staging
// buffer first, so the product still runs in WebAssembly.
//
// Results agree with the JS kernels to float32 rounding: matrix products accumulate in float32
// here (in float64 in JS); elementwise kernels give the same float32 values bit for bit. Each is
// deterministic: it does not depend on sizes of blocks or on how rows are split.
//
// Threads: every call here runs on this thread, but the work is laid out to be split. Each GEMM
// covers rows [i0, i1) of its output with its own work area (gemm_work_bytes), and each output
// value is computed the same way whatever the range (a product with fewer rows than columns is
// split by columns instead, so that each thread packs only its own part of the larger operand);
// the convolution passes are functions of a range of samples (forward, input gradients) or of
// filters or weight columns (weight and bias gradients); relu, max pooling and the optimizer loops
// of ranges of values or planes (sums of squares in fixed blocks, added in order). A pool can
// hand those ranges to helper threads that instantiate the same module on the same memory
// (instance.ts: kernelsModule, instantiateKernels; arena.ts: arenaMemory), each with its own work
// area, and get the same bits. (The input-gradient pass also needs one dColT area per thread.)
import type { Floats, Kernels, ParamBlocks, WindowGeometry } from "../kernels.js";
import { allocFloat32, arenaAddress, arenaAddressInt32 } from "./arena.js";
import { kernelExports, type KernelExports } from "./instance.js";
import {
  GEOMETRY_ARG,
  parallelExecutor,
  TASK_CONV_FORWARD,
  TASK_CONV_INPUT_GRADS,
  TASK_CONV_PARAM_GRADS,
  TASK_CONV_PARAM_GRADS_COLUMNS,
  TASK_GEMM,
  TASK_GEMM_COLUMNS,
  TASK_MAX_POOL,
  TASK_MAX_POOL_BACKWARD,
  TASK_RELU,
  TASK_RELU_BACKWARD,
  TASK_SGD,
  TASK_SGD_BLOCKS,
  SHARE_ONE,
  TASK_ADD_GRADS,
  TASK_ADAM,
  TASK_ADAM_BLOCKS,
  TASK_SUM_SQUARES,
  type ParallelExecutor,
} from "../parallel.js";

/**
 * Elementwise calls on fewer values than this go to the JS kernels, which are faster there than
 * a call into WebAssembly (measured: relu on 8 values takes 15 ns in JS and 47 ns here; on 32, 67
 * and 55 ns). They give the same bits either way. (Products always run here, however small: a
 * row's result must not depend on how many rows share the call, and kernels.wat has an unpacked
 * path for small products.)
 */
const SMALL_COUNT = 32;

/** A growable arena buffer for copies of read-only operands that live outside the arena. */
class Staging {
  private buffer: Float32Array = new Float32Array(0);

  /** The arena address of `a`'s first `length` values: `a` itself when it is in the arena, else a
   *  copy here; -1 when neither works (a float64 array, or the arena is unavailable). */
  address(a: Floats, length: number): number {
    const at = arenaAddress(a);
    if (at >= 0 || !(a instanceof Float32Array)) return at;
    if (this.buffer.length < length) this.buffer = allocFloat32(length);
    // (An ordinary array when the arena is full: then there is no copy to make.)
    const bufferAt = arenaAddress(this.buffer);
    if (bufferAt < 0) return -1;
    this.buffer.set(length === a.length ? a : a.subarray(0, length));
    return bufferAt;
  }
}

/** The convolution's range passes on the kernels `w` (this thread's, or a helper thread's instance
 *  on the same memory): the same code whichever thread runs a range. */
export function rangePasses(w: KernelExports) {
  const im2colT = (image: number, colT: number, g: WindowGeometry): void =>
    w.im2col_t(image, colT, g.channels, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padTop, g.padLeft, g.outHeight, g.outWidth);
  const col2imT = (colT: number, image: number, g: WindowGeometry): void =>
    w.col2im_t(colT, image, g.channels, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padTop, g.padLeft, g.outHeight, g.outWidth);
  // The convolution's passes, over ranges. Each sample's patches are kept transposed, [K, positions]
  // (im2col_t): with stride 1 every output row's stretch is a contiguous copy of an input row, and
  // the forward product needs no transposition. Scratch holds one sample's dColT, then the patches
  // of one sample, or of each sample when they are kept (the same size as the JS kernels' scratch).

  /** Outputs of samples [r0, r1): patches, bias, out[filters, positions] += W · colT. */
  const convForward = (
    inAt: number,
    weightAt: number,
    biasAt: number,
    outAt: number,
    scratchAt: number,
    keep: boolean,
    filters: number,
    g: WindowGeometry,
    r0: number,
    r1: number,
    work: number,
  ): void => {
    const patch = g.channels * g.kernelH * g.kernelW;
    const positions = g.outHeight * g.outWidth;
    const inBytes = 4 * g.channels * g.height * g.width;
    const colBytes = 4 * positions * patch;
    for (let r = r0; r < r1; r++) {
      const colAt = scratchAt + colBytes * (1 + (keep ? r : 0));
      const outR = outAt + 4 * r * filters * positions;
      im2colT(inAt + r * inBytes, colAt, g);
      w.fill_rows(outR, positions, 0, filters, positions, biasAt);
      w.gemm(weightAt, patch, 1, colAt, positions, 1, outR, positions, 0, filters, patch, positions, 1, work);
    }
  };

  /** Rows [f0, f1) of dW and db over every sample, in sample order: dW += g · colTᵀ, db += row
   *  sums of g. (Without kept patches each sample's are computed again, into the one-sample area.)
   *  Both g and colT run along positions, so with few filters or a small patch dot products beat
   *  packing for the GEMM (measured: 2× for 16 filters of 3×3×1, 1.45× for 32 of 3×3×3; 0.85×
   *  for 32 of 3×3×16). */
  const convParamGrads = (
    gradAt: number,
    wGradAt: number,
    bGradAt: number,
    scratchAt: number,
    kept: boolean,
    inAt: number,
    rows: number,
    filters: number,
    g: WindowGeometry,
    f0: number,
    f1: number,
    work: number,
  ): void => {
    const patch = g.channels * g.kernelH * g.kernelW;
    const positions = g.outHeight * g.outWidth;
    const inBytes = 4 * g.channels * g.height * g.width;
    const colBytes = 4 * positions * patch;
    const byDots = paramGradsByDots(filters, patch, positions);
    w.zero_rows(bGradAt, 1, f0, f1, 1);
    if (rows === 0) w.zero_rows(wGradAt, patch, f0, f1, patch);
    for (let r = 0; r < rows; r++) {
      const gR = gradAt + 4 * r * filters * positions;
      const colAt = scratchAt + colBytes * (1 + (kept ? r : 0));
      if (!kept) im2colT(inAt + r * inBytes, colAt, g);
      w.add_row_sums(gR, bGradAt, positions, f0, f1);
      // The first sample overwrites: 0 + its terms, as zeroing first would give.
      if (byDots) w.dot_nt(gR, positions, colAt, positions, wGradAt, patch, f0, f1, positions, patch, r === 0 ? 0 : 1);
      else w.gemm(gR, positions, 1, colAt, 1, positions, wGradAt, patch, f0, f1, positions, patch, r === 0 ? 0 : 1, work);
    }
  };

  /** convParamGrads's product (packed, kept patches) for columns [q0, q1) of dW, every filter; the
   *  range starting at 0 (the calling thread's, never empty) also sums every bias gradient. Each value is computed as there: splitting
   *  by columns gives each thread only its own columns of the patches to pack (by filters, every
   *  thread would pack all of them), and the whole, smaller, output gradient. */
  const convParamGradsColumns = (
    gradAt: number,
    wGradAt: number,
    bGradAt: number,
    scratchAt: number,
    rows: number,
    filters: number,
    g: WindowGeometry,
    q0: number,
    q1: number,
    work: number,
  ): void => {
    const patch = g.channels * g.kernelH * g.kernelW;
    const positions = g.outHeight * g.outWidth;
    const colBytes = 4 * positions * patch;
    const biases = q0 === 0;
    if (biases) w.zero_rows(bGradAt, 1, 0, filters, 1);
    if (rows === 0) w.zero_rows(wGradAt + 4 * q0, patch, 0, filters, q1 - q0);
    for (let r = 0; r < rows; r++) {
      const gR = gradAt + 4 * r * filters * positions;
      const colAt = scratchAt + colBytes * (1 + r);
      if (biases) w.add_row_sums(gR, bGradAt, positions, 0, filters);
      w.gemm(gR, positions, 1, colAt + 4 * q0 * positions, 1, positions, wGradAt + 4 * q0, patch, 0, filters, positions, q1 - q0, r === 0 ? 0 : 1, work);
    }
  };

  /** dX of samples [r0, r1): dColT = Wᵀ · g into the area at colGradAt, then col2im_t. */
  const convInputGrads = (
    gradAt: number,
    weightAt: number,
    inGradAt: number,
    colGradAt: number,
    filters: number,
    g: WindowGeometry,
    r0: number,
    r1: number,
    work: number,
  ): void => {
    const patch = g.channels * g.kernelH * g.kernelW;
    const positions = g.outHeight * g.outWidth;
    const inSize = g.channels * g.height * g.width;
    for (let r = r0; r < r1; r++) {
      w.gemm(weightAt, 1, patch, gradAt + 4 * r * filters * positions, positions, 1, colGradAt, positions, 0, patch, filters, positions, 0, work);
      w.zero_rows(inGradAt + 4 * r * inSize, inSize, 0, 1, inSize);
      col2imT(colGradAt, inGradAt + 4 * r * inSize, g);
    }
  };
  return { convForward, convParamGrads, convParamGradsColumns, convInputGrads };
}

export type RangePasses = ReturnType<typeof rangePasses>;

/** Whether the weight gradient of a convolution is computed by dot products rather than a packed
 *  product: both g and colT run along positions, so with few filters or a small patch dot products
 *  beat packing. */
function paramGradsByDots(filters: number, patch: number, positions: number): boolean {
  return positions >= 32 && 20 * (filters + patch) > filters * patch;
}

/** The geometry stored in a parallel task's args (see parallel.ts). */
function argsGeometry(a: Int32Array): WindowGeometry {
  const o = GEOMETRY_ARG;
  return {
    channels: a[o], height: a[o + 1], width: a[o + 2], kernelH: a[o + 3], kernelW: a[o + 4], strideH: a[o + 5],
    strideW: a[o + 6], padTop: a[o + 7], padLeft: a[o + 8], outHeight: a[o + 9], outWidth: a[o + 10],
  };
}

function setArgsGeometry(a: Int32Array, g: WindowGeometry): void {
  const o = GEOMETRY_ARG;
  a[o] = g.channels; a[o + 1] = g.height; a[o + 2] = g.width; a[o + 3] = g.kernelH; a[o + 4] = g.kernelW;
  a[o + 5] = g.strideH; a[o + 6] = g.strideW; a[o + 7] = g.padTop; a[o + 8] = g.padLeft; a[o + 9] = g.outHeight;
  a[o + 10] = g.outWidth;
}

/** Floats of one sample's patch matrix (the per-thread area of the convolution tasks). */
const patchFloats = (g: WindowGeometry): number => g.channels * g.kernelH * g.kernelW * g.outHeight * g.outWidth;

/**
 * One range of a parallel task (parallel.ts), on a helper thread: the same passes the calling thread
 * runs on its own range. `work`: this thread's GEMM work area; `area`: its scratch area (one
 * sample's patches or dColT), both byte addresses in the shared memory; `fresh`: whether it is the
 * thread's first range of the task (a product's later ranges reuse what the first packed).
 */
export function runRangeTask(
  w: KernelExports,
  p: RangePasses,
  task: number,
  a: Int32Array,
  f: Float64Array,
  r0: number,
  r1: number,
  work: number,
  area: number,
  fresh = true,
): void {
  switch (task) {
    case TASK_GEMM:
    case TASK_GEMM_COLUMNS:
      gemmRange(w, a, task === TASK_GEMM_COLUMNS, r0, r1, work, fresh);
      return;
    case TASK_SGD:
      w.sgd_update(a[0], a[1], a[2], r0, r1, f[0], f[1], f[2], a[3]);
      return;
    case TASK_SGD_BLOCKS:
      w.sgd_update_blocks(a[0], a[1], a[2], a[4], a[5], r0, r1, f[0], f[1], f[2], a[3]);
      return;
    case TASK_ADAM_BLOCKS:
      w.adam_update_blocks(a[0], a[1], a[2], a[3], a[5], a[6], r0, r1, f[0], f[1], f[2], f[3], f[4], a[4], f[5], f[6]);
      return;
    case TASK_ADAM:
      w.adam_update(a[0], a[1], a[2], a[3], r0, r1, f[0], f[1], f[2], f[3], f[4], a[4], f[5], f[6]);
      return;
    case TASK_ADD_GRADS:
      addGradSlots(w, a, r0, r1);
      return;
    case TASK_SUM_SQUARES:
      w.sum_squares_blocks(a[0], a[1], r0, r1, a[2]);
      return;
    case TASK_RELU:
      w.relu(a[0] + 4 * r0, r1 - r0);
      return;
    case TASK_RELU_BACKWARD:
      w.relu_backward(a[0] + 4 * r0, a[1] + 4 * r0, r1 - r0);
      return;
    case TASK_MAX_POOL:
      w.max_pool_2x2(a[0], a[1], a[2], r0, r1, a[3], a[4], a[5], a[6]);
      return;
    case TASK_MAX_POOL_BACKWARD:
      w.max_pool_backward(a[0], a[1], a[2], r0 * a[4], r1 * a[4], r0 * a[3], r1 * a[3]);
      return;
    case TASK_CONV_FORWARD: {
      const g = argsGeometry(a);
      // Kept patches go to each sample's own place; otherwise to this thread's area (the pass puts
      // one sample's patches one patch matrix past the scratch start).
      const scratchAt = a[5] !== 0 ? a[4] : area - 4 * patchFloats(g);
      p.convForward(a[0], a[1], a[2], a[3], scratchAt, a[5] !== 0, a[6], g, r0, r1, work);
      return;
    }
    case TASK_CONV_PARAM_GRADS:
      p.convParamGrads(a[0], a[1], a[2], a[3], true, 0, a[6], a[7], argsGeometry(a), r0, r1, work);
      return;
    case TASK_CONV_PARAM_GRADS_COLUMNS:
      p.convParamGradsColumns(a[0], a[1], a[2], a[3], a[6], a[7], argsGeometry(a), r0, r1, work);
      return;
    case TASK_CONV_INPUT_GRADS:
      p.convInputGrads(a[0], a[1], a[2], area, a[7], argsGeometry(a), r0, r1, work);
      return;
    default:
      throw new Error(`runRangeTask: unknown task ${task}`);
  }
}

/** Adds the gradient slots of a data-parallel batch's chunks into the model's gradients, values
 *  [i0, i1), slot after slot (TASK_ADD_GRADS's arguments: model grads, slot count, each slot). */
export function addGradSlots(w: KernelExports, args: Int32Array, i0: number, i1: number): void {
  const slots = args[1];
  for (let r = 0; r < slots; r++) w.add_floats(args[0], args[2 + r], i0, i1);
}

/**
 * Range [r0, r1) of a split product (TASK_GEMM: rows of C; TASK_GEMM_COLUMNS: columns), with the
 * work around it on the same rows or columns (see the kernels' gemm): A's prologue on A's columns
 * r0..r1 (C's rows: A is stored [k, m], transposed), the bias copied into C's block, the product
 * accumulated onto it, relu on the block. args as TASK_GEMM (parallel.ts). The operand every range
 * shares (all of A by columns, all of B by rows) is packed once per thread and task: `fresh` for the
 * thread's first range, which packs it and keeps it in `work`; the later ones reuse it (gemm_keep).
 */
export function gemmRange(w: KernelExports, a: Int32Array, byColumns: boolean, r0: number, r1: number, work: number, fresh: boolean): void {
  const c = a[6], ldc = a[7], k = a[8], n = a[9], m = a[11], bias = a[12];
  const acc = bias !== 0 ? 1 : a[10];
  if (!byColumns && a[14] !== 0) w.relu_backward_rows(a[14] + 4 * r0, a[0] + 4 * r0, a[2], 0, k, r1 - r0);
  if (!byColumns && a[15] !== 0) w.sum_rows(a[0], a[15], k, a[2], r0, r1);
  if (byColumns) {
    if (bias !== 0) w.copy_rows(c + 4 * r0, ldc, 0, m, r1 - r0, bias + 4 * r0);
    gemmColumns(w, a[0], a[1], a[2], a[3], a[4], a[5], c, ldc, m, k, acc, r0, r1, work, fresh ? 1 : 2);
    if (a[13] !== 0) w.relu_rows(c + 4 * r0, ldc, 0, m, r1 - r0);
  } else {
    if (bias !== 0) w.copy_rows(c, ldc, r0, r1, n, bias);
    w.gemm_keep(a[0], a[1], a[2], a[3], a[4], a[5], c, ldc, r0, r1, k, n, acc, work, fresh ? 3 : 4);
    if (a[13] !== 0) w.relu_rows(c, ldc, r0, r1, n);
  }
}

/** Columns [j0, j1) of the product C = A·B over all m rows: B and C start j0 columns in. Each
 *  value is computed as in a call over all columns. `keep`: gemm_keep's mode for A. */
function gemmColumns(
  w: KernelExports,
  a: number, aRow: number, aCol: number, b: number, bRow: number, bCol: number, c: number, ldc: number,
  m: number, k: number, acc: number, j0: number, j1: number, work: number, keep: number,
): void {
  w.gemm_keep(a, aRow, aCol, b + 4 * j0 * bCol, bRow, bCol, c + 4 * j0, ldc, 0, m, k, j1 - j0, acc, work, keep);
}

/** Products with fewer multiply-adds than this stay on one thread (waking helpers costs more). */
const PARALLEL_MIN_MACS = 1 << 17;
/** Elementwise and optimizer passes over fewer values than this stay on one thread. */
const PARALLEL_MIN_VALUES = 1 << 15;
/** The smallest extra range (parallel.ts: chunkBounds) of an elementwise pass, in values: cutting
 *  one costs nothing but a claim. */
export const VALUE_PIECE = 4096;
/** The smallest extra range of a product split by rows: each range packs all of B again, which a
 *  range of 64 rows or more amortizes over 64 multiply-adds per packed value. (A product split by
 *  columns packs all of A for each range: it is cut into one range per thread only.) */
export const ROW_PIECE = 64;

/** The arena address of a parameter layout for `count` values, or -1 when there is none to follow
 *  (absent, outside the arena, or for another count of values). */
function blocksAddress(blocks: ParamBlocks | null | undefined, count: number): number {
  if (!blocks || blocks.length < 3) return -1;
  const last = blocks.length - 3;
  if (blocks[last] + blocks[last + 1] * blocks[last + 2] !== count) return -1;
  return arenaAddressInt32(blocks);
}

/** A dense layer's weight gradient (matmulTransA, [units, in]) is split by rows into one run per
 *  thread (cut at the threads' shares), the units whose outputs the thread computes in the forward
 *  product (split by columns the same way) and whose weights it updates (ParamBlocks), when an even
 *  split would give each thread this many. */
const UNIT_ROWS_MIN = 16;

/** The executor to split an elementwise pass over `count` values, if any. */
function valueSplitter(count: number): ParallelExecutor | null {
  return count >= PARALLEL_MIN_VALUES ? parallelExecutor() : null;
}

/** The executor to split a call of `macs` multiply-adds over `total` ranges' worth of rows, if any. */
function splitter(macs: number, total: number, minTotal: number): ParallelExecutor | null {
  const ex = parallelExecutor();
  return ex !== null && macs >= PARALLEL_MIN_MACS && total >= minTotal ? ex : null;
}

/**
 * The WebAssembly kernels, falling back to `js` call by call. Nothing is compiled or allocated until
 * a call meets arena arrays; without WebAssembly every call goes to `js`.
 */
export function createWasmKernels(js: Kernels): Kernels {
  let w: KernelExports = null!;
  let p: RangePasses = null!;
  let workAt = -1;
  let state: "new" | "ready" | "failed" = "new";
  /** Compiles and instantiates on first use, with this thread's GEMM work area (kept for the life
   *  of the kernels: this closure holds the view, so the block is never recycled). */
  let work: Float32Array | null = null;
  const ready = (): boolean => {
    if (state === "new") {
      const exports = kernelExports();
      work = exports ? allocFloat32(exports.gemm_work_bytes() / 4) : null;
      workAt = work ? arenaAddress(work) : -1;
      state = exports && workAt >= 0 ? "ready" : "failed";
      if (exports) {
        w = exports;
        p = rangePasses(exports);
      }
    }
    return state === "ready";
  };
  const stageA = new Staging();
  const stageB = new Staging();
  const stageC = new Staging();
  /**
   * w.gemm over rows [0, m) with what a dense layer does around it: `bias` (an address, 0: none)
   * copied into C first, relu applied to C after (`relu`); before, with `reluOf` (y's address),
   * A ([k, m], stored transposed) multiplied by relu's derivative at y in place, and with `sums`
   * its column sums written there. Split over the executor's threads when it is large enough: by
   * rows when there are at least as many rows as columns, else by columns (every thread packs the
   * operand whose slices it does not split, so the smaller one is the one to pack in full); with
   * `unitRows` (a weight gradient, [units, in]) by rows into one even run per thread. Each thread
   * does the work around the product on its own rows or columns (gemmRange).
   */
  const gemm = (
    a: number, aRow: number, aCol: number, b: number, bRow: number, bCol: number, c: number, ldc: number, m: number, k: number, n: number,
    acc: number, unitRows = false, bias = 0, relu = false, reluOf = 0, sums = 0,
  ): void => {
    const evenRows = unitRows && m >= UNIT_ROWS_MIN * (parallelExecutor()?.threads ?? 1);
    const byColumns = m < n && !evenRows;
    const ex = splitter(m * k * n, byColumns ? n : m, 16);
    // A's prologue runs by A's columns, which are C's rows: on one thread unless split by rows.
    if ((!ex || byColumns) && (reluOf !== 0 || sums !== 0)) {
      if (reluOf !== 0) w.relu_backward(reluOf, a, k * m);
      if (sums !== 0) w.sum_rows(a, sums, k, m, 0, m);
      reluOf = sums = 0;
    }
    if (!ex) {
      if (bias !== 0) w.copy_rows(c, ldc, 0, m, n, bias);
      w.gemm(a, aRow, aCol, b, bRow, bCol, c, ldc, 0, m, k, n, bias !== 0 ? 1 : acc, workAt);
      if (relu) w.relu_rows(c, ldc, 0, m, n);
      return;
    }
    const args = ex.args;
    args[0] = a; args[1] = aRow; args[2] = aCol; args[3] = b; args[4] = bRow; args[5] = bCol; args[6] = c; args[7] = ldc;
    args[8] = k; args[9] = n; args[10] = acc; args[11] = m; args[12] = bias; args[13] = relu ? 1 : 0; args[14] = reluOf; args[15] = sums;
    ex.start(byColumns ? TASK_GEMM_COLUMNS : TASK_GEMM, byColumns ? n : m, 8, 0, byColumns || evenRows ? 0 : ROW_PIECE);
    try {
      while (ex.claim()) gemmRange(w, args, byColumns, ex.from, ex.to, workAt, ex.fresh);
    } finally {
      ex.finish();
    }
  };
  /** Float64 block sums of sumSquares (grown as needed; the Float32Array keeps the arena block). */
  let partials: Float32Array | null = null;
  let partials64: Float64Array | null = null;
  const partialsFor = (blocks: number): number => {
    if (!partials || partials.length < 2 * blocks) {
      partials = allocFloat32(2 * blocks);
      partials64 = new Float64Array(partials.buffer, partials.byteOffset, blocks);
    }
    return arenaAddress(partials);
  };
  const im2col = (image: number, col: number, g: WindowGeometry): void =>
    w.im2col(image, col, g.channels, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padTop, g.padLeft, g.outHeight, g.outWidth);
  const col2im = (col: number, image: number, g: WindowGeometry): void =>
    w.col2im(col, image, g.channels, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padTop, g.padLeft, g.outHeight, g.outWidth);
  /** Whether the last conv2d on a scratch kept its patches in the transposed layout. */
  const transposedPatches = new WeakMap<Floats, boolean>();


  return {
    ...js,

    matmul(a, b, c, m, k, n, bias) {
      const cAt = arenaAddress(c);
      const aAt = cAt < 0 ? -1 : stageA.address(a, m * k);
      const bAt = aAt < 0 ? -1 : stageB.address(b, k * n);
      const biasAt = bAt < 0 || !bias ? 0 : stageC.address(bias, n);
      if (biasAt < 0 || bAt < 0 || !ready()) return js.matmul(a, b, c, m, k, n, bias);
      gemm(aAt, k, 1, bAt, n, 1, cAt, n, m, k, n, 0, false, biasAt);
    },

    matmulTransA(a, b, c, m, k, n, reluOf, sums) {
      const cAt = arenaAddress(c);
      // A changed in place (reluOf) must be the caller's own array, not a staged copy.
      const aAt = cAt < 0 ? -1 : reluOf ? arenaAddress(a) : stageA.address(a, k * m);
      const bAt = aAt < 0 ? -1 : stageB.address(b, k * n);
      const yAt = bAt < 0 || !reluOf ? 0 : arenaAddress(reluOf);
      const sumsAt = yAt < 0 || !sums ? 0 : arenaAddress(sums);
      if (sumsAt < 0 || yAt < 0 || bAt < 0 || !ready()) return js.matmulTransA(a, b, c, m, k, n, reluOf, sums);
      gemm(aAt, 1, m, bAt, n, 1, cAt, n, m, k, n, 0, true, 0, false, yAt, sumsAt);
    },

    matmulTransB(a, b, c, m, k, n, bias, relu) {
      const cAt = arenaAddress(c);
      const aAt = cAt < 0 ? -1 : stageA.address(a, m * k);
      const bAt = aAt < 0 ? -1 : stageB.address(b, n * k);
      const biasAt = bAt < 0 || !bias ? 0 : stageC.address(bias, n);
      if (biasAt < 0 || bAt < 0 || !ready()) return js.matmulTransB(a, b, c, m, k, n, bias, relu);
      gemm(aAt, k, 1, bAt, 1, k, cAt, n, m, k, n, 0, false, biasAt, relu === true);
    },

    sumRows(a, out, m, n) {
      const outAt = m * n < SMALL_COUNT ? -1 : arenaAddress(out);
      const aAt = outAt < 0 ? -1 : arenaAddress(a);
      if (aAt < 0 || !ready()) return js.sumRows(a, out, m, n);
      w.sum_rows(aAt, outAt, m, n, 0, n);
    },

    im2col(input, offset, col, colOffset, g) {
      const colAt = arenaAddress(col);
      const inAt = colAt < 0 ? -1 : arenaAddress(input);
      if (inAt < 0 || !ready()) return js.im2col(input, offset, col, colOffset, g);
      im2col(inAt + 4 * offset, colAt + 4 * colOffset, g);
    },

    col2im(col, colOffset, inputGrad, offset, g) {
      const gradAt = arenaAddress(inputGrad);
      const colAt = gradAt < 0 ? -1 : arenaAddress(col);
      if (colAt < 0 || !ready()) return js.col2im(col, colOffset, inputGrad, offset, g);
      col2im(colAt + 4 * colOffset, gradAt + 4 * offset, g);
    },

    // The same scratch size as the JS kernels: the gradient of one sample's patches, then the
    // patches of one sample or of every kept one. The WebAssembly convolution stores each sample's
    // patches transposed, [K, positions] (im2col_t): with stride 1 every output row's stretch is
    // then a contiguous copy of an input row, and the forward product needs no transposition.
    conv2dScratchSize: js.conv2dScratchSize,

    conv2d(input, weight, bias, output, rows, filters, g, scratch, keepPatches) {
      const patch = g.channels * g.kernelH * g.kernelW;
      const inSize = g.channels * g.height * g.width;
      const outAt = arenaAddress(output);
      const scratchAt = outAt < 0 ? -1 : arenaAddress(scratch);
      const weightAt = scratchAt < 0 ? -1 : stageB.address(weight, filters * patch);
      const biasAt = weightAt < 0 ? -1 : stageC.address(bias, filters);
      const inAt = biasAt < 0 ? -1 : stageA.address(input, rows * inSize);
      const wasm = inAt >= 0 && g.outHeight * g.outWidth > 0 && ready();
      transposedPatches.set(scratch, wasm && keepPatches);
      if (!wasm) return js.conv2d(input, weight, bias, output, rows, filters, g, scratch, keepPatches);
      const ex = splitter(rows * filters * patchFloats(g), rows, 2);
      if (!ex) return p.convForward(inAt, weightAt, biasAt, outAt, scratchAt, keepPatches, filters, g, 0, rows, workAt);
      const args = ex.args;
      args[0] = inAt; args[1] = weightAt; args[2] = biasAt; args[3] = outAt; args[4] = scratchAt; args[5] = keepPatches ? 1 : 0;
      args[6] = filters;
      setArgsGeometry(args, g);
      ex.start(TASK_CONV_FORWARD, rows, 1, keepPatches ? 0 : patchFloats(g));
      try {
        while (ex.claim()) p.convForward(inAt, weightAt, biasAt, outAt, scratchAt, keepPatches, filters, g, ex.from, ex.to, workAt);
      } finally {
        ex.finish();
      }
    },

    /** The dense products (in SIMD they are faster than the JS kernel's walk over the non-zeros of
     *  the output gradient): weight and bias gradients, then input gradients. */
    conv2dBackward(input, weight, gradOutput, weightGrad, biasGrad, inputGrad, rows, filters, g, scratch, patchesKept) {
      const patch = g.channels * g.kernelH * g.kernelW;
      const inSize = g.channels * g.height * g.width;
      // Kept patches are only usable in the layout they were kept in (the JS kernels keep them
      // [positions, K]); otherwise they are computed again from the input.
      const keptHere = patchesKept && transposedPatches.get(scratch) === true;
      const wGradAt = arenaAddress(weightGrad);
      const bGradAt = wGradAt < 0 ? -1 : arenaAddress(biasGrad);
      const inGradAt = bGradAt < 0 || !inputGrad ? 0 : arenaAddress(inputGrad);
      const scratchAt = bGradAt < 0 || inGradAt < 0 ? -1 : arenaAddress(scratch);
      const gradAt = scratchAt < 0 ? -1 : stageA.address(gradOutput, rows * filters * g.outHeight * g.outWidth);
      const weightAt = gradAt < 0 ? -1 : stageB.address(weight, filters * patch);
      // The input is only read when the patches were not kept.
      const inAt = weightAt < 0 ? -1 : keptHere ? 0 : stageC.address(input, rows * inSize);
      if (inAt < 0 || g.outHeight * g.outWidth === 0 || !ready()) {
        const keptForJs = patchesKept && !transposedPatches.get(scratch);
        return js.conv2dBackward(input, weight, gradOutput, weightGrad, biasGrad, inputGrad, rows, filters, g, scratch, keptForJs);
      }
      const macs = rows * filters * patchFloats(g);
      // Weight and bias gradients by filters: only with kept patches (otherwise every thread would
      // compute each sample's patches again, into the one area scratch has for them).
      // The packed product splits by weight columns (see convParamGradsColumns), dot products by
      // filters.
      const byColumns = !paramGradsByDots(filters, patch, g.outHeight * g.outWidth);
      const exParams = keptHere ? splitter(macs, byColumns ? patch : filters, byColumns ? 16 : 8) : null;
      if (!exParams) p.convParamGrads(gradAt, wGradAt, bGradAt, scratchAt, keptHere, inAt, rows, filters, g, 0, filters, workAt);
      else {
        const args = exParams.args;
        args[0] = gradAt; args[1] = wGradAt; args[2] = bGradAt; args[3] = scratchAt; args[6] = rows; args[7] = filters;
        setArgsGeometry(args, g);
        if (byColumns) {
          exParams.start(TASK_CONV_PARAM_GRADS_COLUMNS, patch, 8, 0);
          try {
            while (exParams.claim()) p.convParamGradsColumns(gradAt, wGradAt, bGradAt, scratchAt, rows, filters, g, exParams.from, exParams.to, workAt);
          } finally {
            exParams.finish();
          }
        } else {
          exParams.start(TASK_CONV_PARAM_GRADS, filters, 4, 0);
          try {
            while (exParams.claim()) p.convParamGrads(gradAt, wGradAt, bGradAt, scratchAt, true, 0, rows, filters, g, exParams.from, exParams.to, workAt);
          } finally {
            exParams.finish();
          }
        }
      }
      if (!inputGrad) return;
      // dColT of one sample goes where the JS kernels keep dCol: the start of scratch (on helper
      // threads, into an area of their own).
      const ex = splitter(macs, rows, 2);
      if (!ex) return p.convInputGrads(gradAt, weightAt, inGradAt, scratchAt, filters, g, 0, rows, workAt);
      const args = ex.args;
      args[0] = gradAt; args[1] = weightAt; args[2] = inGradAt; args[7] = filters;
      setArgsGeometry(args, g);
      ex.start(TASK_CONV_INPUT_GRADS, rows, 1, patchFloats(g));
      try {
        while (ex.claim()) p.convInputGrads(gradAt, weightAt, inGradAt, scratchAt, filters, g, ex.from, ex.to, workAt);
      } finally {
        ex.finish();
      }
    },

    /** WebAssembly for 2×2 windows with stride 2 and no padding (the usual pooling); the JS kernel
     *  for any other window. */
    maxPool2d(input, output, argmax, rows, g) {
      const pairs = g.kernelH === 2 && g.kernelW === 2 && g.strideH === 2 && g.strideW === 2 && g.padTop === 0 && g.padLeft === 0;
      const fits = 2 * g.outHeight <= g.height && 2 * g.outWidth <= g.width;
      const outAt = pairs && fits ? arenaAddress(output) : -1;
      const argmaxAt = outAt < 0 ? -1 : arenaAddressInt32(argmax);
      const inAt = argmaxAt < 0 ? -1 : stageA.address(input, rows * g.channels * g.height * g.width);
      if (inAt < 0 || !ready()) return js.maxPool2d(input, output, argmax, rows, g);
      const planes = rows * g.channels;
      const ex = valueSplitter(planes * g.outHeight * g.outWidth);
      if (!ex || planes < 2) return w.max_pool_2x2(inAt, outAt, argmaxAt, 0, planes, g.height, g.width, g.outHeight, g.outWidth);
      const args = ex.args;
      args[0] = inAt; args[1] = outAt; args[2] = argmaxAt; args[3] = g.height; args[4] = g.width; args[5] = g.outHeight;
      args[6] = g.outWidth;
      ex.start(TASK_MAX_POOL, planes, 1, 0, Math.ceil(VALUE_PIECE / (g.outHeight * g.outWidth)));
      try {
        while (ex.claim()) w.max_pool_2x2(inAt, outAt, argmaxAt, ex.from, ex.to, g.height, g.width, g.outHeight, g.outWidth);
      } finally {
        ex.finish();
      }
    },

    maxPool2dBackward(gradOutput, argmax, inputGrad, rows, g) {
      const gradAt = arenaAddress(inputGrad);
      const argmaxAt = gradAt < 0 ? -1 : arenaAddressInt32(argmax);
      const count = rows * g.channels * g.outHeight * g.outWidth;
      const outAt = argmaxAt < 0 ? -1 : stageA.address(gradOutput, count);
      if (outAt < 0 || !ready()) return js.maxPool2dBackward(gradOutput, argmax, inputGrad, rows, g);
      const planes = rows * g.channels;
      const inPlane = g.height * g.width;
      const outPlane = g.outHeight * g.outWidth;
      const ex = valueSplitter(planes * inPlane);
      if (!ex || planes < 2) return w.max_pool_backward(outAt, argmaxAt, gradAt, 0, count, 0, planes * inPlane);
      const args = ex.args;
      args[0] = outAt; args[1] = argmaxAt; args[2] = gradAt; args[3] = inPlane; args[4] = outPlane;
      ex.start(TASK_MAX_POOL_BACKWARD, planes, 1, 0, Math.ceil(VALUE_PIECE / inPlane));
      try {
        while (ex.claim()) w.max_pool_backward(outAt, argmaxAt, gradAt, ex.from * outPlane, ex.to * outPlane, ex.from * inPlane, ex.to * inPlane);
      } finally {
        ex.finish();
      }
    },

    relu(x, count) {
      const at = count < SMALL_COUNT ? -1 : arenaAddress(x);
      if (at < 0 || !ready()) return js.relu(x, count);
      const ex = valueSplitter(count);
      if (!ex) return w.relu(at, count);
      ex.args[0] = at;
      ex.start(TASK_RELU, count, 16, 0, VALUE_PIECE);
      try {
        while (ex.claim()) w.relu(at + 4 * ex.from, ex.to - ex.from);
      } finally {
        ex.finish();
      }
    },

    reluBackward(y, grad, count) {
      const gradAt = count < SMALL_COUNT ? -1 : arenaAddress(grad);
      const yAt = gradAt < 0 ? -1 : arenaAddress(y);
      if (yAt < 0 || !ready()) return js.reluBackward(y, grad, count);
      const ex = valueSplitter(count);
      if (!ex) return w.relu_backward(yAt, gradAt, count);
      ex.args[0] = yAt; ex.args[1] = gradAt;
      ex.start(TASK_RELU_BACKWARD, count, 16, 0, VALUE_PIECE);
      try {
        while (ex.claim()) w.relu_backward(yAt + 4 * ex.from, gradAt + 4 * ex.from, ex.to - ex.from);
      } finally {
        ex.finish();
      }
    },

    tanhBackward(y, grad, count) {
      const gradAt = count < SMALL_COUNT ? -1 : arenaAddress(grad);
      const yAt = gradAt < 0 ? -1 : arenaAddress(y);
      if (yAt < 0 || !ready()) return js.tanhBackward(y, grad, count);
      w.tanh_backward(yAt, gradAt, count);
    },

    sigmoidBackward(y, grad, count) {
      const gradAt = count < SMALL_COUNT ? -1 : arenaAddress(grad);
      const yAt = gradAt < 0 ? -1 : arenaAddress(y);
      if (yAt < 0 || !ready()) return js.sigmoidBackward(y, grad, count);
      w.sigmoid_backward(yAt, gradAt, count);
    },

    sumSquares(a, count) {
      const at = count < SMALL_COUNT ? -1 : arenaAddress(a);
      if (at < 0 || !ready()) return js.sumSquares(a, count);
      const block = w.squares_block();
      const blocks = Math.ceil(count / block);
      const outAt = partialsFor(blocks);
      if (outAt < 0) return js.sumSquares(a, count);
      const ex = valueSplitter(count);
      if (!ex || blocks < 2) w.sum_squares_blocks(at, count, 0, blocks, outAt);
      else {
        ex.args[0] = at; ex.args[1] = count; ex.args[2] = outAt;
        ex.start(TASK_SUM_SQUARES, blocks, 1, 0, Math.ceil(VALUE_PIECE / block));
        try {
          while (ex.claim()) w.sum_squares_blocks(at, count, ex.from, ex.to, outAt);
        } finally {
          ex.finish();
        }
      }
      // The blocks in order: the same sum however the blocks were shared out.
      const p = partials64!;
      let sum = 0;
      for (let b = 0; b < blocks; b++) sum += p[b];
      return sum;
    },

    scale(a, count, factor) {
      const at = count < SMALL_COUNT ? -1 : arenaAddress(a);
      if (at < 0 || !ready()) return js.scale(a, count, factor);
      w.scale_floats(at, 0, count, factor);
    },

    sgdUpdate(params, grads, velocity, count, lr, momentum, decay, nesterov, blocks) {
      const wAt = count < SMALL_COUNT ? -1 : arenaAddress(params);
      const gAt = wAt < 0 ? -1 : arenaAddress(grads);
      const vAt = gAt < 0 ? -1 : arenaAddress(velocity);
      if (vAt < 0 || !ready()) return js.sgdUpdate(params, grads, velocity, count, lr, momentum, decay, nesterov);
      const ex = valueSplitter(count);
      if (!ex) return w.sgd_update(wAt, gAt, vAt, 0, count, lr, momentum, decay, nesterov ? 1 : 0);
      const blocksAt = blocksAddress(blocks, count);
      const args = ex.args;
      args[0] = wAt; args[1] = gAt; args[2] = vAt; args[3] = nesterov ? 1 : 0;
      const f = ex.fargs;
      f[0] = lr; f[1] = momentum; f[2] = decay;
      if (blocksAt >= 0) {
        args[4] = blocksAt; args[5] = blocks!.length / 3;
        ex.start(TASK_SGD_BLOCKS, SHARE_ONE, 1, 0);
      } else ex.start(TASK_SGD, count, 16, 0, VALUE_PIECE);
      try {
        while (ex.claim()) {
          if (blocksAt >= 0) runRangeTask(w, p, TASK_SGD_BLOCKS, args, f, ex.from, ex.to, workAt, 0);
          else w.sgd_update(wAt, gAt, vAt, ex.from, ex.to, lr, momentum, decay, nesterov ? 1 : 0);
        }
      } finally {
        ex.finish();
      }
    },

    adamUpdate(params, grads, expAvg, expAvgSq, count, s, blocks) {
      const wAt = count < SMALL_COUNT ? -1 : arenaAddress(params);
      const gAt = wAt < 0 ? -1 : arenaAddress(grads);
      const mAt = gAt < 0 ? -1 : arenaAddress(expAvg);
      const vAt = mAt < 0 ? -1 : arenaAddress(expAvgSq);
      if (vAt < 0 || !ready()) return js.adamUpdate(params, grads, expAvg, expAvgSq, count, s);
      const decoupled = s.decoupled ? 1 : 0;
      const ex = valueSplitter(count);
      if (!ex) return w.adam_update(wAt, gAt, mAt, vAt, 0, count, s.beta1, s.beta2, s.eps, s.l2, s.shrink, decoupled, s.stepSize, s.correction2);
      const args = ex.args;
      args[0] = wAt; args[1] = gAt; args[2] = mAt; args[3] = vAt; args[4] = decoupled;
      const f = ex.fargs;
      f[0] = s.beta1; f[1] = s.beta2; f[2] = s.eps; f[3] = s.l2; f[4] = s.shrink; f[5] = s.stepSize; f[6] = s.correction2;
      const blocksAt = blocksAddress(blocks, count);
      if (blocksAt >= 0) {
        args[5] = blocksAt; args[6] = blocks!.length / 3;
        ex.start(TASK_ADAM_BLOCKS, SHARE_ONE, 1, 0);
      } else ex.start(TASK_ADAM, count, 16, 0, VALUE_PIECE);
      try {
        while (ex.claim()) {
          if (blocksAt >= 0) runRangeTask(w, p, TASK_ADAM_BLOCKS, args, f, ex.from, ex.to, workAt, 0);
          else w.adam_update(wAt, gAt, mAt, vAt, ex.from, ex.to, s.beta1, s.beta2, s.eps, s.l2, s.shrink, decoupled, s.stepSize, s.correction2);
        }
      } finally {
        ex.finish();
      }
    },
  };
}
