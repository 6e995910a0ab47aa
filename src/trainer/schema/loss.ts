// The `loss` field of a job config: a name, or an object `{ "type": name, ...options }` for a loss
// that takes options (huber's delta).
import { z } from "zod";

/**
 * mse, mae, huber: regression (mean over every output value of the batch).
 * cross_entropy: classification over integer labels; the loss applies softmax to the last layer's
 * outputs (logits), so that layer is linear or softmax (which is then folded in).
 * binary_cross_entropy: one or more independent 0/1 targets (multi-label); the loss applies the
 * sigmoid to the outputs (logits), so the last layer is linear or sigmoid (folded in).
 */
export const lossNameSchema = z.enum(["mse", "mae", "huber", "cross_entropy", "binary_cross_entropy"]);
export type LossName = z.infer<typeof lossNameSchema>;

export const lossSchema = z
  .union([
    lossNameSchema,
    z.discriminatedUnion("type", [
      z.strictObject({ type: z.literal("mse") }),
      z.strictObject({ type: z.literal("mae") }),
      z.strictObject({
        type: z.literal("huber"),
        delta: z.number().positive().default(1).describe("Where the loss turns from quadratic to linear (PyTorch's HuberLoss)."),
      }),
      z.strictObject({ type: z.literal("cross_entropy") }),
      z.strictObject({ type: z.literal("binary_cross_entropy") }),
    ]),
  ])
  .describe(
    "A name, or { type, ...options }. Regression: mse, mae, huber (delta, default 1), each the mean over every output value. " +
      "Classification: cross_entropy over integer labels; it applies softmax itself, so the last layer is linear (or softmax, folded in). " +
      "Multi-label: binary_cross_entropy on 0/1 target columns; it applies the sigmoid itself (last layer linear, or sigmoid folded in).",
  );
export type LossConfig = z.infer<typeof lossSchema>;

/** The loss as an object with its options filled in, whichever form the config used. */
export function lossSpec(loss: LossConfig): { type: LossName; delta: number } {
  if (typeof loss === "string") return { type: loss, delta: 1 };
  return { type: loss.type, delta: loss.type === "huber" ? loss.delta : 1 };
}
