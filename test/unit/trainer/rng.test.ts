import { describe, expect, it } from "vitest";
import { permutation, Rng, shuffleInPlace } from "../../../src/trainer/index.js";

describe("Rng", () => {
  it("repeats exactly for the same seed and stream, and differs otherwise", () => {
    const draw = (seed: number, stream = 0) => {
      const rng = new Rng(seed, stream);
      return Array.from({ length: 8 }, () => rng.nextU32());
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    expect(draw(42, 0)).not.toEqual(draw(42, 1));
    expect(draw(0)).not.toEqual(draw(1)); // small seeds are spread by splitmix32
  });

  it("keeps producing the pinned sequence", () => {
    // Every job's weights and batch order follow from these streams: if this test fails, seeded
    // jobs no longer reproduce. Change the generator or its seeding only on purpose.
    const first4 = (rng: Rng) => Array.from({ length: 4 }, () => rng.nextU32());
    expect(first4(new Rng(0))).toEqual([387095348, 2506032770, 735102004, 4023218824]);
    expect(first4(new Rng(42, 1))).toEqual([4172580762, 909978484, 1809779608, 2720878519]);
  });

  it("next() is in [0, 1) and roughly uniform", () => {
    const rng = new Rng(7);
    let sum = 0;
    for (let i = 0; i < 20000; i++) {
      const u = rng.next();
      expect(u >= 0 && u < 1).toBe(true);
      sum += u;
    }
    expect(sum / 20000).toBeCloseTo(0.5, 1);
  });

  it("int(n) covers 0..n-1 evenly", () => {
    const rng = new Rng(3);
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 50000; i++) counts[rng.int(5)]++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(500);
    expect(() => rng.int(0)).toThrow(RangeError);
  });

  it("normal() has mean 0 and variance 1", () => {
    const rng = new Rng(11);
    let sum = 0;
    let sq = 0;
    const n = 50000;
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      sum += z;
      sq += z * z;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.02);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.03);
  });

  it("resumes from a saved state, through JSON", () => {
    const rng = new Rng(5);
    for (let i = 0; i < 10; i++) rng.next();
    const saved = JSON.parse(JSON.stringify(rng.getState()));
    const expected = Array.from({ length: 5 }, () => rng.nextU32());
    const other = new Rng(999);
    other.setState(saved);
    expect(Array.from({ length: 5 }, () => other.nextU32())).toEqual(expected);
    expect(() => other.setState([1, 2, 3] as never)).toThrow(RangeError);
  });
});

describe("shuffle", () => {
  it("permutes (every index once) deterministically", () => {
    const a = permutation(100, new Rng(1));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect([...a]).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(permutation(100, new Rng(1))).toEqual(a);
  });

  it("makes every permutation of 3 items about equally likely", () => {
    const rng = new Rng(2);
    const counts = new Map<string, number>();
    for (let i = 0; i < 60000; i++) {
      const items = [0, 1, 2];
      shuffleInPlace(items, rng);
      counts.set(items.join(""), (counts.get(items.join("")) ?? 0) + 1);
    }
    expect(counts.size).toBe(6);
    for (const c of counts.values()) expect(Math.abs(c - 10000)).toBeLessThan(400);
  });
});
