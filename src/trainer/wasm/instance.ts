// Compiles kernels.wat's binary (generated into kernels-wasm.ts at install time) and instantiates it
// on the arena's memory. Compiled once per thread, on first use; a helper thread can be given the
// compiled module and the memory and call instantiateKernels itself.
import { arenaMemory } from "./arena.js";
import { KERNELS_WASM_BASE64 } from "./kernels-wasm.js";

/** The functions of kernels.wat. Pointers are byte addresses; sizes and strides count floats. */
export interface KernelExports {
  gemm_work_bytes(): number;
  /** Products of at most this many multiply-adds skip packing (same results either way). */
  small_gemm: WebAssembly.Global;
  gemm(
    a: number,
    aRow: number,
    aCol: number,
    b: number,
    bRow: number,
    bCol: number,
    c: number,
    ldc: number,
    i0: number,
    i1: number,
    k: number,
    n: number,
    accumulate: number,
    work: number,
  ): void;
  /** gemm for one of a thread's successive pieces of a product that share one operand (kernels.wat):
   *  mode 1/2 pack and keep / reuse A, 3/4 the same for B. Same values as gemm. */
  gemm_keep(
    a: number, aRow: number, aCol: number, b: number, bRow: number, bCol: number, c: number, ldc: number,
    i0: number, i1: number, k: number, n: number, accumulate: number, work: number, mode: number,
  ): void;
  dot_nt(a: number, lda: number, b: number, ldb: number, c: number, ldc: number, i0: number, i1: number, k: number, n: number, accumulate: number): void;
  zero_rows(c: number, ldc: number, i0: number, i1: number, n: number): void;
  copy_rows(c: number, ldc: number, i0: number, i1: number, n: number, values: number): void;
  fill_rows(c: number, ldc: number, i0: number, i1: number, n: number, values: number): void;
  sum_rows(a: number, out: number, m: number, n: number, j0: number, j1: number): void;
  add_row_sums(a: number, out: number, n: number, r0: number, r1: number): void;
  relu(x: number, count: number): void;
  relu_backward(y: number, grad: number, count: number): void;
  relu_rows(c: number, ld: number, i0: number, i1: number, n: number): void;
  relu_backward_rows(y: number, grad: number, ld: number, i0: number, i1: number, n: number): void;
  tanh_backward(y: number, grad: number, count: number): void;
  sigmoid_backward(y: number, grad: number, count: number): void;
  /** Planes [p0, planes). */
  max_pool_2x2(
    input: number,
    output: number,
    argmax: number,
    p0: number,
    planes: number,
    height: number,
    width: number,
    outHeight: number,
    outWidth: number,
  ): void;
  /** Zeroes inputGrad values [z0, z1), then adds output gradients [o0, o1) at their argmax. */
  max_pool_backward(gradOutput: number, argmax: number, inputGrad: number, o0: number, o1: number, z0: number, z1: number): void;
  sgd_update(w: number, g: number, v: number, i0: number, i1: number, lr: number, momentum: number, decay: number, nesterov: number): void;
  sgd_update_blocks(w: number, g: number, v: number, table: number, count: number, from: number, to: number, lr: number, momentum: number, decay: number, nesterov: number): void;
  adam_update_blocks(
    w: number, g: number, m: number, v: number, table: number, count: number, from: number, to: number,
    beta1: number, beta2: number, eps: number, l2: number, shrink: number, decoupled: number, stepSize: number, correction2: number,
  ): void;
  add_floats(dst: number, src: number, i0: number, i1: number): void;
  adam_update(w: number, g: number, m: number, v: number, i0: number, i1: number, beta1: number, beta2: number, eps: number, l2: number, shrink: number, decoupled: number, stepSize: number, correction2: number): void;
  /** Values per block of sum_squares_blocks. */
  squares_block(): number;
  /** Float64 sums of squares of blocks [b0, b1) of a's `count` values, at out + 8·b. */
  sum_squares_blocks(a: number, count: number, b0: number, b1: number, out: number): void;
  scale_floats(a: number, i0: number, i1: number, factor: number): void;
  /** The geometry arguments: channels, height, width, kernelH, kernelW, strideH, strideW, padTop,
   *  padLeft, outHeight, outWidth (as WindowGeometry). */
  im2col(input: number, col: number, ...geometry: number[]): void;
  col2im(col: number, inputGrad: number, ...geometry: number[]): void;
  /** im2col and col2im in the transposed layout, [K, positions] (see kernels.wat). */
  im2col_t(input: number, colT: number, ...geometry: number[]): void;
  col2im_t(colT: number, inputGrad: number, ...geometry: number[]): void;
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Standard base64 (with or without padding) to bytes. */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const digits = new Uint8Array(128);
  for (let i = 0; i < BASE64.length; i++) digits[BASE64.charCodeAt(i)] = i;
  const clean = text.replace(/=+$/, "");
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    value = (value << 6) | digits[clean.charCodeAt(i)];
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (value >> bits) & 0xff;
    }
  }
  return out;
}

let compiled: WebAssembly.Module | null | undefined;

/** The compiled kernels module (compiled once per thread), or null if this runtime cannot. */
export function kernelsModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(decodeBase64(KERNELS_WASM_BASE64));
    } catch {
      compiled = null; // no WebAssembly SIMD here
    }
  }
  return compiled;
}

/** An instance of the kernels on `memory` (the arena's, possibly shared from another thread). */
export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
}

let instance: KernelExports | null | undefined;

/** On a helper thread: makes `exports` (an instance of `module` on the adopted arena's memory) this
 *  thread's kernels, so that nothing is compiled or instantiated twice. */
export function useKernels(module: WebAssembly.Module, exports: KernelExports): void {
  compiled = module;
  instance = exports;
}

/** This thread's kernels on the arena, instantiated on first use; null without WebAssembly. */
export function kernelExports(): KernelExports | null {
  if (instance === undefined) {
    const module = kernelsModule();
    const memory = arenaMemory();
    instance = module && memory ? instantiateKernels(module, memory) : null;
  }
  return instance;
}
