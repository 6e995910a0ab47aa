// The bench's probe of how far apart the two cores are (test/bench/core-latency.ts).
import { describe, expect, it } from "vitest";
import { coreRoundTrip } from "../../bench/core-latency.js";
import { ratiosByCorePlace } from "../../bench/report.js";

describe("coreRoundTrip", () => {
  it("times a value's round trip between two threads, and stops its thread", async () => {
    const ns = await coreRoundTrip(20);
    expect(ns).not.toBeNull();
    // A cache line's round trip between cores: tens to thousands of nanoseconds, never nothing.
    expect(ns!).toBeGreaterThan(5);
    expect(ns!).toBeLessThan(1e6);
  });

  it("gives null when the other thread does not answer in time", async () => {
    expect(await coreRoundTrip(20, 0)).toBeNull();
  });
});

describe("ratiosByCorePlace", () => {
  it("gives the median 2-thread ratio of the rounds with the cores close and of those with them apart", () => {
    const rounds = [
      { pair: [30, 30], twoThreads: 54, roundTripNs: 120 }, // 0.9
      { pair: [25, 25], twoThreads: 40, roundTripNs: 600 }, // 0.8
      { pair: [30, 30], twoThreads: 42, roundTripNs: 550 }, // 0.7
      { pair: [30, 30], twoThreads: 30, roundTripNs: 560 }, // 0.5
      { pair: [30, 30], twoThreads: null, roundTripNs: 100 }, // no 2-thread turn: left out
      { pair: [30, 30], twoThreads: 60, roundTripNs: null }, // no round trip: left out
    ];
    expect(ratiosByCorePlace(rounds)).toEqual(["close 0.90x (median of 1)", "apart 0.70x (median of 3)"]);
    expect(ratiosByCorePlace([])).toEqual([]);
  });
});
