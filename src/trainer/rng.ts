// A small seeded PRNG, so that the same seed gives bit-identical weights and batch orders on every
// machine (the built-in generator cannot be seeded). sfc32 passes PractRand, is fast in 32-bit integer
// arithmetic and has 128 bits of state that fit in four plain numbers, which a checkpoint stores
// to resume the exact stream.

/** The four 32-bit words of an Rng, as plain numbers (JSON-serialisable). */
export type RngState = [number, number, number, number];

/** Independent streams derived from one job seed, so that e.g. turning shuffling off does not
 *  change the initial weights. `dropout` draws the dropout masks of every dropout layer of a model. */
export const RngStream = { init: 0, shuffle: 1, split: 2, dropout: 3 } as const;

/** splitmix32: spreads a (possibly tiny) integer seed over well-mixed 32-bit words. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /**
   * @param seed an integer in [0, 2^32)
   * @param stream which independent stream of that seed (see RngStream)
   */
  constructor(seed: number, stream = 0) {
    const sm = { s: seed >>> 0 };
    this.a = splitmix32(sm);
    this.b = splitmix32(sm);
    this.c = splitmix32(sm);
    // sfc32's fourth word is a counter; starting each stream's counter elsewhere makes the streams
    // distinct, and the warm-up below mixes that difference into the whole state.
    this.d = (splitmix32(sm) ^ Math.imul(stream, 0x9e3779b9)) >>> 0;
    for (let i = 0; i < 16; i++) this.nextU32();
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform number in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** A uniform integer in [0, n), without modulo bias (rejection sampling). 1 <= n <= 2^32. */
  int(n: number): number {
    if (!(n >= 1 && n <= 4294967296 && Number.isInteger(n))) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n); // largest multiple of n that fits
    let u = this.nextU32();
    while (u >= limit) u = this.nextU32();
    return u % n;
  }

  /** A standard normal sample (Box–Muller; draws two uniforms and keeps no spare, so the state is
   *  only the four words). */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1], so the log is finite
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** A uniform number in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  getState(): RngState {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  setState(state: RngState): void {
    if (state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new RangeError("Rng.setState: expected four unsigned 32-bit integers");
    }
    [this.a, this.b, this.c, this.d] = state.map((w) => w | 0);
  }
}

/** Fisher–Yates: shuffles `items[0..length)` in place, every permutation equally likely. */
export function shuffleInPlace(items: { length: number; [i: number]: number }, rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
}

/** A uniformly random permutation of 0..n-1. */
export function permutation(n: number, rng: Rng): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  shuffleInPlace(order, rng);
  return order;
}
