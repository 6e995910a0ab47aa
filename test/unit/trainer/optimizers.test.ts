// Adam, AdamW and RMSprop steps worked out by hand (PyTorch's conventions, see the comments at the
// top of optimizers/adam.ts and optimizers/rmsprop.ts); gradient clipping; and resuming from
// exported state, bit for bit, for every optimizer.
//
// The hand-worked runs use a two-value parameter vector and a gradient sequence picked so that the
// square roots come out whole; a large eps (1) makes where eps is added show in the result.
import { describe, expect, it } from "vitest";
import { createOptimizer, type Optimizer } from "../../../src/trainer/optimizers/optimizer.js";
import { optimizerSchema, type OptimizerSpec } from "../../../src/trainer/schema/optimizer.js";

/** Runs one optimizer over a sequence of gradients, returning the parameters after each step. */
function run(options: Record<string, unknown>, w0: number[], gradients: number[][], lr = 0.1) {
  const params = new Float64Array(w0);
  const grads = new Float64Array(params.length);
  const optimizer = createOptimizer(optimizerSchema.parse(options), { params, grads });
  const after = gradients.map((g) => {
    grads.set(g);
    optimizer.step(lr);
    return Array.from(params);
  });
  return { after, optimizer, grads };
}

/** Relative closeness, value by value. */
function expectRel(actual: ArrayLike<number>, expected: number[], tolerance = 1e-9) {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => {
    const error = Math.abs(actual[i] - e) / Math.max(Math.abs(e), 1e-12);
    expect(error, `value ${i}: ${actual[i]} vs ${e}`).toBeLessThan(tolerance);
  });
}

describe("adam", () => {
  // beta1 = beta2 = 0.5, lr 0.1; gradients [5, -1], [1, -1], [-3, 1]. Per step t:
  //   m = 0.5 m + 0.5 g, v = 0.5 v + 0.5 g², m̂ = m / (1 - 0.5^t), v̂ = v / (1 - 0.5^t),
  //   w -= 0.1 m̂ / (sqrt(v̂) + eps)
  // t = 1: m = [2.5, -0.5],     v = [12.5, 0.5];   /0.5   -> m̂ = [5, -1],      v̂ = [25, 1]
  // t = 2: m = [1.75, -0.75],   v = [6.75, 0.75];  /0.75  -> m̂ = [7/3, -1],    v̂ = [9, 1]
  // t = 3: m = [-0.625, 0.125], v = [7.875, 0.875]; /0.875 -> m̂ = [-5/7, 1/7], v̂ = [9, 1]
  const gradients = [
    [5, -1],
    [1, -1],
    [-3, 1],
  ];

  it("with bias correction, eps added after it (eps 1)", () => {
    const { after, optimizer } = run({ type: "adam", beta1: 0.5, beta2: 0.5, eps: 1 }, [1, -2], gradients);
    // Denominators sqrt(v̂) + 1: [6, 2], [4, 2], [4, 2].
    // t = 1: w -= 0.1 [5/6, -1/2]        = [1/12, -0.05]  -> [11/12, -1.95]
    expectRel(after[0], [11 / 12, -1.95]);
    // t = 2: w -= 0.1 [(7/3)/4, -1/2]    = [7/120, -0.05] -> [103/120, -1.9]
    expectRel(after[1], [103 / 120, -1.9]);
    // t = 3: w -= 0.1 [(-5/7)/4, (1/7)/2] = [-1/56, 1/140] -> [103/120 + 1/56, -1.9 - 1/140]
    expectRel(after[2], [103 / 120 + 1 / 56, -1.9 - 1 / 140]);
    const state = optimizer.exportState();
    expect(state.step).toBe(3);
    expectRel(state.tensors.exp_avg, [-0.625, 0.125]);
    expectRel(state.tensors.exp_avg_sq, [7.875, 0.875]);
  });

  it("with the default eps (1e-8, too small to show at 1e-6)", () => {
    const { after } = run({ type: "adam", beta1: 0.5, beta2: 0.5 }, [1, -2], gradients);
    // Denominators sqrt(v̂): [5, 1], [3, 1], [3, 1].
    // t = 1: w -= 0.1 [1, -1]                 -> [0.9, -1.9]
    // t = 2: w -= 0.1 [(7/3)/3, -1] = [7/90, -0.1]  -> [0.9 - 7/90, -1.8]
    // t = 3: w -= 0.1 [(-5/7)/3, 1/7] = [-1/42, 1/70] -> [0.9 - 7/90 + 1/42, -1.8 - 1/70]
    expectRel(after[0], [0.9, -1.9], 1e-6);
    expectRel(after[1], [0.9 - 7 / 90, -1.8], 1e-6);
    expectRel(after[2], [0.9 - 7 / 90 + 1 / 42, -1.8 - 1 / 70], 1e-6);
  });

  it("adds weight_decay * w to the gradient (L2)", () => {
    // weight_decay 0.5, w0 = [2, -2]. Each raw gradient is chosen so that g = grad + 0.5 w is the
    // sequence above, so the steps are the eps-1 steps above:
    // t = 1: 0.5 w = [1, -1];           grad [4, 0]                  -> g = [5, -1];  w = [2 - 1/12, -1.95] = [23/12, -1.95]
    // t = 2: 0.5 w = [23/24, -0.975];   grad [1/24, -0.025]          -> g = [1, -1];  w = [23/12 - 7/120, -1.9] = [223/120, -1.9]
    // t = 3: 0.5 w = [223/240, -0.95];  grad [-3 - 223/240, 1.95]    -> g = [-3, 1];  w = [223/120 + 1/56, -1.9 - 1/140]
    // (Without the decay, step 1 would see g = [4, 0] and move only the first value.)
    const { after } = run({ type: "adam", beta1: 0.5, beta2: 0.5, eps: 1, weight_decay: 0.5 }, [2, -2], [
      [4, 0],
      [1 / 24, -0.025],
      [-3 - 223 / 240, 1.95],
    ]);
    expectRel(after[0], [23 / 12, -1.95]);
    expectRel(after[1], [223 / 120, -1.9]);
    expectRel(after[2], [223 / 120 + 1 / 56, -1.9 - 1 / 140]);
  });
});

describe("adamw", () => {
  it("shrinks w by lr * weight_decay before the Adam step (decoupled)", () => {
    // weight_decay 0.5, lr 0.1: w *= 1 - 0.05 = 0.95, then the eps-1 Adam steps of the same
    // gradients: [1/12, -0.05], [7/120, -0.05], [-1/56, 1/140] (the decay never enters m or v).
    // t = 1: 0.95 [1, -2] = [0.95, -1.9]                -> [0.95 - 1/12, -1.85]        = [0.8666667, -1.85]
    // t = 2: 0.95 [0.8666667, -1.85] = [0.8233333, -1.7575] -> [0.8233333 - 7/120, -1.7075] = [0.765, -1.7075]
    // t = 3: 0.95 [0.765, -1.7075] = [0.72675, -1.622125]  -> [0.72675 + 1/56, -1.622125 - 1/140]
    const { after, optimizer } = run({ type: "adamw", beta1: 0.5, beta2: 0.5, eps: 1, weight_decay: 0.5 }, [1, -2], [
      [5, -1],
      [1, -1],
      [-3, 1],
    ]);
    expect(optimizer.type).toBe("adamw");
    expectRel(after[0], [0.95 - 1 / 12, -1.85]);
    expectRel(after[1], [0.765, -1.7075]);
    expectRel(after[2], [0.72675 + 1 / 56, -1.622125 - 1 / 140]);
  });

  it("defaults to weight_decay 0.01, unlike adam", () => {
    // One step of g = [1, 1] from w = [1, 1] at lr 0.1: m̂ = 1, v̂ = 1, so the Adam step is
    // 0.1 / (1 + 1e-8); adamw first shrinks w to 1 - 0.1 * 0.01 = 0.999.
    expectRel(run({ type: "adamw" }, [1, 1], [[1, 1]]).after[0], [0.899, 0.899], 1e-6);
    expectRel(run({ type: "adam" }, [1, 1], [[1, 1]]).after[0], [0.9, 0.9], 1e-6);
  });
});

describe("rmsprop", () => {
  // alpha 0.75, eps 1, lr 0.1; gradients [2, 6], [1, 13], [-1, -7].
  // square_avg = 0.75 s + 0.25 g²:
  //   first value:  0.25 * 4 = 1;  0.75 + 0.25 = 1;          0.75 + 0.25 = 1
  //   second value: 0.25 * 36 = 9; 6.75 + 42.25 = 49;         36.75 + 12.25 = 49
  // sqrt + eps: [2, 4], [2, 8], [2, 8]; g / (sqrt + eps): [1, 1.5], [0.5, 1.625], [-0.5, -0.875].
  const gradients = [
    [2, 6],
    [1, 13],
    [-1, -7],
  ];

  it("plain: w -= lr g / (sqrt(square_avg) + eps)", () => {
    const { after, optimizer } = run({ type: "rmsprop", alpha: 0.75, eps: 1 }, [1, -2], gradients);
    // w: [1 - 0.1, -2 - 0.15] = [0.9, -2.15]; [0.9 - 0.05, -2.15 - 0.1625] = [0.85, -2.3125];
    //    [0.85 + 0.05, -2.3125 + 0.0875] = [0.9, -2.225]
    expectRel(after[0], [0.9, -2.15]);
    expectRel(after[1], [0.85, -2.3125]);
    expectRel(after[2], [0.9, -2.225]);
    expect(Object.keys(optimizer.exportState().tensors)).toEqual(["square_avg"]);
    expectRel(optimizer.exportState().tensors.square_avg, [1, 49]);
  });

  it("momentum: buf = momentum buf + g / denom; w -= lr buf", () => {
    const { after, optimizer } = run({ type: "rmsprop", alpha: 0.75, eps: 1, momentum: 0.5 }, [1, -2], gradients);
    // buf: [1, 1.5]; [0.5 + 0.5, 0.75 + 1.625] = [1, 2.375]; [0.5 - 0.5, 1.1875 - 0.875] = [0, 0.3125]
    // w:   [0.9, -2.15]; [0.8, -2.15 - 0.2375] = [0.8, -2.3875]; [0.8, -2.3875 - 0.03125] = [0.8, -2.41875]
    expectRel(after[0], [0.9, -2.15]);
    expectRel(after[1], [0.8, -2.3875]);
    expectRel(after[2], [0.8, -2.41875]);
    expectRel(optimizer.exportState().tensors.momentum_buffer, [0, 0.3125]);
  });

  it("centered: divides by sqrt(square_avg - grad_avg²) + eps", () => {
    // alpha 0.5, eps 1, lr 0.1; gradients [4, -8], [1, -2], [-0.25, 0.5] (the second value is -2x the first).
    // First value:
    //   t = 1: s = 0.5 * 16 = 8;              a = 0.5 * 4 = 2;              s - a² = 4        -> sqrt 2
    //   t = 2: s = 4 + 0.5 = 4.5;             a = 1 + 0.5 = 1.5;            s - a² = 2.25     -> sqrt 1.5
    //   t = 3: s = 2.25 + 0.03125 = 2.28125;  a = 0.75 - 0.125 = 0.625;     s - a² = 1.890625 -> sqrt 1.375
    //   steps 0.1 g / (sqrt + 1): 0.4 / 3 = 2/15, 0.1 / 2.5 = 0.04, -0.025 / 2.375 = -1/95
    // Second value: s is 4x, a is -2x, so the roots double: 4, 3, 2.75;
    //   steps 0.1 g / (sqrt + 1): -0.8 / 5 = -0.16, -0.2 / 4 = -0.05, 0.05 / 3.75 = 1/75
    const { after, optimizer } = run({ type: "rmsprop", alpha: 0.5, eps: 1, centered: true }, [1, -2], [
      [4, -8],
      [1, -2],
      [-0.25, 0.5],
    ]);
    expectRel(after[0], [1 - 2 / 15, -1.84]);
    expectRel(after[1], [1 - 2 / 15 - 0.04, -1.79]);
    expectRel(after[2], [1 - 2 / 15 - 0.04 + 1 / 95, -1.79 - 1 / 75]);
    const { tensors } = optimizer.exportState();
    expect(Object.keys(tensors).sort()).toEqual(["grad_avg", "square_avg"]);
    expectRel(tensors.grad_avg, [0.625, -1.25]);
    expectRel(tensors.square_avg, [2.28125, 9.125]);
  });

  it("adds weight_decay * w to the gradient", () => {
    // weight_decay 0.5, w = [1, -2], grad [1.5, 1] -> g = [2, 0]; s = 0.25 g² = [1, 0];
    // steps 0.1 g / (sqrt(s) + 1) = [0.1, 0]. (Without the decay: [0.15 / 1.75, 0.1 / 1.5].)
    expectRel(run({ type: "rmsprop", alpha: 0.75, eps: 1, weight_decay: 0.5 }, [1, -2], [[1.5, 1]]).after[0], [0.9, -2]);
  });
});

describe("clip_norm", () => {
  it("scales a gradient of norm 5 to norm 1 before the step", () => {
    // grad [3, 4]: norm 5 > 1, so it becomes [3, 4] * 1 / (5 + 1e-6) = [0.599999880000024, 0.799999840000032].
    // Plain SGD at lr 1 from [1, -2]: [0.400000119999976, -2.799999840000032].
    const { after, optimizer, grads } = run({ type: "sgd", momentum: 0, clip_norm: 1 }, [1, -2], [[3, 4]], 1);
    expectRel(grads, [0.599999880000024, 0.799999840000032], 1e-12);
    expectRel(after[0], [0.400000119999976, -2.799999840000032], 1e-12);
    expect(optimizer.lastGradNorm).toBe(5);
  });

  it("leaves a gradient under the limit alone, and measures the norm even without clipping", () => {
    // [0.3, 0.4] has norm 0.5 < 1.
    const clipped = run({ type: "sgd", momentum: 0, clip_norm: 1 }, [1, -2], [[0.3, 0.4]], 1);
    expect(Array.from(clipped.grads)).toEqual([0.3, 0.4]);
    expect(clipped.optimizer.lastGradNorm).toBeCloseTo(0.5, 15);
    expect(run({ type: "adam" }, [1, -2], [[3, 4]]).optimizer.lastGradNorm).toBe(5);
  });

  it("is applied by every optimizer", () => {
    for (const type of ["sgd", "adam", "adamw", "rmsprop"] as const) {
      const { optimizer, grads } = run({ type, clip_norm: 1 }, [1, -2], [[3, 4]]);
      expect(optimizer.lastGradNorm, type).toBe(5);
      expectRel(grads, [0.599999880000024, 0.799999840000032], 1e-12);
    }
  });

  it("is NaN before the first step", () => {
    const optimizer = createOptimizer(optimizerSchema.parse({ type: "adam" }), { params: new Float32Array(2), grads: new Float32Array(2) });
    expect(optimizer.lastGradNorm).toBeNaN();
  });
});

describe("state export and import", () => {
  const configs: Record<string, unknown>[] = [
    { type: "sgd", momentum: 0.9, nesterov: true, weight_decay: 0.01, clip_norm: 2 },
    { type: "adam", weight_decay: 0.01 },
    { type: "adam", beta1: 0.8, clip_norm: 1.5 },
    { type: "adamw", clip_norm: 2 },
    { type: "rmsprop" },
    { type: "rmsprop", momentum: 0.9, centered: true, weight_decay: 0.01, clip_norm: 2 },
  ];
  const SIZE = 9;
  const STEPS = 8;

  /** Float32 training for STEPS steps with a gradient that depends on the weights and the step
   *  (large enough that clip_norm 2 bites) and an lr that changes per step. At step `resumeAt`, the
   *  state is exported and training continues with a new optimizer on a copy of the weights —
   *  restored from that state, or fresh when `fresh` is set. */
  function train(spec: OptimizerSpec, resumeAt: number | null, fresh = false) {
    let params = Float32Array.from({ length: SIZE }, (_, i) => Math.cos(i + 0.5));
    let grads = new Float32Array(SIZE);
    let optimizer: Optimizer = createOptimizer(spec, { params, grads });
    for (let k = 0; k < STEPS; k++) {
      if (k === resumeAt) {
        const state = optimizer.exportState();
        params = params.slice();
        grads = new Float32Array(SIZE);
        optimizer = createOptimizer(spec, { params, grads });
        if (!fresh) optimizer.importState(state);
      }
      for (let i = 0; i < SIZE; i++) grads[i] = 3 * Math.sin(2.3 * params[i] + 0.7 * k + i);
      optimizer.step(0.01 * (1 + (k % 3)));
    }
    return { params, state: optimizer.exportState() };
  }

  for (const options of configs) {
    it(`resumes bit for bit: ${JSON.stringify(options)}`, () => {
      const spec = optimizerSchema.parse(options);
      const straight = train(spec, null);
      const resumed = train(spec, 3);
      expect(new Uint32Array(resumed.params.buffer)).toEqual(new Uint32Array(straight.params.buffer));
      expect(resumed.state).toEqual(straight.state);
      for (const tensor of Object.values(straight.state.tensors)) expect(tensor).toBeInstanceOf(Float32Array);
      // The state is what made the difference: a fresh optimizer at step 3 ends elsewhere.
      expect(Array.from(train(spec, 3, true).params)).not.toEqual(Array.from(straight.params));
    });
  }

  it("keeps state in the parameters' precision", () => {
    for (const options of configs) {
      const spec = optimizerSchema.parse(options);
      const optimizer = createOptimizer(spec, { params: new Float64Array(3), grads: new Float64Array(3) });
      for (const tensor of Object.values(optimizer.exportState().tensors)) expect(tensor).toBeInstanceOf(Float64Array);
    }
  });

  it("names its buffers as PyTorch does, and rejects another configuration's or type's", () => {
    const make = (options: Record<string, unknown>) =>
      createOptimizer(optimizerSchema.parse(options), { params: new Float32Array(2), grads: new Float32Array(2) });
    const names = (options: Record<string, unknown>) => Object.keys(make(options).exportState().tensors).sort();
    expect(names({ type: "sgd" })).toEqual(["velocity"]);
    expect(names({ type: "adam" })).toEqual(["exp_avg", "exp_avg_sq"]);
    expect(names({ type: "adamw" })).toEqual(["exp_avg", "exp_avg_sq"]);
    expect(names({ type: "rmsprop" })).toEqual(["square_avg"]);
    expect(names({ type: "rmsprop", momentum: 0.5, centered: true })).toEqual(["grad_avg", "momentum_buffer", "square_avg"]);

    expect(() => make({ type: "adamw" }).importState(make({ type: "adam" }).exportState())).toThrow(/"adam"/);
    expect(() => make({ type: "rmsprop", momentum: 0.5 }).importState(make({ type: "rmsprop" }).exportState())).toThrow(/no "momentum_buffer"/);
    expect(() => make({ type: "rmsprop" }).importState(make({ type: "rmsprop", centered: true }).exportState())).toThrow(/unexpected "grad_avg"/);
    const small = createOptimizer(optimizerSchema.parse({ type: "adam" }), { params: new Float32Array(3), grads: new Float32Array(3) });
    expect(() => make({ type: "adam" }).importState(small.exportState())).toThrow(/3 values for 2/);
  });

  it("rejects parameters and gradients of different lengths", () => {
    expect(() => createOptimizer(optimizerSchema.parse({ type: "adam" }), { params: new Float32Array(3), grads: new Float32Array(2) })).toThrow(
      /3 parameters but 2 gradients/,
    );
  });
});
