// The blob-count demo dataset: "count the people in the picture" in miniature. Each image is a
// size x size, one-channel picture of a noisy dark background with 0..maxBlobs bright gaussian blobs;
// the target is how many. Blobs are kept apart so the count is unambiguous to the eye (and to a
// local-maximum detector), which makes it a fair small task for a convolutional network, as
// regression on `count` or as classification over maxBlobs + 1 classes.
//
// Deterministic by seed, with its own small PRNG (the same images on every machine and Node
// version), and generated one image at a time so a large CSV never has to be held in memory.

export interface BlobsOptions {
  /** Number of images, >= 1. */
  rows: number;
  /** Images are size x size pixels, 4..128. */
  size: number;
  /** Each image holds a uniformly drawn count in 0..maxBlobs; at most maxBlobsFor(size). */
  maxBlobs: number;
  /** An integer in [0, 2^32). */
  seed: number;
  /** Standard deviation of the background's gaussian noise, in [0, 1]; default 0.05. */
  noise?: number;
}

export interface BlobsData {
  /** rows * size * size values, row-major, each row one image (row by row of pixels). */
  pixels: Float32Array;
  /** The number of blobs in each image. */
  counts: Int32Array;
}

export const DEFAULT_BLOB_NOISE = 0.05;
/** Blob centres are at least this far apart (pixels), so neighbouring blobs stay separate peaks. */
export const BLOB_MIN_DISTANCE = 3.5;
/** Blob centres keep this far from the image's outer pixel centres, so each peak is inside it. */
const EDGE_MARGIN = 1.5;
const SIGMA_RANGE: [number, number] = [1.0, 1.6];
const PEAK_RANGE: [number, number] = [0.8, 1.0];
/** The background's overall brightness is drawn from [0, this). */
const MAX_BACKGROUND = 0.1;
/** Past about 4 sigma a blob adds less than 0.0004 of its peak: not worth computing. */
const BLOB_REACH_SIGMAS = 4;
const MIN_SIZE = 4;
const MAX_SIZE = 128;
const PLACEMENT_TRIES = 200;
const LAYOUT_TRIES = 200;

/**
 * The largest maxBlobs accepted for a size: half of the blobs that would fit on a square grid of
 * BLOB_MIN_DISTANCE inside the margins (but at least one), so random placement with resampling
 * always succeeds quickly. 20x20 images take up to 12.
 */
export function maxBlobsFor(size: number): number {
  const span = size - 1 - 2 * EDGE_MARGIN;
  if (span < 0) return 0;
  const perSide = Math.floor(span / BLOB_MIN_DISTANCE) + 1;
  return Math.max(1, Math.floor((perSide * perSide) / 2));
}

/** Throws a RangeError that says which option is wrong and what it must be. */
export function validateBlobsOptions(opts: BlobsOptions): Required<BlobsOptions> {
  const { rows, size, maxBlobs, seed } = opts;
  const noise = opts.noise ?? DEFAULT_BLOB_NOISE;
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`rows must be an integer >= 1, got ${rows}.`);
  if (!Number.isInteger(size) || size < MIN_SIZE || size > MAX_SIZE) {
    throw new RangeError(`size must be an integer in [${MIN_SIZE}, ${MAX_SIZE}], got ${size}.`);
  }
  const cap = maxBlobsFor(size);
  if (!Number.isInteger(maxBlobs) || maxBlobs < 0 || maxBlobs > cap) {
    throw new RangeError(
      `maxBlobs must be an integer in [0, ${cap}] for ${size}x${size} images (blobs are kept ` +
        `${BLOB_MIN_DISTANCE} px apart), got ${maxBlobs}.`,
    );
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}.`);
  }
  if (!Number.isFinite(noise) || noise < 0 || noise > 1) throw new RangeError(`noise must be in [0, 1], got ${noise}.`);
  return { rows, size, maxBlobs, seed, noise };
}

/**
 * Yields the images one at a time: `pixels` is ONE buffer, overwritten by the next image (copy it to
 * keep it). generateBlobs and the CSV functions are built on this, so they all give the same images.
 *
 * Per image, in this order: the count (uniform in 0..maxBlobs), the background brightness, the
 * centres (each resampled until it is BLOB_MIN_DISTANCE from those before; the whole layout is
 * redrawn in the unlikely case one cannot be placed), each blob's sigma and peak, then the noise of
 * each pixel.
 */
export function* blobImages(opts: BlobsOptions): Generator<{ pixels: Float32Array; count: number }> {
  const { rows, size, maxBlobs, seed, noise } = validateBlobsOptions(opts);
  const random = new SeededRandom(seed);
  const pixels = new Float32Array(size * size);
  const cx = new Float64Array(maxBlobs);
  const cy = new Float64Array(maxBlobs);
  for (let r = 0; r < rows; r++) {
    const count = random.int(maxBlobs + 1);
    const background = random.uniform(0, MAX_BACKGROUND);
    placeCentres(random, count, size, cx, cy);
    for (let i = 0; i < pixels.length; i++) pixels[i] = background + noise * random.normal();
    for (let b = 0; b < count; b++) {
      const sigma = random.uniform(SIGMA_RANGE[0], SIGMA_RANGE[1]);
      const peak = random.uniform(PEAK_RANGE[0], PEAK_RANGE[1]);
      addBlob(pixels, size, cx[b], cy[b], sigma, peak);
    }
    yield { pixels, count };
  }
}

/** The whole dataset in memory: rows * size * size pixels and the count of each image. */
export function generateBlobs(opts: BlobsOptions): BlobsData {
  const { rows, size } = validateBlobsOptions(opts);
  const width = size * size;
  const pixels = new Float32Array(rows * width);
  const counts = new Int32Array(rows);
  let r = 0;
  for (const image of blobImages(opts)) {
    pixels.set(image.pixels, r * width);
    counts[r] = image.count;
    r++;
  }
  return { pixels, counts };
}

/** `p0,p1,...,p{size*size-1},count`: pixel columns in row-major order, then the target. */
export function blobsCsvHeader(size: number): string {
  const names: string[] = [];
  for (let i = 0; i < size * size; i++) names.push(`p${i}`);
  names.push("count");
  return names.join(",");
}

/**
 * The dataset as CSV lines, each ending in "\n": the header, then one line per image with pixels to
 * 3 decimals and the integer count. Generated lazily, so `Readable.from(blobsCsvLines(opts))` streams
 * a file of any size in constant memory.
 */
export function* blobsCsvLines(opts: BlobsOptions): Generator<string> {
  const { size } = validateBlobsOptions(opts);
  yield blobsCsvHeader(size) + "\n";
  const cells: string[] = new Array(size * size + 1);
  for (const { pixels, count } of blobImages(opts)) {
    for (let i = 0; i < pixels.length; i++) cells[i] = formatPixel(pixels[i]);
    cells[pixels.length] = String(count);
    yield cells.join(",") + "\n";
  }
}

/** The whole CSV as one string (for tests and small sets; use blobsCsvLines for large ones). */
export function blobsCsv(opts: BlobsOptions): string {
  let text = "";
  for (const line of blobsCsvLines(opts)) text += line;
  return text;
}

function formatPixel(value: number): string {
  const text = value.toFixed(3);
  return text === "-0.000" ? "0.000" : text;
}

function placeCentres(random: SeededRandom, count: number, size: number, cx: Float64Array, cy: Float64Array): void {
  const lo = EDGE_MARGIN;
  const hi = size - 1 - EDGE_MARGIN;
  const minSq = BLOB_MIN_DISTANCE * BLOB_MIN_DISTANCE;
  for (let layout = 0; layout < LAYOUT_TRIES; layout++) {
    let placed = 0;
    for (; placed < count; placed++) {
      let ok = false;
      for (let t = 0; t < PLACEMENT_TRIES && !ok; t++) {
        const x = random.uniform(lo, hi);
        const y = random.uniform(lo, hi);
        ok = true;
        for (let j = 0; j < placed && ok; j++) {
          const ddx = x - cx[j];
          const ddy = y - cy[j];
          if (ddx * ddx + ddy * ddy < minSq) ok = false;
        }
        if (ok) {
          cx[placed] = x;
          cy[placed] = y;
        }
      }
      if (!ok) break;
    }
    if (placed === count) return;
  }
  // maxBlobsFor keeps counts far below what fits, so this means a bug, not bad luck.
  throw new Error(`blobs: could not place ${count} blobs ${BLOB_MIN_DISTANCE} px apart in ${size}x${size}.`);
}

/** Adds peak * exp(-d^2 / (2 sigma^2)) around (x, y), in pixel-centre coordinates, within reach. */
function addBlob(pixels: Float32Array, size: number, x: number, y: number, sigma: number, peak: number): void {
  const reach = Math.ceil(BLOB_REACH_SIGMAS * sigma);
  const x0 = Math.max(0, Math.floor(x) - reach);
  const x1 = Math.min(size - 1, Math.ceil(x) + reach);
  const y0 = Math.max(0, Math.floor(y) - reach);
  const y1 = Math.min(size - 1, Math.ceil(y) + reach);
  const inv = 1 / (2 * sigma * sigma);
  for (let row = y0; row <= y1; row++) {
    const dy = row - y;
    for (let col = x0; col <= x1; col++) {
      const dx = col - x;
      pixels[row * size + col] += peak * Math.exp(-(dx * dx + dy * dy) * inv);
    }
  }
}

/**
 * mulberry32: a tiny 32-bit generator, plenty for synthetic data, seeded through one splitmix32 step so
 * neighbouring seeds start far apart. Not the trainer's Rng on purpose: datasets do not depend on the
 * trainer, and this stream must never change with it.
 */
class SeededRandom {
  private state: number;

  constructor(seed: number) {
    let z = (seed + 0x9e3779b9) | 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    this.state = (z ^ (z >>> 16)) | 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n) for a small n (the bias of flooring is below 2^-20 for n < 4096). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal, Box–Muller (one sample per pair of uniforms). */
  normal(): number {
    const u1 = 1 - this.next();
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}
