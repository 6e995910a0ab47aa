// The `lr_schedule` field: how the learning rate moves during training. The base rate is the
// optimizer's `lr`. Every schedule takes `warmup_epochs`: the rate first rises linearly, step by
// step, from lr/warmup_steps to lr over that many epochs, and the schedule proper starts after it
// (its epoch and step counters start at the end of the warm-up).
import { z } from "zod";

export const monitorSchema = z
  .enum(["val_loss", "train_loss", "val_accuracy", "val_mae", "val_rmse", "val_top5_accuracy"])
  .describe("A value measured at each validation: val_accuracy and val_top5_accuracy (more than 5 classes) for classification, val_mae and val_rmse for regression.");
export type Monitor = z.infer<typeof monitorSchema>;

const warmup = {
  warmup_epochs: z
    .number()
    .int()
    .min(0)
    .max(100000)
    .default(0)
    .describe("Epochs of linear warm-up (per step, from lr/warmup_steps up to lr) before the schedule starts; less than epochs."),
};

export const scheduleSchema = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("constant"), ...warmup }).describe("The optimizer's lr throughout."),
    z
      .strictObject({
        type: z.literal("step"),
        step_size: z.number().int().min(1).describe("Epochs between decays."),
        gamma: z.number().gt(0).max(1).default(0.1).describe("Factor applied at each decay."),
        ...warmup,
      })
      .describe("lr * gamma^floor(epoch / step_size) (torch StepLR)."),
    z
      .strictObject({
        type: z.literal("exponential"),
        gamma: z.number().gt(0).max(1).describe("Factor per epoch (or per every_steps steps)."),
        every_steps: z.number().int().min(1).optional().describe("Decay every this many steps instead of every epoch. Default: per epoch."),
        ...warmup,
      })
      .describe("lr * gamma^epoch, or lr * gamma^floor(step / every_steps)."),
    z
      .strictObject({
        type: z.literal("cosine"),
        min_lr: z.number().min(0).default(0).describe("The lowest rate."),
        ...warmup,
      })
      .describe("Half a cosine from lr down to min_lr over the rest of the run, per step (torch CosineAnnealingLR)."),
    z
      .strictObject({
        type: z.literal("cosine_restarts"),
        T_0: z.number().int().min(1).describe("Epochs in the first cycle."),
        T_mult: z.number().int().min(1).default(1).describe("Each cycle is T_mult times longer than the one before."),
        min_lr: z.number().min(0).default(0).describe("The lowest rate."),
        ...warmup,
      })
      .describe("Cosine from lr to min_lr over T_0 epochs, then restart (torch CosineAnnealingWarmRestarts, per step)."),
    z
      .strictObject({
        type: z.literal("one_cycle"),
        max_lr: z.number().positive().optional().describe("Peak rate; default the optimizer's lr."),
        pct_start: z.number().gt(0).lt(1).default(0.3).describe("Fraction of the steps spent rising."),
        div_factor: z.number().min(1).default(25).describe("Starts at max_lr / div_factor."),
        final_div_factor: z.number().min(1).default(10000).describe("Ends at max_lr / (div_factor * final_div_factor)."),
        anneal_strategy: z.enum(["cos", "linear"]).default("cos").describe("Shape of the rise and the fall."),
        ...warmup,
      })
      .describe("The 1cycle policy (torch OneCycleLR, per step)."),
    z
      .strictObject({
        type: z.literal("reduce_on_plateau"),
        monitor: monitorSchema.default("val_loss"),
        mode: z.enum(["auto", "min", "max"]).default("auto").describe("auto: max for accuracies, min otherwise."),
        factor: z.number().gt(0).lt(1).default(0.1).describe("lr = max(lr * factor, min_lr) on a plateau."),
        patience: z.number().int().min(0).default(10).describe("Validations without improvement tolerated before reducing."),
        cooldown: z.number().int().min(0).default(0).describe("Validations to wait after a reduction before counting again."),
        min_delta: z.number().min(0).default(0.0001).describe("Smallest change that counts as an improvement (absolute)."),
        min_lr: z.number().min(0).default(0).describe("The lowest rate."),
        ...warmup,
      })
      .describe("Reduce lr when the monitored value stops improving (torch ReduceLROnPlateau, absolute threshold)."),
  ])
  .prefault({ type: "constant" })
  .describe("Learning-rate schedule; the optimizer's lr is its base. Default constant. The lr actually used is what the metrics report.");
export type ScheduleSpec = z.infer<typeof scheduleSchema>;
