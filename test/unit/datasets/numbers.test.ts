import { describe, expect, it } from "vitest";
import { parseDecimal, RunningStats } from "../../../src/datasets/numbers.js";
import { sortLabels } from "../../../src/datasets/targets.js";
import { seededRandom } from "./helpers.js";

describe("parseDecimal", () => {
  it.each([
    ["1", 1],
    ["-0.5", -0.5],
    ["+2", 2],
    ["1e-3", 0.001],
    ["1E+3", 1000],
    [".5", 0.5],
    ["5.", 5],
    [" \t3.25\t ", 3.25],
    ["0.1", 0.1],
    ["123456.789e-3", 123.456789],
    ["9007199254740993", 9007199254740992],
    ["1e-400", 0],
  ])("reads %j as %d", (text, value) => {
    expect(parseDecimal(text)).toBe(value);
  });

  it("keeps the sign of -0", () => {
    expect(Object.is(parseDecimal("-0"), -0)).toBe(true);
  });

  it.each(["", " ", "NaN", "Infinity", "-Infinity", "1,2", "abc", "0x10", "0b1", "1e999", ".", "-", "e5", "1e", "1e+", "--1", "1 2", "1.2.3", "١"])(
    "rejects %j",
    (text) => {
      expect(parseDecimal(text)).toBeNaN();
    },
  );

  it("reads a number where it lies within a longer text", () => {
    expect(parseDecimal("ab,-12.5,cd", 3, 8)).toBe(-12.5);
    expect(parseDecimal("1234", 1, 3)).toBe(23);
  });

  it("agrees with Number on random decimal texts, fast path or not", () => {
    const random = seededRandom(42);
    const digits = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 10)).join("");
    for (let k = 0; k < 20_000; k++) {
      const sign = ["", "-", "+"][Math.floor(random() * 3)];
      const exponent = random() < 0.3 ? `e${["", "-", "+"][Math.floor(random() * 3)]}${digits(1 + Math.floor(random() * 2))}` : "";
      const text = `${sign}${digits(1 + Math.floor(random() * 19))}.${digits(Math.floor(random() * 19))}${exponent}`;
      expect(parseDecimal(text)).toBe(Number(text));
    }
  });
});

describe("RunningStats", () => {
  it("matches a two-pass computation", () => {
    const random = seededRandom(7);
    const values = Array.from({ length: 1000 }, () => 1e6 + random() * 10);
    const stats = new RunningStats(1);
    values.forEach((v, i) => stats.add(0, v, i + 1));
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
    const [summary] = stats.summarize(["v"], values.length);
    expect(summary.mean).toBeCloseTo(mean, 8);
    expect(summary.std).toBeCloseTo(Math.sqrt(variance), 8);
    expect(summary.min).toBe(Math.min(...values));
    expect(summary.max).toBe(Math.max(...values));
  });
});

describe("sortLabels", () => {
  it("sorts integer labels numerically, including very large ones", () => {
    expect(sortLabels(["10", "9", "-1", "0", "100"])).toEqual(["-1", "0", "9", "10", "100"]);
    expect(sortLabels(["12345678901234567891", "12345678901234567890"])).toEqual(["12345678901234567890", "12345678901234567891"]);
  });

  it("sorts other labels by code units, whatever the locale", () => {
    expect(sortLabels(["b", "B", "a", "1.5", "10", "é"])).toEqual(["1.5", "10", "B", "a", "b", "é"]);
  });
});
