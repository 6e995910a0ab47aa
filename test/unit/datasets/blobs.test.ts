import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseMakeBlobsArgs, UsageError } from "../../../src/cli/make-blobs.js";
import { blobsCsv, blobsCsvLines, generateBlobs, maxBlobsFor } from "../../../src/datasets/blobs.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/**
 * Local maxima above `threshold`: pixels strictly greater than each of their (up to 8) neighbours.
 * A blob count detector as simple as it gets; if it agrees with the labels, the count is visible.
 */
function localMaxima(img: ArrayLike<number>, size: number, threshold: number): number {
  let found = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = img[y * size + x];
      if (v < threshold) continue;
      let isMax = true;
      for (let dy = -1; dy <= 1 && isMax; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if ((dx || dy) && yy >= 0 && yy < size && xx >= 0 && xx < size && img[yy * size + xx] >= v) isMax = false;
        }
      }
      if (isMax) found++;
    }
  }
  return found;
}

/** Bit-identical (and much faster than toEqual on 800,000 elements). */
function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe("generateBlobs", () => {
  const opts = { rows: 2000, size: 20, maxBlobs: 4, seed: 1 };
  const data = generateBlobs(opts);

  it("has the documented shapes", () => {
    expect(data.pixels).toHaveLength(2000 * 400);
    expect(data.counts).toHaveLength(2000);
  });

  it("is deterministic by seed", () => {
    const again = generateBlobs(opts);
    expect(again.counts).toEqual(data.counts);
    expect(sameBytes(again.pixels, data.pixels)).toBe(true);
    const other = generateBlobs({ ...opts, seed: 2 });
    expect(sameBytes(other.pixels, data.pixels)).toBe(false);
    // Seeds are spread: 0 and 1 are unrelated, not shifted copies.
    const zero = generateBlobs({ ...opts, rows: 50, seed: 0 });
    expect(zero.counts.subarray(1)).not.toEqual(data.counts.subarray(0, 49));
  });

  it("draws counts uniformly over 0..maxBlobs", () => {
    const histogram = [0, 0, 0, 0, 0];
    for (const c of data.counts) histogram[c]++;
    // 400 expected each; a binomial sd is about 18, so 320..480 is more than 4 sd.
    for (const n of histogram) {
      expect(n).toBeGreaterThan(320);
      expect(n).toBeLessThan(480);
    }
  });

  it("makes each blob one local maximum, so the count is visible in almost every image", () => {
    let agree = 0;
    for (let r = 0; r < opts.rows; r++) {
      if (localMaxima(data.pixels.subarray(r * 400, (r + 1) * 400), 20, 0.45) === data.counts[r]) agree++;
    }
    expect(agree / opts.rows).toBeGreaterThanOrEqual(0.95);
  });

  it("keeps pixels roughly in [0, 1]: a dark background and bright blobs", () => {
    let min = Infinity;
    let max = -Infinity;
    let background = 0;
    let backgroundPixels = 0;
    for (let r = 0; r < opts.rows; r++) {
      const img = data.pixels.subarray(r * 400, (r + 1) * 400);
      for (const v of img) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      if (data.counts[r] === 0) {
        for (const v of img) background += v;
        backgroundPixels += img.length;
      }
    }
    expect(min).toBeGreaterThan(-0.35); // 7 noise sds below 0
    expect(max).toBeLessThan(1.35);
    expect(max).toBeGreaterThan(0.8);
    expect(background / backgroundPixels).toBeGreaterThan(0.02);
    expect(background / backgroundPixels).toBeLessThan(0.08); // mean brightness 0.05
  });

  it("honours the noise option", () => {
    const quiet = generateBlobs({ rows: 20, size: 12, maxBlobs: 0, seed: 3, noise: 0 });
    for (let r = 0; r < 20; r++) {
      const img = quiet.pixels.subarray(r * 144, (r + 1) * 144);
      expect(new Set(img).size).toBe(1); // only the flat background brightness
    }
  });

  it("rejects options it cannot honour, naming them", () => {
    expect(() => generateBlobs({ ...opts, rows: 0 })).toThrow(/rows/);
    expect(() => generateBlobs({ ...opts, size: 2 })).toThrow(/size/);
    expect(() => generateBlobs({ ...opts, maxBlobs: maxBlobsFor(20) + 1 })).toThrow(/maxBlobs/);
    expect(() => generateBlobs({ ...opts, seed: -1 })).toThrow(/seed/);
    expect(() => generateBlobs({ ...opts, noise: -0.1 })).toThrow(/noise/);
  });

  it("places up to the cap of blobs even in a small image", () => {
    const cap = maxBlobsFor(12);
    const { counts } = generateBlobs({ rows: 200, size: 12, maxBlobs: cap, seed: 5 });
    expect(Math.max(...counts)).toBe(cap);
  });
});

describe("blobsCsv", () => {
  const opts = { rows: 25, size: 8, maxBlobs: 2, seed: 9 };

  it("has the header p0..p{N-1},count and one line per image, the same as generateBlobs", () => {
    const text = blobsCsv(opts);
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.trimEnd().split("\n");
    expect(lines).toHaveLength(26);
    const header = lines[0].split(",");
    expect(header).toHaveLength(65);
    expect(header[0]).toBe("p0");
    expect(header[63]).toBe("p63");
    expect(header[64]).toBe("count");
    const { pixels, counts } = generateBlobs(opts);
    lines.slice(1).forEach((line, r) => {
      const cells = line.split(",");
      expect(cells).toHaveLength(65);
      for (let i = 0; i < 64; i++) {
        expect(cells[i]).toMatch(/^-?\d+\.\d{3}$/);
        expect(Math.abs(Number(cells[i]) - pixels[r * 64 + i])).toBeLessThanOrEqual(0.0005 + 1e-7);
      }
      expect(cells[64]).toBe(String(counts[r]));
    });
  });

  it("streams the same text line by line", () => {
    expect([...blobsCsvLines(opts)].join("")).toBe(blobsCsv(opts));
  });
});

describe("make-blobs CLI", () => {
  function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/cli/make-blobs.ts", ...args], { cwd: ROOT });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
      child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  it("writes the CSV to stdout", async () => {
    const { code, stdout, stderr } = await run(["--rows", "30", "--size", "20", "--max", "4", "--seed", "1"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(31);
    expect(lines[0].split(",")).toHaveLength(401);
    expect(stdout).toBe(blobsCsv({ rows: 30, size: 20, maxBlobs: 4, seed: 1 }));
  });

  it("writes to --out", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "make-blobs-"));
    try {
      const out = path.join(dir, "blobs.csv");
      const { code, stdout } = await run(["--rows", "12", "--size", "10", "--max", "2", "--seed", "4", "--out", out]);
      expect(code).toBe(0);
      expect(stdout).toBe("");
      const text = await readFile(out, "utf8");
      expect(text.trimEnd().split("\n")).toHaveLength(13);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("exits 2 with the usage on a bad argument", async () => {
    for (const args of [["--rows", "ten"], ["--rows", "5", "--max", "99"], ["--rows", "5", "--colour", "red"], []]) {
      const { code, stdout, stderr } = await run(args);
      expect(code, args.join(" ")).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toMatch(/^make-blobs: /);
      expect(stderr).toContain("Usage: make-blobs");
    }
  });

  it("exits 1 when the output cannot be written", async () => {
    const { code, stderr } = await run(["--rows", "3", "--out", path.join(ROOT, "no-such-dir", "x", "blobs.csv")]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/could not write/);
  });
});

describe("parseMakeBlobsArgs", () => {
  it("applies the defaults and maps --max to maxBlobs", () => {
    expect(parseMakeBlobsArgs(["--rows", "7"])).toEqual({
      help: false,
      options: { rows: 7, size: 20, maxBlobs: 4, seed: 1, noise: 0.05 },
      out: null,
    });
    expect(parseMakeBlobsArgs(["--help"])).toEqual({ help: true });
  });

  it("names the flag that is wrong", () => {
    expect(() => parseMakeBlobsArgs(["--rows", "7", "--max", "40"])).toThrow(/^--max must be/);
    expect(() => parseMakeBlobsArgs(["--rows", "7", "--seed", "1.5"])).toThrow(/--seed/);
    expect(() => parseMakeBlobsArgs(["--rows", "7", "--noise", "abc"])).toThrow(/--noise/);
    expect(() => parseMakeBlobsArgs(["--rows", "7", "extra"])).toThrow(UsageError);
  });
});
