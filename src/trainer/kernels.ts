// The numeric kernels every layer calls: matrix multiplies and elementwise activations. They are
// kept together, behind the `Kernels` interface, because this is where the time goes; a later issue
// swaps in WebAssembly SIMD versions without touching the layers.
//
// All matrices are dense and row-major. Kernels take explicit sizes and only touch the first
// m*n values of their buffers, so a layer can keep one buffer sized for the largest batch and reuse
// it for smaller ones without slicing (no allocation per step).
//
// The multiplies run in i-k-j order (see accumulateProduct). The one exception is A·Bᵀ, whose
// natural inner loop is already a stride-1 dot product of two rows.

/** Parameter and activation storage: float32 for training, float64 for gradient checks. */
export type Floats = Float32Array | Float64Array;

export interface Kernels {
  /** C[m×n] = A[m×k] · B[k×n], plus `bias[n]` added to every row when given. */
  matmul(a: Floats, b: Floats, c: Floats, m: number, k: number, n: number, bias: Floats | null): void;
  /** C[m×n] = Aᵀ · B, where A is [k×m] and B is [k×n] (weight gradients: inputsᵀ · output grads). */
  matmulTransA(a: Floats, b: Floats, c: Floats, m: number, k: number, n: number): void;
  /** C[m×n] = A · Bᵀ, where A is [m×k] and B is [n×k] (input gradients: output grads · weightsᵀ). */
  matmulTransB(a: Floats, b: Floats, c: Floats, m: number, k: number, n: number): void;
  /** out[j] = Σ_i a[i×n + j] over m rows (bias gradients). */
  sumRows(a: Floats, out: Floats, m: number, n: number): void;

  // Activations run in place on the first `count` values. Each backward multiplies the incoming
  // gradient by f'(z), written in terms of the activation's output y = f(z), which the layer keeps.
  relu(x: Floats, count: number): void;
  reluBackward(y: Floats, grad: Floats, count: number): void;
  tanh(x: Floats, count: number): void;
  tanhBackward(y: Floats, grad: Floats, count: number): void;
  sigmoid(x: Floats, count: number): void;
  sigmoidBackward(y: Floats, grad: Floats, count: number): void;
}

/**
 * C[i, :] += Σ_p A(i, p) · B[p, :] for the m rows of C, where A(i, p) = a[i·rowStride + p·colStride]
 * (A·B has strides (k, 1); Aᵀ·B, with A stored [k, m], has strides (1, m)). Every value of C sums
 * its terms in the order p = 0, 1, ..., so results do not depend on the blocking.
 *
 * i-k-j order: the inner loop walks a row of B and a row of C with stride 1. Rows of C are taken
 * four at a time so that each value of B loaded is used four times (register blocking); that
 * roughly doubles the speed in V8. A row of C (n values) stays in L1 while it accumulates.
 */
function accumulateProduct(
  a: Floats,
  rowStride: number,
  colStride: number,
  b: Floats,
  c: Floats,
  m: number,
  k: number,
  n: number,
): void {
  let i = 0;
  for (; i + 4 <= m; i += 4) {
    const c0 = i * n;
    const c1 = c0 + n;
    const c2 = c1 + n;
    const c3 = c2 + n;
    for (let p = 0; p < k; p++) {
      const at = i * rowStride + p * colStride;
      const x0 = a[at];
      const x1 = a[at + rowStride];
      const x2 = a[at + 2 * rowStride];
      const x3 = a[at + 3 * rowStride];
      const bp = p * n;
      for (let j = 0; j < n; j++) {
        const bv = b[bp + j];
        c[c0 + j] += x0 * bv;
        c[c1 + j] += x1 * bv;
        c[c2 + j] += x2 * bv;
        c[c3 + j] += x3 * bv;
      }
    }
  }
  for (; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const x = a[i * rowStride + p * colStride];
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += x * b[bp + j];
    }
  }
}

/** Plain TypeScript kernels. */
export const jsKernels: Kernels = {
  matmul(a, b, c, m, k, n, bias) {
    for (let i = 0; i < m; i++) {
      const ci = i * n;
      if (bias) for (let j = 0; j < n; j++) c[ci + j] = bias[j];
      else c.fill(0, ci, ci + n);
    }
    accumulateProduct(a, k, 1, b, c, m, k, n);
  },

  matmulTransA(a, b, c, m, k, n) {
    c.fill(0, 0, m * n);
    accumulateProduct(a, 1, m, b, c, m, k, n);
  },

  matmulTransB(a, b, c, m, k, n) {
    // Dot products of row i of A with rows j of B, four rows of B at a time so that each value of
    // A loaded is used four times.
    for (let i = 0; i < m; i++) {
      const ai = i * k;
      const ci = i * n;
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const b0 = j * k;
        const b1 = b0 + k;
        const b2 = b1 + k;
        const b3 = b2 + k;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let p = 0; p < k; p++) {
          const av = a[ai + p];
          s0 += av * b[b0 + p];
          s1 += av * b[b1 + p];
          s2 += av * b[b2 + p];
          s3 += av * b[b3 + p];
        }
        c[ci + j] = s0;
        c[ci + j + 1] = s1;
        c[ci + j + 2] = s2;
        c[ci + j + 3] = s3;
      }
      for (; j < n; j++) {
        const bj = j * k;
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a[ai + p] * b[bj + p];
        c[ci + j] = sum;
      }
    }
  },

  sumRows(a, out, m, n) {
    out.fill(0, 0, n);
    for (let i = 0; i < m; i++) {
      const ai = i * n;
      for (let j = 0; j < n; j++) out[j] += a[ai + j];
    }
  },

  relu(x, count) {
    // Written so that NaN passes through (as in PyTorch) and divergence stays visible.
    for (let i = 0; i < count; i++) if (x[i] < 0) x[i] = 0;
  },
  reluBackward(y, grad, count) {
    // The derivative at exactly 0 is taken as 0, as PyTorch does.
    for (let i = 0; i < count; i++) if (y[i] <= 0) grad[i] = 0;
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
};

/** The kernels layers use. One place to switch implementations. */
export const kernels: Kernels = jsKernels;
