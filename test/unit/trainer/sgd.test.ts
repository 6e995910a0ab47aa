// SGD steps worked out by hand, PyTorch convention:
//   g = grad + wd * w;  v = mu * v + g;  step = nesterov ? g + mu * v : v;  w -= lr * step
import { describe, expect, it } from "vitest";
import { createOptimizer } from "../../../src/trainer/optimizers/optimizer.js";
import { optimizerSchema } from "../../../src/trainer/schema/optimizer.js";

function setup(options: Record<string, unknown>, w = [1, -2]) {
  const params = new Float64Array(w);
  const grads = new Float64Array(params.length);
  const optimizer = createOptimizer(optimizerSchema.parse({ type: "sgd", ...options }), { params, grads });
  // The gradient is held at [0.5, 1] for every step, so each step can be followed by hand.
  const step = (lr: number) => {
    grads.set([0.5, 1]);
    optimizer.step(lr);
    return Array.from(params);
  };
  return { params, grads, optimizer, step };
}

const expectClose = (actual: number[], expected: number[]) => expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, 12));

describe("sgd", () => {
  it("plain momentum", () => {
    const { step } = setup({ lr: 0.1, momentum: 0.9 });
    // 1: v = [0.5, 1];                         w = [1 - 0.05, -2 - 0.1]       = [0.95, -2.1]
    expectClose(step(0.1), [0.95, -2.1]);
    // 2: v = 0.9 [0.5, 1] + [0.5, 1] = [0.95, 1.9];  w = [0.95 - 0.095, -2.1 - 0.19] = [0.855, -2.29]
    expectClose(step(0.1), [0.855, -2.29]);
    // 3: v = 0.9 [0.95, 1.9] + [0.5, 1] = [1.355, 2.71]; w = [0.855 - 0.1355, -2.29 - 0.271] = [0.7195, -2.561]
    expectClose(step(0.1), [0.7195, -2.561]);
  });

  it("nesterov", () => {
    const { step } = setup({ lr: 0.1, momentum: 0.9, nesterov: true });
    // 1: v = [0.5, 1]; step = g + 0.9 v = [0.95, 1.9];            w = [0.905, -2.19]
    expectClose(step(0.1), [0.905, -2.19]);
    // 2: v = [0.95, 1.9]; step = [0.5 + 0.855, 1 + 1.71] = [1.355, 2.71]; w = [0.905 - 0.1355, -2.19 - 0.271] = [0.7695, -2.461]
    expectClose(step(0.1), [0.7695, -2.461]);
    // 3: v = 0.9 [0.95, 1.9] + g = [1.355, 2.71]; step = g + 0.9 v = [0.5 + 1.2195, 1 + 2.439] = [1.7195, 3.439];
    //    w = [0.7695 - 0.17195, -2.461 - 0.3439] = [0.59755, -2.8049]
    expectClose(step(0.1), [0.59755, -2.8049]);
  });

  it("weight decay", () => {
    const { step } = setup({ lr: 0.1, momentum: 0.5, weight_decay: 0.1 });
    // 1: g = [0.5 + 0.1 * 1, 1 + 0.1 * -2] = [0.6, 0.8]; v = g;     w = [1 - 0.06, -2 - 0.08] = [0.94, -2.08]
    expectClose(step(0.1), [0.94, -2.08]);
    // 2: g = [0.5 + 0.094, 1 - 0.208] = [0.594, 0.792]; v = 0.5 [0.6, 0.8] + g = [0.894, 1.192];
    //    w = [0.94 - 0.0894, -2.08 - 0.1192] = [0.8506, -2.1992]
    expectClose(step(0.1), [0.8506, -2.1992]);
    // 3: g = [0.5 + 0.08506, 1 - 0.21992] = [0.58506, 0.78008]; v = 0.5 [0.894, 1.192] + g = [1.03206, 1.37608];
    //    w = [0.8506 - 0.103206, -2.1992 - 0.137608] = [0.747394, -2.336808]
    expectClose(step(0.1), [0.747394, -2.336808]);
  });

  it("without momentum is w -= lr * grad, with the lr given to each step", () => {
    const { step } = setup({ momentum: 0 });
    expectClose(step(0.1), [0.95, -2.1]);
    expectClose(step(1), [0.45, -3.1]); // the schedule's lr, not the config's
  });

  it("exports and imports its state exactly", () => {
    const a = setup({ lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01 });
    a.step(0.1);
    a.step(0.1);
    const saved = a.optimizer.exportState();
    expect(saved.type).toBe("sgd");
    expect(saved.step).toBe(2);
    expect(Object.keys(saved.tensors)).toEqual(["velocity"]);
    expect(saved.tensors.velocity).toBeInstanceOf(Float64Array);
    expect(saved.tensors.velocity).toHaveLength(2);

    const b = setup({ lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01 }, Array.from(a.params));
    b.optimizer.importState(saved);
    expect(b.step(0.1)).toEqual(a.step(0.1)); // bit for bit
    expect(b.optimizer.exportState()).toEqual(a.optimizer.exportState());

    // A fresh optimizer (zero velocity) would have stepped differently.
    const c = setup({ lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01 }, Array.from(b.params));
    expect(c.step(0.1)).not.toEqual(b.step(0.1));
  });

  it("exports a copy, and imports one", () => {
    const { optimizer, step } = setup({ momentum: 0.9 });
    step(0.1);
    const saved = optimizer.exportState();
    saved.tensors.velocity[0] = 123;
    expect(optimizer.exportState().tensors.velocity[0]).toBe(0.5);
    optimizer.importState(saved);
    saved.tensors.velocity[0] = 456;
    expect(optimizer.exportState().tensors.velocity[0]).toBe(123);
  });

  it("rejects state of the wrong size or kind, changing nothing", () => {
    const { optimizer, step } = setup({});
    step(0.1);
    const before = optimizer.exportState();
    const velocity = new Float64Array(2);
    expect(() => optimizer.importState({ type: "sgd", step: 0, tensors: { velocity: new Float64Array(3) } })).toThrow(/3 values for 2/);
    expect(() => optimizer.importState({ type: "adam", step: 0, tensors: { velocity } })).toThrow(/adam/);
    expect(() => optimizer.importState({ type: "sgd", step: 0, tensors: {} })).toThrow(/no "velocity"/);
    expect(() => optimizer.importState({ type: "sgd", step: 0, tensors: { velocity, exp_avg: velocity } })).toThrow(/unexpected "exp_avg"/);
    expect(() => optimizer.importState({ type: "sgd", step: -1, tensors: { velocity } })).toThrow(/step/);
    expect(optimizer.exportState()).toEqual(before);
  });

  it("keeps float32 velocity for float32 parameters, exactly through export", () => {
    const params = new Float32Array([0.1, 0.2, 0.3]);
    const grads = new Float32Array([0.7, -0.3, 1 / 3]);
    const optimizer = createOptimizer(optimizerSchema.parse({ type: "sgd" }), { params, grads });
    optimizer.step(0.01);
    const velocity = optimizer.exportState().tensors.velocity;
    expect(velocity).toBeInstanceOf(Float32Array);
    expect(velocity).toEqual(new Float32Array([0.7, -0.3, 1 / 3]));
  });
});
