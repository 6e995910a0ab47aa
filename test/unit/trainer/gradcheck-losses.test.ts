// Finite-difference checks in float64 of every loss's gradient with respect to its predictions:
// central differences of the returned mean against the gradient the loss writes.
import { describe, expect, it } from "vitest";
import { createLoss } from "../../../src/trainer/losses.js";
import type { LossConfig } from "../../../src/trainer/schema/loss.js";

const H = 1e-6;
const TOLERANCE = 1e-6;
const ROWS = 3;
const WIDTH = 4;

/**
 * Predictions and targets for a loss, with every residual clear of the points where the loss is not
 * twice differentiable (|d| = 0 for mae, |d| = delta for huber) so a central difference of step H
 * sees one smooth piece, and every gradient value well above the difference's rounding noise
 * (about 1e-16 / H = 1e-10): residuals of 0.3 to 1.9 in both signs, logits in [-2, 2].
 */
function fixture(config: LossConfig): { pred: Float64Array; target: number[] } {
  const count = ROWS * WIDTH;
  const pred = new Float64Array(count);
  for (let i = 0; i < count; i++) pred[i] = 2 * Math.sin(1.7 * i + 0.3); // spread over [-2, 2]
  const name = typeof config === "string" ? config : config.type;
  if (name === "cross_entropy") {
    return { pred, target: Array.from({ length: ROWS }, (_, r) => (r * 3 + 1) % WIDTH) };
  }
  if (name === "binary_cross_entropy") {
    // 0/1 labels and one soft target (value 5: z = 1.17, σ(z) - 1/2 = 0.26); for 0/1 targets
    // |σ(z) - t| >= σ(-2) = 0.12 with z in [-2, 2].
    return { pred, target: Array.from({ length: count }, (_, i) => (i === 5 ? 0.5 : i % 3 === 0 ? 1 : 0)) };
  }
  // Residual pred - target alternating in sign, magnitudes 0.3 to 1.9: on both sides of huber's
  // delta 1 (clear of it by 0.2) and of delta 0.5 (clear by 0.05); all inside delta 3.
  const residuals = [0.3, -0.45, 0.8, -1.2, 1.5, -1.9, 0.6, -0.4, 1.3, -0.7, 1.8, -1.4];
  return { pred, target: Array.from(pred, (p, i) => p - residuals[i]) };
}

const configs: LossConfig[] = [
  "mse",
  "mae",
  "huber",
  { type: "huber", delta: 0.5 },
  { type: "huber", delta: 3 },
  "cross_entropy",
  "binary_cross_entropy",
];

describe("loss gradients against finite differences (float64)", () => {
  for (const config of configs) {
    it(JSON.stringify(config), () => {
      const loss = createLoss(config);
      const { pred, target } = fixture(config);
      const grad = new Float64Array(pred.length);
      const value = loss.evaluate(pred, target, ROWS, WIDTH, grad);
      expect(loss.evaluate(pred, target, ROWS, WIDTH, null)).toBe(value); // the gradient is a side output only

      let worst = 0;
      for (let i = 0; i < pred.length; i++) {
        const saved = pred[i];
        pred[i] = saved + H;
        const up = loss.evaluate(pred, target, ROWS, WIDTH, null);
        pred[i] = saved - H;
        const down = loss.evaluate(pred, target, ROWS, WIDTH, null);
        pred[i] = saved;
        const numeric = (up - down) / (2 * H);
        expect(Math.abs(grad[i]), `gradient ${i} too small to check`).toBeGreaterThan(1e-4);
        worst = Math.max(worst, Math.abs(grad[i] - numeric) / Math.max(Math.abs(grad[i]), Math.abs(numeric)));
      }
      expect(worst).toBeLessThan(TOLERANCE);
    });
  }
});
