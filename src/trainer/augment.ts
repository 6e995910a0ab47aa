// Augmentation of training batches: random changes to each image, drawn from a seeded stream, so a
// model sees slightly different pictures every epoch without the dataset growing. The spec is the
// `augmentation` field of a job config (schema/augmentation.ts). It runs on training batches only;
// validation and prediction never see it.
//
// The caller owns the Rng and gives augmentation its own stream of the job seed (`new Rng(seed, 4)`),
// so turning augmentation on or off changes neither the batch order nor the dropout masks. Because
// the stream is the caller's, its state goes into checkpoints with the others and a resumed job
// augments exactly as it would have.
import { TrainerError } from "./errors.js";
import type { Rng } from "./rng.js";
import type { AugmentationSpec } from "./schema/augmentation.js";

export interface Augmenter {
  /**
   * Augments the first `rows` images of a batch in place. `x` is row-major, each row one image
   * channels-first ([C, H, W] flattened). Allocates nothing.
   */
  apply(x: Float32Array, rows: number): void;
}

/** The geometry of one image; an [H, W] input shape is one channel. */
interface ImageShape {
  channels: number;
  height: number;
  width: number;
}

/**
 * Builds the augmenter for `spec` over inputs of `inputShape`, drawing from `rng`.
 *
 * Returns null when every option is 0 (there is nothing to do, and the caller can skip the call).
 * Throws TrainerError("invalid_config") when an option is set but the inputs are not images
 * ([C, H, W], or [H, W] taken as one channel).
 *
 * Per image, the draws come in this fixed order, and an option that is 0 draws nothing, so a seed
 * and a spec reproduce the same images exactly:
 *   1. horizontal flip: one uniform u, flip when u < horizontal_flip (so 1 always flips);
 *   2. translate: dx, then dy, uniform integers in [-translate, translate];
 *   3. brightness: one uniform shift in [-brightness, brightness);
 *   4. noise: one N(0, noise_std) sample per pixel, channel by channel, row by row.
 * The flip is applied before the shift: a pixel lands at (y + dy, x' + dx) where x' is its mirrored
 * column. The uncovered border after a shift is 0, then brightness and noise apply to every pixel.
 */
export function createAugmenter(spec: AugmentationSpec, inputShape: number[], rng: Rng): Augmenter | null {
  const flipP = spec.horizontal_flip;
  const shift = spec.translate;
  const brightness = spec.brightness;
  const noiseStd = spec.noise_std;
  if (flipP === 0 && shift === 0 && brightness === 0 && noiseStd === 0) return null;

  const { channels, height, width } = imageShape(inputShape);
  const plane = height * width;
  const size = channels * plane;
  // One image's worth of scratch, allocated once: the flip and the shift read from it.
  const scratch = new Float32Array(size);
  const span = 2 * shift + 1;

  return {
    apply(x, rows) {
      if (!Number.isInteger(rows) || rows < 0 || x.length < rows * size) {
        throw new TrainerError(
          "dataset_mismatch",
          `augment: a batch of ${rows} image(s) of ${size} values needs ${rows * size} values, got ${x.length}.`,
        );
      }
      for (let r = 0; r < rows; r++) {
        const base = r * size;
        const flip = flipP > 0 && rng.next() < flipP;
        const dx = shift > 0 ? rng.int(span) - shift : 0;
        const dy = shift > 0 ? rng.int(span) - shift : 0;
        if (flip || dx !== 0 || dy !== 0) moveImage(x, base, scratch, channels, height, width, flip, dx, dy);
        if (brightness > 0) {
          const delta = rng.uniform(-brightness, brightness);
          for (let i = 0; i < size; i++) x[base + i] += delta;
        }
        if (noiseStd > 0) {
          for (let i = 0; i < size; i++) x[base + i] += noiseStd * rng.normal();
        }
      }
    },
  };
}

/** [C, H, W] or [H, W] (one channel), positive integers; anything else is not an image. */
function imageShape(shape: number[]): ImageShape {
  const valid = (shape.length === 2 || shape.length === 3) && shape.every((d) => Number.isInteger(d) && d >= 1);
  if (!valid) {
    throw new TrainerError(
      "invalid_config",
      `Augmentation needs image inputs ([C, H, W], or [H, W] for one channel); the input shape is [${shape.join(", ")}].`,
    );
  }
  return shape.length === 3
    ? { channels: shape[0], height: shape[1], width: shape[2] }
    : { channels: 1, height: shape[0], width: shape[1] };
}

/**
 * Mirrors (optionally) and shifts the image at `x[base..]` by (dx, dy), zero-filling what is
 * uncovered; every channel moves the same way. Copies the image to `scratch` first, then writes
 * each destination pixel from its source: out(c, y, x) = in(c, y - dy, flip ? W-1-(x-dx) : x-dx).
 */
function moveImage(
  x: Float32Array,
  base: number,
  scratch: Float32Array,
  channels: number,
  height: number,
  width: number,
  flip: boolean,
  dx: number,
  dy: number,
): void {
  const size = channels * height * width;
  for (let i = 0; i < size; i++) scratch[i] = x[base + i];
  for (let c = 0; c < channels; c++) {
    const plane = c * height * width;
    for (let row = 0; row < height; row++) {
      const dst = base + plane + row * width;
      const srcRow = row - dy;
      if (srcRow < 0 || srcRow >= height) {
        for (let col = 0; col < width; col++) x[dst + col] = 0;
        continue;
      }
      const src = plane + srcRow * width;
      for (let col = 0; col < width; col++) {
        const shifted = col - dx;
        if (shifted < 0 || shifted >= width) x[dst + col] = 0;
        else x[dst + col] = scratch[src + (flip ? width - 1 - shifted : shifted)];
      }
    }
  }
}
