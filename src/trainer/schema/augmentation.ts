// The `augmentation` field: random changes to training images (inputs with a [C, H, W] shape),
// drawn from the job's seed, applied to training batches only, never to validation or prediction.
import { z } from "zod";

export const augmentationSchema = z
  .strictObject({
    horizontal_flip: z.number().min(0).max(1).default(0).describe("Probability of mirroring an image left to right."),
    brightness: z.number().min(0).default(0).describe("Adds one value drawn uniformly from [-brightness, brightness] to every pixel of an image."),
    noise_std: z.number().min(0).default(0).describe("Standard deviation of gaussian noise added to each pixel."),
    translate: z
      .number()
      .int()
      .min(0)
      .max(64)
      .default(0)
      .describe("Shifts an image by up to this many pixels in each direction (uniform integers), zero-filling the uncovered border."),
  })
  .prefault({})
  .describe("Random changes to training images ([C, H, W] inputs), seeded, for training batches only; all off by default.");
export type AugmentationSpec = z.infer<typeof augmentationSchema>;
