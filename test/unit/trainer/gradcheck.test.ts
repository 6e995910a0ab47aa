// Finite-difference gradient checks in float64 of a whole network: backprop through three dense
// layers against central differences of the loss, for every parameter, with every activation and
// every loss, a batch of several rows and several outputs.
import { describe, expect, it } from "vitest";
import {
  buildModel,
  losses,
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
  const loss = losses[lossName];
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
