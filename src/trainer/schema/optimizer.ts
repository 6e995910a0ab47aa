// The `optimizer` field of a job config: a discriminated union on `type`. Defaults follow PyTorch
// (torch.optim) except sgd's momentum.
import { z } from "zod";

const clipNorm = z
  .number()
  .positive()
  .optional()
  .describe("Before each step, scale the gradient down so that its global L2 norm (over every parameter) is at most this. Off by default.");

export const sgdSchema = z
  .strictObject({
    type: z.literal("sgd"),
    lr: z.number().positive().default(0.01).describe("Learning rate (the schedule's base)."),
    momentum: z.number().min(0).lt(1).default(0.9).describe("Momentum factor."),
    nesterov: z.boolean().default(false).describe("Nesterov momentum."),
    weight_decay: z.number().min(0).default(0).describe("L2 penalty added to the gradient."),
    clip_norm: clipNorm,
  })
  .describe("SGD with momentum, PyTorch's formulation: v = momentum*v + g; w -= lr*v (nesterov: w -= lr*(g + momentum*v)).");

const betas = {
  lr: z.number().positive().default(0.001).describe("Learning rate (the schedule's base)."),
  beta1: z.number().min(0).lt(1).default(0.9).describe("Decay of the first-moment average."),
  beta2: z.number().min(0).lt(1).default(0.999).describe("Decay of the second-moment average."),
  eps: z.number().positive().default(1e-8).describe("Added to the denominator for stability."),
  clip_norm: clipNorm,
};

export const adamSchema = z
  .strictObject({ type: z.literal("adam"), ...betas, weight_decay: z.number().min(0).default(0).describe("L2 penalty added to the gradient.") })
  .describe("Adam with bias correction (torch.optim.Adam).");

export const adamwSchema = z
  .strictObject({ type: z.literal("adamw"), ...betas, weight_decay: z.number().min(0).default(0.01).describe("Decoupled decay: w -= lr*weight_decay*w each step.") })
  .describe("AdamW (torch.optim.AdamW).");

export const rmspropSchema = z
  .strictObject({
    type: z.literal("rmsprop"),
    lr: z.number().positive().default(0.01).describe("Learning rate (the schedule's base)."),
    alpha: z.number().min(0).lt(1).default(0.99).describe("Decay of the squared-gradient average."),
    eps: z.number().positive().default(1e-8).describe("Added to the denominator for stability."),
    momentum: z.number().min(0).lt(1).default(0).describe("Momentum factor."),
    centered: z.boolean().default(false).describe("Divide by an estimate of the gradient's variance instead of its second moment."),
    weight_decay: z.number().min(0).default(0).describe("L2 penalty added to the gradient."),
    clip_norm: clipNorm,
  })
  .describe("RMSprop (torch.optim.RMSprop).");

export const optimizerSchema = z
  .discriminatedUnion("type", [sgdSchema, adamSchema, adamwSchema, rmspropSchema])
  .prefault({ type: "sgd" })
  .describe("Default: sgd with its defaults.");
export type OptimizerSpec = z.infer<typeof optimizerSchema>;
