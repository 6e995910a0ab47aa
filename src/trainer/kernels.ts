// The numeric kernels every layer calls: matrix multiplies, convolution, pooling and elementwise
// activations. They are kept together, behind the `Kernels` interface, because this is where the
// time goes, and so that the WebAssembly SIMD versions slot in without touching the layers.
//
// All matrices are dense and row-major; a batch of images is [rows, C, H, W]. Kernels take explicit
// sizes and only touch the first values of their buffers that those sizes cover, so a layer can keep
// one buffer sized for the largest batch and reuse it for smaller ones without slicing (no
// allocation per step).
//
// This file holds the interface and the plain TypeScript kernels, `jsKernels`, which are the
// reference: wasm/ implements the same interface in WebAssembly SIMD (`wasmKernels`), and `kernels`
// is whichever of the two is switched on (setKernels).
//
// In the JS kernels every multiply, transposed or not, is one register-tiled kernel (see gemm).
// Convolution is im2col + that kernel, one sample at a time; the patches of a training batch may be kept from
// forward to backward (see conv2dScratchSize).
import { createWasmKernels } from "./wasm/wasm-kernels.js";

/** Parameter and activation storage: float32 for training, float64 for gradient checks. */
export type Floats = Float32Array | Float64Array;

/**
 * Where a 2-D sliding window (a convolution kernel or a pooling window) goes over one [C, H, W]
 * input: window (oy, ox) covers input rows oy*strideH - padTop + [0, kernelH) and columns
 * ox*strideW - padLeft + [0, kernelW); positions outside the input are padding.
 */
export interface WindowGeometry {
  /** Input channels. */
  channels: number;
  /** Input height and width. */
  height: number;
  width: number;
  kernelH: number;
  kernelW: number;
  strideH: number;
  strideW: number;
  /** Padding before the first row and column (the rest of the padding is after the last ones). */
  padTop: number;
  padLeft: number;
  outHeight: number;
  outWidth: number;
}

export interface Kernels {
  /** C[m×n] = A[m×k] · B[k×n], plus `bias[n]` added to every row when given (a dense layer's input
   *  gradients: output grads · weights). */
  matmul(a: Floats, b: Floats, c: Floats, m: number, k: number, n: number, bias: Floats | null): void;
  /** C[m×n] = Aᵀ · B, where A is [k×m] and B is [k×n] (a dense layer's weight gradients: output
   *  gradsᵀ · inputs). With `reluOf` (y, [k×m] like A), A is first multiplied in place by relu's
   *  derivative at y, as reluBackward(y, A, k·m) does; with `sums`, the column sums of A (after
   *  that) are written to sums[m], as sumRows(A, sums, k, m) does (a relu dense layer's backward). */
  matmulTransA(a: Floats, b: Floats, c: Floats, m: number, k: number, n: number, reluOf?: Floats | null, sums?: Floats | null): void;
  /** C[m×n] = A · Bᵀ, where A is [m×k] and B is [n×k] (a dense layer's outputs: inputs · weightsᵀ),
   *  plus `bias[n]` added to every row when given, then relu applied to C when `relu` (as
   *  relu(C, m·n) does). */
  matmulTransB(a: Floats, b: Floats, c: Floats, m: number, k: number, n: number, bias?: Floats | null, relu?: boolean): void;
  /** out[j] = Σ_i a[i×n + j] over m rows (bias gradients). */
  sumRows(a: Floats, out: Floats, m: number, n: number): void;

  // Convolution. `weight` is PyTorch's [filters, C, kH, kW], i.e. [filters, K] with K = C·kH·kW.
  // Patches are stored patch-major: row q = oy·outWidth + ox of a [outHeight·outWidth, K] matrix
  // holds the K input values window q covers (0 for padding).
  /** The patches of the image at input[offset..], into col[colOffset, colOffset + oH·oW·K). */
  im2col(input: Floats, offset: number, col: Floats, colOffset: number, g: WindowGeometry): void;
  /** The adjoint of im2col: adds each value of the patch matrix at col[colOffset..] into the image
   *  position it was read from, at inputGrad[offset..]. Padding positions are dropped. */
  col2im(col: Floats, colOffset: number, inputGrad: Floats, offset: number, g: WindowGeometry): void;
  /** How many values of scratch conv2d and conv2dBackward need for this geometry, when forward
   *  keeps the patches of up to `keptRows` samples for backward (0: patches are recomputed). */
  conv2dScratchSize(g: WindowGeometry, keptRows: number): number;
  /** output[rows, filters, oH, oW] = weight ⊛ input[rows, C, H, W] + bias[filters]. With
   *  `keepPatches` (rows at most the scratch's keptRows) the patches stay in scratch for backward,
   *  in a layout of the implementation's own (the WebAssembly kernels keep them transposed). */
  conv2d(
    input: Floats,
    weight: Floats,
    bias: Floats,
    output: Floats,
    rows: number,
    filters: number,
    g: WindowGeometry,
    scratch: Floats,
    keepPatches: boolean,
  ): void;
  /** Overwrites weightGrad and biasGrad with dLoss/dWeight and dLoss/dBias for gradOutput
   *  [rows, filters, oH, oW]; writes dLoss/dInput into inputGrad unless it is null. `patchesKept`:
   *  the last conv2d on this input and scratch kept its patches, which are used instead of redone. */
  conv2dBackward(
    input: Floats,
    weight: Floats,
    gradOutput: Floats,
    weightGrad: Floats,
    biasGrad: Floats,
    inputGrad: Floats | null,
    rows: number,
    filters: number,
    g: WindowGeometry,
    scratch: Floats,
    patchesKept: boolean,
  ): void;

  // Pooling, channel by channel ([rows, C, H, W] to [rows, C, oH, oW]); padding never takes part.
  /** The largest value of each window; `argmax` receives its index in `input` (the first one on ties;
   *  a NaN wins, so divergence stays visible). */
  maxPool2d(input: Floats, output: Floats, argmax: Int32Array, rows: number, g: WindowGeometry): void;
  /** inputGrad = 0, plus each window's output gradient at its argmax. */
  maxPool2dBackward(gradOutput: Floats, argmax: Int32Array, inputGrad: Floats, rows: number, g: WindowGeometry): void;
  /** The mean of each window over its positions inside the input (padding is not counted). */
  avgPool2d(input: Floats, output: Floats, rows: number, g: WindowGeometry): void;
  avgPool2dBackward(gradOutput: Floats, inputGrad: Floats, rows: number, g: WindowGeometry): void;

  // Activations run in place on the first `count` values. Each backward multiplies the incoming
  // gradient by f'(z), written in terms of the activation's output y = f(z), which the layer keeps;
  // gelu's derivative cannot be, so its backward takes z itself.
  relu(x: Floats, count: number): void;
  reluBackward(y: Floats, grad: Floats, count: number): void;
  /** f(z) = z for z > 0, slope·z otherwise. */
  leakyRelu(x: Floats, count: number, slope: number): void;
  leakyReluBackward(y: Floats, grad: Floats, count: number, slope: number): void;
  /** f(z) = z for z > 0, alpha·(e^z - 1) otherwise; f'(z) = y + alpha there. */
  elu(x: Floats, count: number, alpha: number): void;
  eluBackward(y: Floats, grad: Floats, count: number, alpha: number): void;
  /** The tanh approximation 0.5·z·(1 + tanh(√(2/π)·(z + 0.044715·z³))). */
  gelu(x: Floats, count: number): void;
  geluBackward(z: Floats, grad: Floats, count: number): void;
  tanh(x: Floats, count: number): void;
  tanhBackward(y: Floats, grad: Floats, count: number): void;
  sigmoid(x: Floats, count: number): void;
  sigmoidBackward(y: Floats, grad: Floats, count: number): void;
  /** Row-wise softmax of `rows` rows of `width` values (the max is subtracted first: no overflow). */
  softmax(x: Floats, rows: number, width: number): void;
  /** The Jacobian-vector product of softmax: g_i = y_i·(g_i - Σ_j g_j·y_j), row by row. */
  softmaxBackward(y: Floats, grad: Floats, rows: number, width: number): void;

  // Optimizer loops over the flat parameter buffers (all of the same length and precision).
  /** Σ a_i² over the first `count` values, in double precision (gradient clipping's norm). The JS
   *  kernel adds in order; others may add in another fixed order (same value to rounding). */
  sumSquares(a: Floats, count: number): number;
  /** a_i = a_i·factor (computed in double precision, stored in a's precision). */
  scale(a: Floats, count: number, factor: number): void;
  /** SGD with momentum (optimizers/sgd.ts), in place on params and velocity:
   *  g = grad + decay·w; v = momentum·v + g; w -= lr·(nesterov ? g + momentum·v : v), each value
   *  computed in double precision and stored (so rounded) before it is used again. `blocks`, when
   *  given, is how the values are laid out (ParamBlocks): a kernel that shares the values out over
   *  threads may follow it; every value is updated the same way whoever updates it. */
  sgdUpdate(
    params: Floats, grads: Floats, velocity: Floats, count: number, lr: number, momentum: number, decay: number, nesterov: boolean,
    blocks?: ParamBlocks | null,
  ): void;
  /** Adam (optimizers/adam.ts), in place on params and both moments: with `decoupled` (AdamW)
   *  w = w·shrink first; then g = grad + l2·w; m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g·g;
   *  w -= stepSize·m / (√v / correction2 + eps); each value computed in double precision and stored
   *  (so rounded) before it is used again. `blocks` as for sgdUpdate. */
  adamUpdate(params: Floats, grads: Floats, expAvg: Floats, expAvgSq: Floats, count: number, step: AdamStep, blocks?: ParamBlocks | null): void;
}

/**
 * The layout of a model's flat parameters: three int32 per block (its first value, rows, columns,
 * row-major), the blocks in order and covering every parameter. A dense layer's weights are one
 * block of [units, in] and its bias one of [units, 1]; any other layer's parameters are one column.
 * The optimizer's kernels share the values out over threads by runs of whole rows of each block, as
 * the products share out a dense layer's units, so that each thread updates the weights whose
 * gradients it has just computed and that it reads again first in the next forward pass
 * (wasm/kernels.wat: sgd_update_blocks). In the arena (helper threads read it) for float32 models.
 */
export type ParamBlocks = Int32Array;

/** One Adam step's constants (see Kernels.adamUpdate). */
export interface AdamStep {
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 weight decay added to the gradient (adam); 0 for adamw. */
  l2: number;
  /** adamw's decoupled decay: w is multiplied by this first (1 - lr·decay). */
  shrink: number;
  decoupled: boolean;
  /** lr / (1 - β1^t). */
  stepSize: number;
  /** √(1 - β2^t). */
  correction2: number;
}

/**
 * The one matrix product every multiply and convolution uses:
 *
 *   C[i, j] = (accumulate ? C[i, j] : 0) + Σ_p A(i, p)·B(p, j)   for i < m, j < n, p < k,
 *
 * with A(i, p) = a[aOff + i·aRow + p·aCol], B(p, j) = b[bOff + p·bRow + j·bCol] and C row-major
 * from cOff (rows n apart). The strides express a transposed operand without copying it: A·B has
 * A strides (k, 1); Aᵀ·B with A stored [k, m] has (1, m); A·Bᵀ with B stored [n, k] has B strides
 * (1, k).
 *
 * C is computed in 4×4 tiles whose sixteen sums stay in registers while p runs: each step loads
 * four values of A and four of B for sixteen multiply-adds, about twice as fast in V8 as
 * streaming rows of C through memory. Edges take 4×1, 1×4 and 1×1 tiles. Every value of C adds its
 * terms in the order p = 0, 1, ..., so results do not depend on the tiling.
 */
function gemm(
  a: Floats,
  aOff: number,
  aRow: number,
  aCol: number,
  b: Floats,
  bOff: number,
  bRow: number,
  bCol: number,
  c: Floats,
  cOff: number,
  m: number,
  k: number,
  n: number,
  accumulate: boolean,
): void {
  const m4 = m - (m % 4);
  const n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const a0 = aOff + i * aRow;
    const a1 = a0 + aRow;
    const a2 = a1 + aRow;
    const a3 = a2 + aRow;
    const c0 = cOff + i * n;
    const c1 = c0 + n;
    const c2 = c1 + n;
    const c3 = c2 + n;
    for (let j = 0; j < n4; j += 4) {
      const b0 = bOff + j * bCol;
      const b1 = b0 + bCol;
      const b2 = b1 + bCol;
      const b3 = b2 + bCol;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      if (accumulate) {
        s00 = c[c0 + j]; s01 = c[c0 + j + 1]; s02 = c[c0 + j + 2]; s03 = c[c0 + j + 3];
        s10 = c[c1 + j]; s11 = c[c1 + j + 1]; s12 = c[c1 + j + 2]; s13 = c[c1 + j + 3];
        s20 = c[c2 + j]; s21 = c[c2 + j + 1]; s22 = c[c2 + j + 2]; s23 = c[c2 + j + 3];
        s30 = c[c3 + j]; s31 = c[c3 + j + 1]; s32 = c[c3 + j + 2]; s33 = c[c3 + j + 3];
      }
      for (let p = 0, pa = 0, pb = 0; p < k; p++, pa += aCol, pb += bRow) {
        const x0 = a[a0 + pa];
        const x1 = a[a1 + pa];
        const x2 = a[a2 + pa];
        const x3 = a[a3 + pa];
        const y0 = b[b0 + pb];
        const y1 = b[b1 + pb];
        const y2 = b[b2 + pb];
        const y3 = b[b3 + pb];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
        s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
      }
      c[c0 + j] = s00; c[c0 + j + 1] = s01; c[c0 + j + 2] = s02; c[c0 + j + 3] = s03;
      c[c1 + j] = s10; c[c1 + j + 1] = s11; c[c1 + j + 2] = s12; c[c1 + j + 3] = s13;
      c[c2 + j] = s20; c[c2 + j + 1] = s21; c[c2 + j + 2] = s22; c[c2 + j + 3] = s23;
      c[c3 + j] = s30; c[c3 + j + 1] = s31; c[c3 + j + 2] = s32; c[c3 + j + 3] = s33;
    }
    // The last n % 4 columns of these four rows.
    for (let j = n4; j < n; j++) {
      const bj = bOff + j * bCol;
      let s0 = accumulate ? c[c0 + j] : 0;
      let s1 = accumulate ? c[c1 + j] : 0;
      let s2 = accumulate ? c[c2 + j] : 0;
      let s3 = accumulate ? c[c3 + j] : 0;
      for (let p = 0, pa = 0, pb = bj; p < k; p++, pa += aCol, pb += bRow) {
        const y = b[pb];
        s0 += a[a0 + pa] * y;
        s1 += a[a1 + pa] * y;
        s2 += a[a2 + pa] * y;
        s3 += a[a3 + pa] * y;
      }
      c[c0 + j] = s0;
      c[c1 + j] = s1;
      c[c2 + j] = s2;
      c[c3 + j] = s3;
    }
  }
  // The last m % 4 rows.
  for (let i = m4; i < m; i++) {
    const ai = aOff + i * aRow;
    const ci = cOff + i * n;
    for (let j = 0; j < n4; j += 4) {
      const b0 = bOff + j * bCol;
      const b1 = b0 + bCol;
      const b2 = b1 + bCol;
      const b3 = b2 + bCol;
      let s0 = accumulate ? c[ci + j] : 0;
      let s1 = accumulate ? c[ci + j + 1] : 0;
      let s2 = accumulate ? c[ci + j + 2] : 0;
      let s3 = accumulate ? c[ci + j + 3] : 0;
      for (let p = 0, pa = ai, pb = 0; p < k; p++, pa += aCol, pb += bRow) {
        const x = a[pa];
        s0 += x * b[b0 + pb];
        s1 += x * b[b1 + pb];
        s2 += x * b[b2 + pb];
        s3 += x * b[b3 + pb];
      }
      c[ci + j] = s0;
      c[ci + j + 1] = s1;
      c[ci + j + 2] = s2;
      c[ci + j + 3] = s3;
    }
    for (let j = n4; j < n; j++) {
      let s = accumulate ? c[ci + j] : 0;
      for (let p = 0, pa = ai, pb = bOff + j * bCol; p < k; p++, pa += aCol, pb += bRow) s += a[pa] * b[pb];
      c[ci + j] = s;
    }
  }
}

/** A NaN wins over a number and then stays (every comparison with it is false), so that divergence
 *  stays visible through max pooling. */
const beats = (v: number, best: number): boolean => v > best || (v !== v && best === best);

/**
 * maxPool2d for the most common window, 2×2 without padding, without branches on the data: with
 * values in random order a branch per comparison is mispredicted so often that this tournament is
 * three times faster. The winner of each row is the first of its maxima, then the top row wins
 * ties: the first maximum in row-major order, as in the general loop. Comparisons become 0 or 1
 * (`+(a > b)`) that select an index, and the value is read back from it, so nothing is rounded.
 * A window whose sum is NaN (a NaN, or infinities of both signs) takes the general rule instead.
 */
function maxPool2x2(input: Floats, output: Floats, argmax: Int32Array, planes: number, g: WindowGeometry): void {
  const { height, width, strideH, strideW, outHeight, outWidth } = g;
  let o = 0;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * height * width;
    for (let oy = 0; oy < outHeight; oy++) {
      const rowStart = base + oy * strideH * width;
      for (let ox = 0; ox < outWidth; ox++, o++) {
        const a = rowStart + ox * strideW;
        const b = a + width;
        const top = a + +(input[a + 1] > input[a]);
        const bottom = b + +(input[b + 1] > input[b]);
        let at = top + +(input[bottom] > input[top]) * (bottom - top);
        const sum = input[a] + input[a + 1] + input[b] + input[b + 1];
        if (sum !== sum) {
          at = a;
          if (beats(input[a + 1], input[at])) at = a + 1;
          if (beats(input[b], input[at])) at = b;
          if (beats(input[b + 1], input[at])) at = b + 1;
        }
        output[o] = input[at];
        argmax[o] = at;
      }
    }
  }
}

/** Below this fraction of non-zero output gradients, conv2dBackward skips the zeros. */
const SPARSE_BELOW = 0.4;

/** Integer scratch of the JS kernels (lists of non-zero gradients); grows to the largest layer. */
let indexScratch = new Int32Array(0);

function indices(size: number): Int32Array {
  if (indexScratch.length < size) indexScratch = new Int32Array(size);
  return indexScratch;
}

/**
 * Lists where values[base + t·stride] is non-zero for t < count, as the t's in list[at..], and
 * returns the end of the list. Branch-free (every t is written, the end only advances past the
 * non-zeros): with zeros scattered at random, a branch would be mispredicted most of the time.
 */
function listNonZeros(values: Floats, base: number, stride: number, count: number, list: Int32Array, at: number): number {
  for (let t = 0, v = base; t < count; t++, v += stride) {
    list[at] = t;
    at += +(values[v] !== 0);
  }
  return at;
}

/**
 * dst[d + k] += Σ_t v_t · src[s + t·len + k] for k < len, over the rows t listed in list[from, to),
 * with v_t = values[base + t·stride]. Rows are added four at a time (one load and store of dst per
 * four multiply-adds; a plain row-by-row axpy runs at half the speed in V8), in list order.
 */
function addListedRows(
  dst: Floats,
  d: number,
  src: Floats,
  s: number,
  len: number,
  values: Floats,
  base: number,
  stride: number,
  list: Int32Array,
  from: number,
  to: number,
): void {
  let i = from;
  for (; i + 4 <= to; i += 4) {
    const t0 = list[i];
    const t1 = list[i + 1];
    const t2 = list[i + 2];
    const t3 = list[i + 3];
    const v0 = values[base + t0 * stride];
    const v1 = values[base + t1 * stride];
    const v2 = values[base + t2 * stride];
    const v3 = values[base + t3 * stride];
    const s0 = s + t0 * len;
    const s1 = s + t1 * len;
    const s2 = s + t2 * len;
    const s3 = s + t3 * len;
    for (let k = 0; k < len; k++) {
      dst[d + k] = dst[d + k] + v0 * src[s0 + k] + v1 * src[s1 + k] + v2 * src[s2 + k] + v3 * src[s3 + k];
    }
  }
  for (; i < to; i++) {
    const t = list[i];
    const v = values[base + t * stride];
    const row = s + t * len;
    for (let k = 0; k < len; k++) dst[d + k] += v * src[row + k];
  }
}

/** The first of `count` window positions o (start + o·stride) that lies at or after 0. */
function firstInside(start: number, stride: number, count: number): number {
  return start >= 0 ? 0 : Math.min(count, Math.ceil(-start / stride));
}

/** One past the last of `count` window positions o (start + o·stride) that lies before `size`,
 *  never below `first`. */
function endInside(start: number, stride: number, size: number, count: number, first: number): number {
  if (start >= size) return first;
  return Math.max(first, Math.min(count, Math.floor((size - 1 - start) / stride) + 1));
}

/** √(2/π), of gelu's tanh approximation. */
const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/** Plain TypeScript kernels. */
export const jsKernels: Kernels = {
  matmul(a, b, c, m, k, n, bias) {
    for (let i = 0; i < m; i++) {
      const ci = i * n;
      if (bias) for (let j = 0; j < n; j++) c[ci + j] = bias[j];
      else c.fill(0, ci, ci + n);
    }
    gemm(a, 0, k, 1, b, 0, n, 1, c, 0, m, k, n, true);
  },

  matmulTransA(a, b, c, m, k, n, reluOf, sums) {
    if (reluOf) jsKernels.reluBackward(reluOf, a, k * m);
    if (sums) jsKernels.sumRows(a, sums, k, m);
    gemm(a, 0, 1, m, b, 0, n, 1, c, 0, m, k, n, false);
  },

  matmulTransB(a, b, c, m, k, n, bias, relu) {
    if (bias) {
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) c[i * n + j] = bias[j];
    }
    gemm(a, 0, k, 1, b, 0, 1, k, c, 0, m, k, n, !!bias);
    if (relu) jsKernels.relu(c, m * n);
  },

  sumRows(a, out, m, n) {
    out.fill(0, 0, n);
    for (let i = 0; i < m; i++) {
      const ai = i * n;
      for (let j = 0; j < n; j++) out[j] += a[ai + j];
    }
  },

  im2col(input, offset, col, colOffset, g) {
    const { channels, height, width, kernelH, kernelW, strideH, strideW, padTop, padLeft, outHeight, outWidth } = g;
    const patch = channels * kernelH * kernelW;
    const rowStep = outWidth * patch; // from output row oy to oy + 1 in col
    // Column (c, ki, kj) of every patch, walking the image row by row.
    for (let c = 0, q = 0; c < channels; c++) {
      const plane = offset + c * height * width;
      for (let ki = 0; ki < kernelH; ki++) {
        for (let kj = 0; kj < kernelW; kj++, q++) {
          // Output columns whose input column ox·strideW + kj - padLeft lies inside the image.
          const x0 = kj - padLeft;
          const first = firstInside(x0, strideW, outWidth);
          const end = endInside(x0, strideW, width, outWidth, first);
          for (let oy = 0, dst = colOffset + q; oy < outHeight; oy++, dst += rowStep) {
            const iy = oy * strideH + ki - padTop;
            if (iy < 0 || iy >= height) {
              for (let ox = 0; ox < outWidth; ox++) col[dst + ox * patch] = 0;
              continue;
            }
            const src = plane + iy * width + x0;
            let ox = 0;
            for (; ox < first; ox++) col[dst + ox * patch] = 0;
            for (; ox < end; ox++) col[dst + ox * patch] = input[src + ox * strideW];
            for (; ox < outWidth; ox++) col[dst + ox * patch] = 0;
          }
        }
      }
    }
  },

  col2im(col, colOffset, inputGrad, offset, g) {
    const { channels, height, width, kernelH, kernelW, strideH, strideW, padTop, padLeft, outHeight, outWidth } = g;
    const patch = channels * kernelH * kernelW;
    const rowStep = outWidth * patch;
    for (let c = 0, q = 0; c < channels; c++) {
      const plane = offset + c * height * width;
      for (let ki = 0; ki < kernelH; ki++) {
        for (let kj = 0; kj < kernelW; kj++, q++) {
          const x0 = kj - padLeft;
          const first = firstInside(x0, strideW, outWidth);
          const end = endInside(x0, strideW, width, outWidth, first);
          for (let oy = 0, src = colOffset + q; oy < outHeight; oy++, src += rowStep) {
            const iy = oy * strideH + ki - padTop;
            if (iy < 0 || iy >= height) continue;
            const dst = plane + iy * width + x0;
            for (let ox = first; ox < end; ox++) inputGrad[dst + ox * strideW] += col[src + ox * patch];
          }
        }
      }
    }
  },

  conv2dScratchSize(g, keptRows) {
    // The gradient of one sample's patches, then the patches of one sample or of keptRows.
    return (1 + Math.max(1, keptRows)) * g.outHeight * g.outWidth * g.channels * g.kernelH * g.kernelW;
  },

  conv2d(input, weight, bias, output, rows, filters, g, scratch, keepPatches) {
    const patch = g.channels * g.kernelH * g.kernelW;
    const positions = g.outHeight * g.outWidth;
    const inSize = g.channels * g.height * g.width;
    const outSize = filters * positions;
    const colSize = positions * patch;
    for (let r = 0; r < rows; r++) {
      const col = colSize * (1 + (keepPatches ? r : 0));
      jsKernels.im2col(input, r * inSize, scratch, col, g);
      const out = r * outSize;
      for (let f = 0; f < filters; f++) output.fill(bias[f], out + f * positions, out + (f + 1) * positions);
      // out[filters, positions] += weight[filters, patch] · colᵀ
      gemm(weight, 0, patch, 1, scratch, col, 1, patch, output, out, filters, patch, positions, true);
    }
  },

  /**
   * Per sample, with col its patches [positions, K] and g = dL/dY [filters, positions]:
   *   dW += g · col,   dCol = gᵀ · W (then col2im),   db += row sums of g.
   * Below a max-pool, and after relu, most of g is exactly zero (a 2×2 pool passes gradient to one
   * position in four), so a sample whose g is mostly zeros skips them: row f of dW gathers the rows
   * q of col with g[f, q] ≠ 0, and row q of dCol the rows f of W. Both paths add the same terms in
   * the same order, rounded to the storage type at different points.
   */
  conv2dBackward(input, weight, gradOutput, weightGrad, biasGrad, inputGrad, rows, filters, g, scratch, patchesKept) {
    const patch = g.channels * g.kernelH * g.kernelW;
    const positions = g.outHeight * g.outWidth;
    const inSize = g.channels * g.height * g.width;
    const outSize = filters * positions;
    const colSize = positions * patch;
    const colGrad = 0; // where dCol starts in scratch, [positions, patch]
    // Non-zeros by filter: list[byFilter[f], byFilter[f + 1]) are the positions q with g[f, q] ≠ 0;
    // by position likewise, after them.
    const list = indices(2 * outSize + filters + positions + 2);
    const byFilter = 2 * outSize;
    const byPosition = byFilter + filters + 1;
    weightGrad.fill(0, 0, filters * patch);
    biasGrad.fill(0, 0, filters);
    for (let r = 0; r < rows; r++) {
      const out = r * outSize;
      let end = 0;
      for (let f = 0; f < filters; f++) {
        const row = out + f * positions;
        let sum = 0;
        for (let q = row; q < row + positions; q++) sum += gradOutput[q];
        biasGrad[f] += sum;
        list[byFilter + f] = end;
        end = listNonZeros(gradOutput, row, 1, positions, list, end);
      }
      list[byFilter + filters] = end;
      // Where this sample's patches are, [positions, patch].
      const col = colSize * (1 + (patchesKept ? r : 0));
      if (!patchesKept) jsKernels.im2col(input, r * inSize, scratch, col, g);
      // The sparse path does about 0.4 as many multiply-adds per second as the tiled products.
      const sparse = end < SPARSE_BELOW * outSize;
      if (sparse) {
        for (let f = 0; f < filters; f++) {
          const row = out + f * positions;
          addListedRows(weightGrad, f * patch, scratch, col, patch, gradOutput, row, 1, list, list[byFilter + f], list[byFilter + f + 1]);
        }
      } else {
        gemm(gradOutput, out, positions, 1, scratch, col, patch, 1, weightGrad, 0, filters, positions, patch, true);
      }
      if (!inputGrad) continue;
      if (sparse) {
        let start = outSize;
        for (let q = 0; q < positions; q++) {
          list[byPosition + q] = start;
          start = listNonZeros(gradOutput, out + q, positions, filters, list, start);
        }
        list[byPosition + positions] = start;
        scratch.fill(0, colGrad, colGrad + colSize);
        for (let q = 0; q < positions; q++) {
          const from = list[byPosition + q];
          const to = list[byPosition + q + 1];
          addListedRows(scratch, colGrad + q * patch, weight, 0, patch, gradOutput, out + q, positions, list, from, to);
        }
      } else {
        gemm(gradOutput, out, 1, positions, weight, 0, patch, 1, scratch, colGrad, positions, filters, patch, false);
      }
      inputGrad.fill(0, r * inSize, (r + 1) * inSize);
      jsKernels.col2im(scratch, colGrad, inputGrad, r * inSize, g);
    }
  },

  maxPool2d(input, output, argmax, rows, g) {
    const { height, width, kernelH, kernelW, strideH, strideW, padTop, padLeft, outHeight, outWidth } = g;
    const planes = rows * g.channels;
    const inside = padTop === 0 && padLeft === 0 && (outHeight - 1) * strideH + kernelH <= height && (outWidth - 1) * strideW + kernelW <= width;
    if (kernelH === 2 && kernelW === 2 && inside) {
      maxPool2x2(input, output, argmax, planes, g);
      return;
    }
    let o = 0;
    for (let plane = 0; plane < planes; plane++) {
      const base = plane * height * width;
      for (let oy = 0; oy < outHeight; oy++) {
        const y0 = oy * strideH - padTop;
        const yLo = Math.max(y0, 0);
        const yHi = Math.min(y0 + kernelH, height);
        for (let ox = 0; ox < outWidth; ox++, o++) {
          const x0 = ox * strideW - padLeft;
          const xLo = Math.max(x0, 0);
          const xHi = Math.min(x0 + kernelW, width);
          let at = base + yLo * width + xLo;
          let best = input[at];
          for (let iy = yLo; iy < yHi; iy++) {
            const rowAt = base + iy * width;
            for (let ix = xLo; ix < xHi; ix++) {
              const v = input[rowAt + ix];
              // Strictly greater keeps the first of equal values.
              if (beats(v, best)) {
                best = v;
                at = rowAt + ix;
              }
            }
          }
          output[o] = best;
          argmax[o] = at;
        }
      }
    }
  },

  maxPool2dBackward(gradOutput, argmax, inputGrad, rows, g) {
    const count = rows * g.channels * g.outHeight * g.outWidth;
    inputGrad.fill(0, 0, rows * g.channels * g.height * g.width);
    for (let o = 0; o < count; o++) inputGrad[argmax[o]] += gradOutput[o];
  },

  avgPool2d(input, output, rows, g) {
    const { height, width, kernelH, kernelW, strideH, strideW, padTop, padLeft, outHeight, outWidth } = g;
    const planes = rows * g.channels;
    let o = 0;
    for (let plane = 0; plane < planes; plane++) {
      const base = plane * height * width;
      for (let oy = 0; oy < outHeight; oy++) {
        const y0 = oy * strideH - padTop;
        const yLo = Math.max(y0, 0);
        const yHi = Math.min(y0 + kernelH, height);
        for (let ox = 0; ox < outWidth; ox++, o++) {
          const x0 = ox * strideW - padLeft;
          const xLo = Math.max(x0, 0);
          const xHi = Math.min(x0 + kernelW, width);
          let sum = 0;
          for (let iy = yLo; iy < yHi; iy++) {
            const rowAt = base + iy * width;
            for (let ix = xLo; ix < xHi; ix++) sum += input[rowAt + ix];
          }
          output[o] = sum / ((yHi - yLo) * (xHi - xLo));
        }
      }
    }
  },

  avgPool2dBackward(gradOutput, inputGrad, rows, g) {
    const { height, width, kernelH, kernelW, strideH, strideW, padTop, padLeft, outHeight, outWidth } = g;
    const planes = rows * g.channels;
    inputGrad.fill(0, 0, planes * height * width);
    let o = 0;
    for (let plane = 0; plane < planes; plane++) {
      const base = plane * height * width;
      for (let oy = 0; oy < outHeight; oy++) {
        const y0 = oy * strideH - padTop;
        const yLo = Math.max(y0, 0);
        const yHi = Math.min(y0 + kernelH, height);
        for (let ox = 0; ox < outWidth; ox++, o++) {
          const x0 = ox * strideW - padLeft;
          const xLo = Math.max(x0, 0);
          const xHi = Math.min(x0 + kernelW, width);
          const share = gradOutput[o] / ((yHi - yLo) * (xHi - xLo));
          for (let iy = yLo; iy < yHi; iy++) {
            const rowAt = base + iy * width;
            for (let ix = xLo; ix < xHi; ix++) inputGrad[rowAt + ix] += share;
          }
        }
      }
    }
  },

  // relu and its derivative are written without branches: with inputs of random sign a branch is
  // mispredicted half the time, which made these loops five times slower.
  relu(x, count) {
    // (z + |z|) / 2 is exactly max(z, 0), and NaN passes through (as in PyTorch) so divergence
    // stays visible. (Only -Infinity differs: it gives NaN rather than 0, equally a divergence.)
    for (let i = 0; i < count; i++) {
      const z = x[i];
      x[i] = (z + Math.abs(z)) * 0.5;
    }
  },
  reluBackward(y, grad, count) {
    // The derivative at exactly 0 is taken as 0, as PyTorch does.
    for (let i = 0; i < count; i++) grad[i] *= +(y[i] > 0);
  },

  leakyRelu(x, count, slope) {
    for (let i = 0; i < count; i++) if (x[i] < 0) x[i] *= slope;
  },
  leakyReluBackward(y, grad, count, slope) {
    // y > 0 exactly when z > 0 (slope > 0); at z = 0 the slope is used, as PyTorch does.
    for (let i = 0; i < count; i++) if (y[i] <= 0) grad[i] *= slope;
  },

  elu(x, count, alpha) {
    // expm1 keeps e^z - 1 accurate for small |z|.
    for (let i = 0; i < count; i++) if (x[i] < 0) x[i] = alpha * Math.expm1(x[i]);
  },
  eluBackward(y, grad, count, alpha) {
    // For z <= 0, d/dz alpha·(e^z - 1) = alpha·e^z = y + alpha.
    for (let i = 0; i < count; i++) if (y[i] <= 0) grad[i] *= y[i] + alpha;
  },

  gelu(x, count) {
    for (let i = 0; i < count; i++) {
      const z = x[i];
      x[i] = 0.5 * z * (1 + Math.tanh(GELU_C * (z + GELU_A * z * z * z)));
    }
  },
  geluBackward(z, grad, count) {
    // d/dz 0.5·z·(1 + t), t = tanh(u), u = c·(z + a·z³):  0.5·(1 + t) + 0.5·z·(1 - t²)·c·(1 + 3a·z²).
    for (let i = 0; i < count; i++) {
      const v = z[i];
      const t = Math.tanh(GELU_C * (v + GELU_A * v * v * v));
      grad[i] *= 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * v * v);
    }
  },

  tanh(x, count) {
    for (let i = 0; i < count; i++) x[i] = Math.tanh(x[i]);
  },
  tanhBackward(y, grad, count) {
    for (let i = 0; i < count; i++) grad[i] *= 1 - y[i] * y[i];
  },

  sigmoid(x, count) {
    // 1 / (1 + e^-z) never overflows to NaN: for very negative z it is 1 / Infinity = 0.
    for (let i = 0; i < count; i++) x[i] = 1 / (1 + Math.exp(-x[i]));
  },
  sigmoidBackward(y, grad, count) {
    for (let i = 0; i < count; i++) grad[i] *= y[i] * (1 - y[i]);
  },

  softmax(x, rows, width) {
    for (let r = 0; r < rows; r++) {
      const start = r * width;
      const end = start + width;
      let max = -Infinity;
      for (let i = start; i < end; i++) if (x[i] > max) max = x[i];
      let sum = 0;
      for (let i = start; i < end; i++) {
        const e = Math.exp(x[i] - max);
        x[i] = e;
        sum += e;
      }
      for (let i = start; i < end; i++) x[i] /= sum;
    }
  },
  softmaxBackward(y, grad, rows, width) {
    for (let r = 0; r < rows; r++) {
      const start = r * width;
      const end = start + width;
      let dot = 0;
      for (let i = start; i < end; i++) dot += grad[i] * y[i];
      for (let i = start; i < end; i++) grad[i] = y[i] * (grad[i] - dot);
    }
  },

  sumSquares(a, count) {
    let sum = 0;
    for (let i = 0; i < count; i++) sum += a[i] * a[i];
    return sum;
  },
  scale(a, count, factor) {
    for (let i = 0; i < count; i++) a[i] *= factor;
  },
  sgdUpdate(w, grad, v, count, lr, momentum, decay, nesterov) {
    for (let i = 0; i < count; i++) {
      const g = grad[i] + decay * w[i];
      v[i] = momentum * v[i] + g;
      const vi = v[i]; // read back: the stored (possibly float32-rounded) value is the state
      w[i] -= lr * (nesterov ? g + momentum * vi : vi);
    }
  },

  adamUpdate(w, grad, m, v, count, { beta1, beta2, eps, l2, shrink, decoupled, stepSize, correction2 }) {
    for (let i = 0; i < count; i++) {
      if (decoupled) w[i] *= shrink;
      const g = grad[i] + l2 * w[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      // Read back: the stored (possibly float32-rounded) moments are the state.
      const mi = m[i];
      const vi = v[i];
      w[i] -= (stepSize * mi) / (Math.sqrt(vi) / correction2 + eps);
    }
  },
};

/**
 * The WebAssembly SIMD kernels (wasm/kernels.wat): every call whose arrays live in the float32
 * arena (wasm/arena.ts) runs there; any other call (float64 models, foreign arrays) runs the JS
 * kernels above. Without WebAssembly this is jsKernels.
 */
export const wasmKernels: Kernels = createWasmKernels(jsKernels);

/** Which implementation `kernels` is. */
export type KernelsChoice = "wasm" | "js";

/**
 * The kernels layers use (a live binding: setKernels changes what every layer calls). WebAssembly
 * by default.
 */
export let kernels: Kernels = wasmKernels;

/** Switches every layer to the WebAssembly kernels or to the JS reference (tests, benchmarks).
 *  Switch between steps, not between a forward pass and its backward pass. */
export function setKernels(choice: KernelsChoice): void {
  kernels = choice === "wasm" ? wasmKernels : jsKernels;
}

export function kernelsChoice(): KernelsChoice {
  return kernels === jsKernels ? "js" : "wasm";
}
