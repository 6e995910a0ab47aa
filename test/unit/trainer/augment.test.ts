import { describe, expect, it } from "vitest";
import { createAugmenter, type Augmenter } from "../../../src/trainer/augment.js";
import { TrainerError } from "../../../src/trainer/errors.js";
import { Rng } from "../../../src/trainer/rng.js";
import { augmentationSchema, type AugmentationSpec } from "../../../src/trainer/schema/augmentation.js";

/** The stream the training loop gives augmentation. */
const AUGMENT_STREAM = 4;

const spec = (over: Partial<AugmentationSpec>): AugmentationSpec => augmentationSchema.parse(over);

function make(over: Partial<AugmentationSpec>, shape: number[], seed = 1): Augmenter {
  const augmenter = createAugmenter(spec(over), shape, new Rng(seed, AUGMENT_STREAM));
  if (!augmenter) throw new Error("expected an augmenter");
  return augmenter;
}

/** An image whose every pixel is distinct: value = 1 + c*100 + y*10 + x (for H, W <= 10). */
function numbered(channels: number, height: number, width: number, rows = 1): Float32Array {
  const x = new Float32Array(rows * channels * height * width);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < height; y++) {
        for (let col = 0; col < width; col++) x[((r * channels + c) * height + y) * width + col] = 1 + c * 100 + y * 10 + col;
      }
    }
  }
  return x;
}

describe("createAugmenter", () => {
  it("returns null when every option is 0, whatever the shape", () => {
    expect(createAugmenter(spec({}), [1, 4, 4], new Rng(1, AUGMENT_STREAM))).toBeNull();
    expect(createAugmenter(spec({}), [10], new Rng(1, AUGMENT_STREAM))).toBeNull();
  });

  it("rejects a non-image input shape when an option is set", () => {
    for (const shape of [[16], [2, 2, 2, 2], [1, 0, 4], [1, 2.5, 4]]) {
      let caught: unknown;
      try {
        createAugmenter(spec({ noise_std: 0.1 }), shape, new Rng(1, AUGMENT_STREAM));
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(TrainerError);
      expect((caught as TrainerError).code).toBe("invalid_config");
      expect((caught as TrainerError).message).toMatch(/image/);
    }
  });

  it("accepts [H, W] as one channel", () => {
    const x = numbered(1, 2, 3);
    make({ horizontal_flip: 1 }, [2, 3]).apply(x, 1);
    expect(Array.from(x)).toEqual([3, 2, 1, 13, 12, 11]);
  });

  it("rejects a batch too short for its rows", () => {
    expect(() => make({ noise_std: 0.1 }, [1, 2, 2]).apply(new Float32Array(7), 2)).toThrow(TrainerError);
  });
});

describe("horizontal flip", () => {
  it("mirrors each row of each channel exactly, the same way in every channel", () => {
    const x = numbered(2, 3, 4);
    make({ horizontal_flip: 1 }, [2, 3, 4]).apply(x, 1);
    // channel 0 rows: [1..4], [11..14], [21..24]; channel 1 the same + 100, each reversed.
    expect(Array.from(x)).toEqual([
      4, 3, 2, 1, 14, 13, 12, 11, 24, 23, 22, 21,
      104, 103, 102, 101, 114, 113, 112, 111, 124, 123, 122, 121,
    ]);
  });

  it("never flips with p = 0 and always flips with p = 1", () => {
    const rows = 200;
    const never = numbered(1, 3, 3, rows);
    // p = 0 alone is the all-zero spec (null), so add a small brightness: it moves every pixel alike,
    // so a row still rises left to right unless it was flipped.
    make({ horizontal_flip: 0, brightness: 1e-3 }, [1, 3, 3]).apply(never, rows);
    for (let r = 0; r < rows; r++) {
      const row = never.subarray(r * 9, r * 9 + 9);
      expect(row[1] - row[0]).toBeCloseTo(1, 4); // left to right still increasing
    }
    const always = numbered(1, 3, 3, rows);
    make({ horizontal_flip: 1 }, [1, 3, 3]).apply(always, rows);
    for (let r = 0; r < rows; r++) expect(Array.from(always.subarray(r * 9, r * 9 + 9))).toEqual([3, 2, 1, 13, 12, 11, 23, 22, 21]);
  });

  it("flips about p of the images", () => {
    const rows = 2000;
    const x = numbered(1, 1, 2, rows);
    make({ horizontal_flip: 0.3 }, [1, 1, 2]).apply(x, rows);
    let flipped = 0;
    for (let r = 0; r < rows; r++) if (x[r * 2] === 2) flipped++;
    expect(flipped / rows).toBeGreaterThan(0.26);
    expect(flipped / rows).toBeLessThan(0.34);
  });
});

describe("translate", () => {
  /** dx, dy of the first image, as the augmenter draws them (translate only: dx, then dy). */
  function draws(seed: number, t: number): [number, number] {
    const twin = new Rng(seed, AUGMENT_STREAM);
    return [twin.int(2 * t + 1) - t, twin.int(2 * t + 1) - t];
  }

  it("moves pixels by the drawn offset and fills the uncovered border with zeros, in every channel", () => {
    const t = 2;
    // A seed whose draw moves the image both ways by different amounts, so both borders are
    // exercised and swapping dx and dy would show.
    let seed = 1;
    while (draws(seed, t).some((d) => d === 0) || draws(seed, t)[0] === draws(seed, t)[1]) seed++;
    const [dx, dy] = draws(seed, t);
    const [C, H, W] = [2, 5, 6];
    const before = numbered(C, H, W);
    const x = before.slice();
    make({ translate: t }, [C, H, W], seed).apply(x, 1);
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        for (let col = 0; col < W; col++) {
          const sy = y - dy;
          const sx = col - dx;
          const inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
          const expected = inside ? before[(c * H + sy) * W + sx] : 0;
          expect(x[(c * H + y) * W + col], `c=${c} y=${y} x=${col} (dx=${dx}, dy=${dy})`).toBe(expected);
        }
      }
    }
    // Exactly the pixels shifted out are lost.
    const zeros = Array.from(x).filter((v) => v === 0).length;
    expect(zeros).toBe(C * (H * W - (H - Math.abs(dy)) * (W - Math.abs(dx))));
  });

  it("draws offsets over the whole range [-t, t]", () => {
    const rows = 500;
    const x = new Float32Array(rows * 9);
    for (let r = 0; r < rows; r++) x[r * 9 + 4] = 1; // one lit pixel in the centre of a 3x3 image
    make({ translate: 1 }, [1, 3, 3]).apply(x, rows);
    const landed = new Set<number>();
    for (let r = 0; r < rows; r++) {
      const img = Array.from(x.subarray(r * 9, r * 9 + 9));
      expect(img.filter((v) => v === 1)).toHaveLength(1); // a shift of at most 1 keeps it inside
      landed.add(img.indexOf(1));
    }
    expect([...landed].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("composes with a flip: mirrored first, then shifted", () => {
    const t = 1;
    let seed = 1;
    while (true) {
      const twin = new Rng(seed, AUGMENT_STREAM);
      twin.next(); // the flip draw (p = 1 always flips)
      const dx = twin.int(3) - 1;
      const dy = twin.int(3) - 1;
      if (dx === 1 && dy === 0) break;
      seed++;
    }
    const x = numbered(1, 1, 4);
    make({ horizontal_flip: 1, translate: t }, [1, 1, 4], seed).apply(x, 1);
    // flipped [4, 3, 2, 1], then shifted right by one.
    expect(Array.from(x)).toEqual([0, 4, 3, 2]);
  });
});

describe("brightness", () => {
  it("adds one shift in [-b, b] to every pixel of an image", () => {
    const b = 0.2;
    const rows = 300;
    const [C, H, W] = [2, 4, 4];
    const size = C * H * W;
    const before = numbered(C, H, W, rows);
    const x = before.slice();
    make({ brightness: b }, [C, H, W]).apply(x, rows);
    const shifts: number[] = [];
    for (let r = 0; r < rows; r++) {
      const shift = x[r * size] - before[r * size];
      expect(Math.abs(shift)).toBeLessThanOrEqual(b + 1e-5);
      for (let i = 1; i < size; i++) expect(x[r * size + i] - before[r * size + i]).toBeCloseTo(shift, 4);
      shifts.push(shift);
    }
    // Spread over the range, not one value.
    expect(Math.min(...shifts)).toBeLessThan(-0.15);
    expect(Math.max(...shifts)).toBeGreaterThan(0.15);
  });
});

describe("noise", () => {
  it("adds independent N(0, noise_std) to each pixel", () => {
    const std = 0.1;
    const [H, W] = [200, 200];
    const x = new Float32Array(H * W);
    make({ noise_std: std }, [1, H, W]).apply(x, 1);
    let sum = 0;
    let sq = 0;
    for (const v of x) {
      sum += v;
      sq += v * v;
    }
    const mean = sum / x.length;
    const measured = Math.sqrt(sq / x.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.002); // 4 standard errors of the mean (0.1 / 200)
    expect(measured).toBeGreaterThan(std * 0.98);
    expect(measured).toBeLessThan(std * 1.02);
    // Neighbouring pixels are uncorrelated.
    let cross = 0;
    for (let i = 1; i < x.length; i++) cross += x[i] * x[i - 1];
    expect(Math.abs(cross / (x.length - 1)) / (std * std)).toBeLessThan(0.03);
  });
});

describe("determinism", () => {
  const all: Partial<AugmentationSpec> = { horizontal_flip: 0.5, translate: 2, brightness: 0.1, noise_std: 0.05 };
  const run = (seed: number) => {
    const augmenter = make(all, [3, 6, 6], seed);
    const x = numbered(3, 6, 6, 8);
    augmenter.apply(x, 4);
    augmenter.apply(x.subarray(4 * 108), 4); // a second batch continues the same stream
    return x;
  };

  it("reproduces bit-identical batches for the same seed and differs for another", () => {
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it("leaves rows past `rows` untouched", () => {
    const x = numbered(1, 3, 3, 2);
    const second = Array.from(x.subarray(9));
    make(all, [1, 3, 3]).apply(x, 1);
    expect(Array.from(x.subarray(9))).toEqual(second);
  });
});
