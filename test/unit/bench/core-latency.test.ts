// The bench's probe of how far apart the two cores are (test/bench/core-latency.ts).
import { describe, expect, it } from "vitest";
import { coreRoundTrip } from "../../bench/core-latency.js";

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
