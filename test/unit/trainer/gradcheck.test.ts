// Finite-difference gradient checks in float64 of a whole network: backprop through three dense
// layers against central differences of the loss, for every parameter, with every activation and
// every loss, a batch of several rows and several outputs.
import { describe, expect, it } from "vitest";
import {
  buildModel,
  createLoss,
  modelSchema,
  Rng,
  type Activation,
  type LossName,
  type Model,
  type ModelSpec,
} from "../../../src/trainer/index.js";

const EPS = 1e-6;
const TOLERANCE = 1e-6;
const INPUTS = 3;
const ROWS = 5;
const OUTPUTS = 3;
const LABEL = 1; // cross_entropy: every row's class

/**
 * The relative error |a - n| / (|a| + |n|) is only meaningful when the gradient stands well above
 * the noise of the numeric estimate (about ulp(loss) / 2 eps = 1e-10 in float64). Random parameters
 * fail that now and then: gradients that are sums of terms of both signs can cancel to ~1e-7. So
 * the parameters are built to rule out both cancellation and kinks:
 *
 * - Inputs are positive. Unit v of a layer has a sign s_v, and its weight from unit u of the layer
 *   below is s_v * t_u * m with m in [0.2, 0.6], where t_u is the sign of u's output (+1 for inputs,
 *   relu and sigmoid; s_u for the odd activations tanh and linear). Its bias is 0.1 s_v. Then every
 *   pre-activation z_v has the sign s_v and |z_v| >= 0.1: relu units are clearly alive (s = +1) or
 *   dead (s = -1), never near the kink, and moderate m keeps tanh and sigmoid out of saturation.
 * - Hidden units alternate signs (so negative values flow through tanh/linear and half the relu
 *   units are dead), except under sigmoid, whose outputs are all positive, so its units are all +1.
 * - With this, d out_j / d theta has one sign for every row (t_u t_v s_j, where theta joins u to
 *   v), and the loss gradient d L / d out_j is given that sign s_j in every row: mse and mae
 *   targets sit 0.5 to 1.5 away from the outputs (also clear of |.|'s kink) on the side s_j says;
 *   for cross_entropy all rows share one label and that class's output unit gets s = -1, since its
 *   gradient p - 1 is negative while the others' p is positive. Nothing cancels.
 */
function setParams(model: Model, activation: Activation, lossName: LossName, rng: Rng): void {
  const last = model.layers.length - 1;
  const unitSign = (layer: number, unit: number): number => {
    if (layer === last) return lossName === "cross_entropy" ? (unit === LABEL ? -1 : 1) : unit % 2 === 0 ? 1 : -1;
    return activation === "sigmoid" ? 1 : unit % 2 === 0 ? 1 : -1;
  };
  const outputSign = (layer: number, unit: number): number =>
    layer < 0 || activation === "relu" || activation === "sigmoid" ? 1 : unitSign(layer, unit);

  model.importTensors(
    model.exportTensors().map(({ name, shape }) => {
      const layer = Number(name.split(".")[0]);
      const values = new Float32Array(shape[0] * (shape[1] ?? 1));
      if (name.endsWith(".bias")) {
        for (let v = 0; v < shape[0]; v++) values[v] = 0.1 * unitSign(layer, v);
      } else {
        const inWidth = shape[1]; // PyTorch layout [units, in_features]
        for (let v = 0; v < shape[0]; v++) {
          for (let u = 0; u < inWidth; u++) {
            values[v * inWidth + u] = unitSign(layer, v) * outputSign(layer - 1, u) * rng.uniform(0.2, 0.6);
          }
        }
      }
      return { name, shape, data: values };
    }),
  );
}

function buildCase(activation: Activation) {
  const spec: ModelSpec = {
    layers: [
      { type: "dense", units: 4, activation },
      { type: "dense", units: 5, activation },
      { type: "dense", units: OUTPUTS, activation },
    ],
  };
  return buildModel(spec, INPUTS, { seed: 1, dtype: "float64" });
}

/** Backprop's gradient and the worst disagreement with central differences over all parameters. */
function gradientCheck(model: Model, x: Float64Array, lossName: LossName, makeTarget: (out: Float64Array) => Float64Array) {
  const loss = createLoss(lossName);
  const out = Float64Array.from(model.forward(x, ROWS, true).subarray(0, ROWS * OUTPUTS));
  const target = makeTarget(out);
  const lossGrad = new Float64Array(ROWS * OUTPUTS);
  loss.evaluate(out, target, ROWS, OUTPUTS, lossGrad);
  model.forward(x, ROWS, true); // the forward whose activations backward uses
  model.backward(lossGrad, ROWS);
  const analytic = Float64Array.from(model.grads);

  const lossAt = () => loss.evaluate(model.forward(x, ROWS, false), target, ROWS, OUTPUTS, null);
  const params = model.params;
  const numeric = new Float64Array(params.length);
  for (let i = 0; i < params.length; i++) {
    const saved = params[i];
    params[i] = saved + EPS;
    const plus = lossAt();
    params[i] = saved - EPS;
    const minus = lossAt();
    params[i] = saved;
    numeric[i] = (plus - minus) / (2 * EPS);
  }
  return { analytic, numeric };
}

function worstRelativeError(analytic: Float64Array, numeric: Float64Array) {
  const worst = { error: 0, index: -1, analytic: 0, numeric: 0 };
  analytic.forEach((a, i) => {
    const n = numeric[i];
    const error = Math.abs(a - n) / Math.max(1e-8, Math.abs(a) + Math.abs(n));
    if (error > worst.error) Object.assign(worst, { error, index: i, analytic: a, numeric: n });
  });
  return worst;
}

function targetsFor(lossName: LossName, rng: Rng) {
  return (out: Float64Array): Float64Array => {
    if (lossName === "cross_entropy") return new Float64Array(ROWS).fill(LABEL);
    // Output column j's residual out - target has the sign s_j = (+, -, +) and |residual| >= 0.5.
    return out.map((o, i) => o - (i % OUTPUTS % 2 === 0 ? 1 : -1) * rng.uniform(0.5, 1.5));
  };
}

const activationsToCheck: Activation[] = ["relu", "tanh", "sigmoid", "linear"];
const lossesToCheck: LossName[] = ["mse", "mae", "cross_entropy"];
const PARAM_COUNT = 4 * 3 + 4 + 5 * 4 + 5 + 3 * 5 + 3;

describe("gradients match central differences (float64, every parameter)", () => {
  for (const activation of activationsToCheck) {
    for (const lossName of lossesToCheck) {
      it(`${activation} layers + ${lossName}`, () => {
        const rng = new Rng(2024);
        const model = buildCase(activation);
        setParams(model, activation, lossName, rng);
        const x = new Float64Array(ROWS * INPUTS).map(() => rng.uniform(0.5, 1.5));
        const { analytic, numeric } = gradientCheck(model, x, lossName, targetsFor(lossName, rng));

        expect(analytic.length).toBe(PARAM_COUNT);
        // Not vacuous: most of the gradient is non-zero (relu's dead units give exact zeros).
        const nonZero = analytic.filter((g) => g !== 0).length;
        expect(nonZero).toBeGreaterThan(activation === "relu" ? PARAM_COUNT / 4 : PARAM_COUNT - 1);
        const worst = worstRelativeError(analytic, numeric);
        expect(worst.error, JSON.stringify(worst)).toBeLessThan(TOLERANCE);
      });
    }
  }

  // Random weights, inputs and targets of both signs, for generality; a gradient here may cancel to
  // near the numeric noise floor, so this one allows an absolute error of 1e-9 as well.
  for (const activation of ["tanh", "sigmoid", "linear"] as const) {
    for (const lossName of lossesToCheck) {
      it(`${activation} + ${lossName}, random parameters of both signs`, () => {
        const rng = new Rng(77);
        const model = buildCase(activation);
        model.params.forEach((_, i) => (model.params[i] = rng.uniform(-1, 1)));
        const x = new Float64Array(ROWS * INPUTS).map(() => rng.uniform(-2, 2));
        const target = (out: Float64Array) =>
          lossName === "cross_entropy" ? new Float64Array(ROWS).map(() => rng.int(OUTPUTS)) : out.map((o) => o + (rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.5, 1.5));
        const { analytic, numeric } = gradientCheck(model, x, lossName, target);
        analytic.forEach((a, i) => expect(Math.abs(a - numeric[i]), `parameter ${i}`).toBeLessThan(1e-6 * Math.abs(numeric[i]) + 1e-9));
      });
    }
  }

  it("the relu construction has dead and live units, all clear of the kink", () => {
    const model = buildCase("relu");
    setParams(model, "relu", "mse", new Rng(2024));
    model.reserve(1);
    const hidden = Array.from(model.layers[0].forward(new Float64Array([0.5, 0.5, 0.5]), 1, false).subarray(0, 4));
    expect(hidden.filter((v) => v === 0)).toHaveLength(2);
    expect(hidden.filter((v) => v >= 0.1)).toHaveLength(2);
  });

  it("the first layer does not compute the gradient of the model input", () => {
    const spec: ModelSpec = {
      layers: [
        { type: "dense", units: 2, activation: "tanh" },
        { type: "dense", units: 1, activation: "linear" },
      ],
    };
    const model = buildModel(spec, 3, { seed: 0, dtype: "float64" });
    model.forward(new Float64Array(3), 1, true);
    expect(model.layers[1].backward(new Float64Array([1]), 1)).toHaveLength(2);
    expect(model.layers[0].backward(new Float64Array([1, 1]), 1)).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// Every layer kind, in small float64 networks, against central differences of a loss that is a
// fixed weighted sum of the outputs, L = Σ w_i·y_i (so dL/dy = w: the check isolates the layers).
//
// The numeric estimate is only exact where the network is smooth: a parameter nudged by LAYER_EPS
// must not move a relu or leaky_relu pre-activation across 0 or change which value wins a max-pool
// window. Inputs and parameters are random, which makes that improbable, and `assertSmoothAround`
// checks it for each case: every such pre-activation is at least MARGIN from 0 and every max-pool
// window's winner beats the runner-up by MARGIN (windows of exact zeros, all-dead relu units, stay
// tied under any nudge and are fine). elu needs no margin: its derivative is continuous at 0.
//
// Gradients are compared with a relative error below TOLERANCE plus NOISE, the noise floor of the
// differences, so that a gradient near 1e-9 (through two leaky_relu slopes, say) is not judged by
// its noise.
//
// A parameter whose true gradient is exactly zero (the bias of a linear layer right before
// batchnorm: normalisation removes any shift) cannot pass a relative test against numeric noise;
// those are listed by the case and checked to be zero instead.
// ---------------------------------------------------------------------------------------------

/** The step of the central differences. Larger than the dense checks' EPS: these losses are sums
 *  of order 10, whose rounding noise (ulps over 2·EPS) would otherwise swamp gradients of 1e-4. */
const LAYER_EPS = 1e-5;
/** The noise floor of those differences (measured: below 2e-10 here), as an absolute tolerance. */
const NOISE = 1e-9;
/** How far a pre-activation must stay from relu's kink, and a max-pool winner from the runner-up:
 *  LAYER_EPS times the largest plausible d(value)/d(parameter), with room to spare. */
const MARGIN = 1e-3;

function makeSpec(inputShape: number[] | undefined, layers: unknown[]): ModelSpec {
  return modelSchema.parse({ input_shape: inputShape, layers });
}

/** Gives biases and batchnorm's gamma random values too (init leaves them at 0 and 1). */
function randomiseParams(model: Model, rng: Rng): void {
  model.importTensors(
    model.exportTensors().map((t) => {
      if (t.name.endsWith(".bias")) return { ...t, data: t.data.map(() => rng.uniform(-0.5, 0.5)) };
      const gamma = t.name.endsWith(".weight") && t.shape.length === 1;
      return gamma ? { ...t, data: t.data.map(() => rng.uniform(0.5, 1.5)) } : t;
    }),
  );
}

/** Throws unless the network is smooth around the current parameters (see above). */
function assertSmoothAround(model: Model, x: Float64Array, rows: number): void {
  const layers = model.spec.layers;
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const kinked = "activation" in layer && (layer.activation === "relu" || layer.activation === "leaky_relu");
    if (!kinked && layer.type !== "maxpool2d") continue;
    // The values entering layer i's kink or window: the outputs of layers 0..i of a twin model whose
    // layer i is linear (for a standalone activation layer: the outputs of layers 0..i-1).
    const fused = "activation" in layer && layer.type !== "activation";
    const twinLayers = fused ? [...layers.slice(0, i), { ...layer, activation: "linear" }] : layers.slice(0, i);
    let values: Float64Array;
    if (twinLayers.length === 0) values = x;
    else {
      const twin = buildModel({ ...model.spec, layers: twinLayers as ModelSpec["layers"] }, model.inputWidth, { seed: 0, dtype: "float64" });
      const names = new Set(twin.exportTensors().map((t) => t.name));
      twin.importTensors(model.exportTensors().filter((t) => names.has(t.name)));
      twin.setRngState(model.getRngState());
      values = Float64Array.from(twin.forward(x, rows, true).subarray(0, rows * twin.outputWidth));
    }
    if (layer.type === "maxpool2d") {
      const inShape = i === 0 ? model.shapes.input : model.shapes.layers[i - 1];
      const [c, h, w] = inShape.length === 2 ? [1, ...inShape] : inShape;
      const [ph, pw] = typeof layer.pool_size === "number" ? [layer.pool_size, layer.pool_size] : layer.pool_size;
      const stride = layer.stride ?? layer.pool_size;
      const [sh, sw] = typeof stride === "number" ? [stride, stride] : stride;
      const [oc, oh, ow] = model.shapes.layers[i];
      expect(oc).toBe(c);
      const padH = layer.padding === "same" ? Math.floor(Math.max((oh - 1) * sh + ph - h, 0) / 2) : 0;
      const padW = layer.padding === "same" ? Math.floor(Math.max((ow - 1) * sw + pw - w, 0) / 2) : 0;
      for (let r = 0; r < rows * c; r++) {
        for (let oy = 0; oy < oh; oy++) {
          for (let ox = 0; ox < ow; ox++) {
            const window: number[] = [];
            for (let dy = 0; dy < ph; dy++) {
              for (let dx = 0; dx < pw; dx++) {
                const [y, xx] = [oy * sh - padH + dy, ox * sw - padW + dx];
                if (y >= 0 && y < h && xx >= 0 && xx < w) window.push(values[r * h * w + y * w + xx]);
              }
            }
            window.sort((a, b) => b - a);
            if (window.length < 2 || (window[0] === 0 && window[1] === 0)) continue;
            expect(window[0] - window[1], `layer ${i}: a near-tie in a max-pool window`).toBeGreaterThan(MARGIN);
          }
        }
      }
    } else {
      const closest = values.reduce((m, v) => Math.min(m, Math.abs(v)), Infinity);
      expect(closest, `layer ${i}: a pre-activation near relu's kink`).toBeGreaterThan(MARGIN);
    }
  }
}

/** Backprop's gradient of L = Σ w·y and central differences of L, both in training mode. Dropout
 *  masks are held fixed by restoring the model's RNG state before every forward. */
function layerGradients(model: Model, x: Float64Array, rows: number, rng: Rng) {
  const width = model.outputWidth;
  const weights = new Float64Array(rows * width).map(() => (rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.5, 1.5));
  const state = model.getRngState();
  const lossAt = () => {
    model.setRngState(state);
    const y = model.forward(x, rows, true);
    let sum = 0;
    for (let i = 0; i < rows * width; i++) sum += weights[i] * y[i];
    return sum;
  };
  lossAt();
  model.backward(Float64Array.from(weights), rows);
  const analytic = Float64Array.from(model.grads);
  const params = model.params;
  const numeric = new Float64Array(params.length);
  for (let i = 0; i < params.length; i++) {
    const saved = params[i];
    params[i] = saved + LAYER_EPS;
    const plus = lossAt();
    params[i] = saved - LAYER_EPS;
    const minus = lossAt();
    params[i] = saved;
    numeric[i] = (plus - minus) / (2 * LAYER_EPS);
  }
  model.setRngState(state);
  return { analytic, numeric };
}

/** The flat-buffer indices of a tensor, found by matching exported values with the buffer. */
function paramRange(model: Model, name: string): [number, number] {
  let offset = 0;
  for (const layer of model.layers) {
    for (const t of layer.exportTensors()) {
      if (t.name.endsWith("running_mean") || t.name.endsWith("running_var")) continue;
      if (t.name === name) return [offset, offset + t.data.length];
      offset += t.data.length;
    }
  }
  throw new Error(`no parameter ${name}`);
}

interface LayerCase {
  name: string;
  inputShape?: number[];
  inputWidth: number;
  layers: unknown[];
  rows?: number;
  seed?: number;
  /** Parameters whose gradient is exactly zero (see above). */
  zeroGradient?: string[];
  /** Extra setup, e.g. a dropout mask that is not all ones. */
  check?: (model: Model) => void;
}

function runLayerCase(c: LayerCase) {
  const rng = new Rng(c.seed ?? 11);
  const rows = c.rows ?? 3;
  const model = buildModel(makeSpec(c.inputShape, c.layers), c.inputWidth, { seed: c.seed ?? 11, dtype: "float64" });
  randomiseParams(model, rng);
  const x = new Float64Array(rows * c.inputWidth).map(() => rng.uniform(-1, 1));
  assertSmoothAround(model, x, rows);
  const { analytic, numeric } = layerGradients(model, x, rows, rng);

  const exempt = new Set<number>();
  for (const name of c.zeroGradient ?? []) {
    const [from, to] = paramRange(model, name);
    for (let i = from; i < to; i++) {
      exempt.add(i);
      expect(Math.abs(analytic[i]), `${name}: analytic gradient`).toBeLessThan(1e-12);
      expect(Math.abs(numeric[i]), `${name}: numeric gradient`).toBeLessThan(NOISE);
    }
  }
  // Not vacuous: most of the gradient is non-zero (dead relu units and unused max-pool inputs
  // give exact zeros).
  const nonZero = analytic.filter((g) => g !== 0).length;
  expect(nonZero).toBeGreaterThan((analytic.length - exempt.size) / 3);
  let worst = { excess: -Infinity, index: -1, analytic: 0, numeric: 0 };
  analytic.forEach((a, i) => {
    if (exempt.has(i)) return;
    const n = numeric[i];
    // Relative error below TOLERANCE, plus the noise floor for gradients near it.
    const excess = Math.abs(a - n) - (TOLERANCE * Math.max(Math.abs(a), Math.abs(n)) + NOISE);
    if (excess > worst.excess) worst = { excess, index: i, analytic: a, numeric: n };
  });
  expect(worst.excess, JSON.stringify(worst)).toBeLessThan(0);
  c.check?.(model);
  return { model, analytic, numeric };
}

/** A first conv layer (smooth tanh) whose parameters see the input gradient of the layer under test. */
const convBelow = { type: "conv2d", filters: 3, kernel_size: 2, activation: "tanh" };

describe("layer gradients match central differences (float64, every parameter)", () => {
  // Input [2, 8, 7] -> convBelow -> [3, 7, 6] -> the conv under test.
  const strides = [1, 2, [2, 1]] as const;
  const kernels = [[3, 2], [2, 3], 3] as const;
  for (const padding of ["valid", "same"] as const) {
    for (const stride of strides) {
      for (const kernel_size of kernels) {
        it(`conv2d kernel ${JSON.stringify(kernel_size)}, stride ${JSON.stringify(stride)}, ${padding}`, () => {
          runLayerCase({
            name: "conv",
            inputShape: [2, 8, 7],
            inputWidth: 2 * 8 * 7,
            layers: [convBelow, { type: "conv2d", filters: 4, kernel_size, stride, padding, activation: "linear" }],
          });
        });
      }
    }
  }

  it("conv2d with a fused tanh, as the first layer (no input gradient)", () => {
    runLayerCase({
      name: "first",
      inputShape: [3, 6, 6],
      inputWidth: 108,
      layers: [{ type: "conv2d", filters: 5, kernel_size: 3, stride: 2, padding: "same", activation: "tanh" }],
    });
  });

  const pools = [
    { pool_size: 2 },
    { pool_size: 3, stride: 2 }, // overlapping windows
    { pool_size: [2, 3], stride: 1 },
    { pool_size: 3, stride: [1, 2] },
  ];
  for (const type of ["maxpool2d", "avgpool2d"] as const) {
    for (const padding of ["valid", "same"] as const) {
      for (const pool of pools) {
        it(`${type} ${JSON.stringify(pool)}, ${padding}`, () => {
          runLayerCase({
            name: "pool",
            inputShape: [2, 8, 7],
            inputWidth: 112,
            layers: [convBelow, { type, ...pool, padding }],
          });
        });
      }
    }
  }

  it("flatten, and dense reading an image input flattened", () => {
    runLayerCase({
      name: "flatten",
      inputShape: [2, 5, 5],
      inputWidth: 50,
      layers: [convBelow, { type: "flatten" }, { type: "dense", units: 3, activation: "tanh" }],
    });
    runLayerCase({ name: "dense", inputShape: [2, 5, 5], inputWidth: 50, layers: [convBelow, { type: "dense", units: 3 }] });
  });

  it("batchnorm in training mode on a flat input, and the gradient it passes down", () => {
    runLayerCase({
      name: "bn-flat",
      inputWidth: 4,
      rows: 5,
      layers: [
        { type: "dense", units: 5 },
        { type: "batchnorm" },
        { type: "activation", activation: "tanh" },
        { type: "dense", units: 3, activation: "sigmoid" },
      ],
      // A shift of a feature before batchnorm is normalised away.
      zeroGradient: ["0.bias"],
    });
  });

  it("batchnorm in training mode per channel of an image, and the gradient it passes down", () => {
    runLayerCase({
      name: "bn-image",
      inputShape: [2, 5, 4],
      inputWidth: 40,
      rows: 3,
      layers: [
        { type: "conv2d", filters: 3, kernel_size: 2 },
        { type: "batchnorm", momentum: 0.3, epsilon: 1e-3 },
        { type: "activation", activation: "gelu" },
        { type: "conv2d", filters: 2, kernel_size: [2, 3], stride: 2, padding: "same" },
      ],
      zeroGradient: ["0.bias"],
    });
  });

  it("batchnorm after a non-linear layer (no zero gradients) and as the first layer", () => {
    runLayerCase({
      name: "bn-tanh",
      inputWidth: 3,
      rows: 4,
      layers: [{ type: "dense", units: 4, activation: "tanh" }, { type: "batchnorm" }, { type: "dense", units: 2 }],
    });
    runLayerCase({ name: "bn-first", inputShape: [2, 3, 3], inputWidth: 18, layers: [{ type: "batchnorm" }, { type: "flatten" }, { type: "dense", units: 2 }] });
  });

  const everyActivation = ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "linear"] as const;
  for (const activation of everyActivation) {
    it(`${activation}, fused into dense layers and as an activation layer`, () => {
      runLayerCase({
        name: activation,
        inputWidth: 3,
        rows: 4,
        seed: 5,
        layers: [
          { type: "dense", units: 6, activation },
          { type: "dense", units: 5 },
          { type: "activation", activation },
          { type: "dense", units: 3, activation },
        ],
      });
    });
  }

  it("softmax (not folded into a loss), fused and as an activation layer", () => {
    for (const last of [{ type: "dense", units: 4, activation: "softmax" }, { type: "activation", activation: "softmax" }]) {
      runLayerCase({
        name: "softmax",
        inputWidth: 3,
        rows: 4,
        layers: [{ type: "dense", units: 4, activation: "tanh" }, ...(last.type === "activation" ? [{ type: "dense", units: 4 }] : []), last],
      });
    }
  });

  it("a whole small CNN: conv, batchnorm, relu, maxpool, flatten, dropout (fixed mask), dense", () => {
    for (const rate of [0, 0.3]) {
      runLayerCase({
        name: "cnn",
        inputShape: [1, 8, 8],
        inputWidth: 64,
        rows: 4,
        seed: 3,
        layers: [
          { type: "conv2d", filters: 3, kernel_size: 3, padding: "same" },
          { type: "batchnorm" },
          { type: "activation", activation: "relu" },
          { type: "maxpool2d", pool_size: 2 },
          { type: "flatten" },
          { type: "dropout", rate },
          { type: "dense", units: 3, activation: "softmax" },
        ],
        zeroGradient: ["0.bias"],
        check: (model) => {
          // With rate 0.3 the mask really drops values (else this would test nothing new).
          if (rate === 0) return;
          model.forward(new Float64Array(4 * 64).fill(1), 4, true);
          const dropped = model.layers[5].forward(new Float64Array(4 * 48).fill(1), 4, true).subarray(0, 4 * 48).filter((v) => v === 0).length;
          expect(dropped).toBeGreaterThan(0);
        },
      });
    }
  });

  it("a CNN with fused relu convs and max pooling", () => {
    runLayerCase({
      name: "cnn2",
      inputShape: [1, 9, 9],
      inputWidth: 81,
      rows: 2,
      seed: 10, // one whose 648 first-layer pre-activations all keep MARGIN (checked)
      layers: [
        { type: "conv2d", filters: 4, kernel_size: 3, padding: "same", activation: "relu" },
        { type: "maxpool2d", pool_size: 2, padding: "same" },
        { type: "conv2d", filters: 3, kernel_size: 2, activation: "leaky_relu" },
        { type: "avgpool2d", pool_size: 2 },
        { type: "dense", units: 2, activation: "elu" },
      ],
    });
  });
});
