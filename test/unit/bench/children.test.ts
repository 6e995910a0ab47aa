// The bench's parent/child barrier protocol (test/bench/protocol.ts, children.ts), with real ours
// children: every timed run waits for the parent's go, lasts the plan's runSeconds, reports its
// figure, and a child left waiting when the parent stops it ends with an error rather than hanging.
import { describe, expect, it } from "vitest";
import { runGroup, startChild } from "../../bench/children.js";
import { QUICK_PLAN, type ChildRequest } from "../../bench/protocol.js";
import { WORKLOADS } from "../../bench/workloads.js";

const RUN_SECONDS = 0.3;

function request(runs: number): ChildRequest {
  return {
    peer: "ours",
    workload: WORKLOADS.W3,
    threads: 1,
    plan: { ...QUICK_PLAN, runs, runSeconds: RUN_SECONDS },
    mode: "throughput",
    seed: 7,
    barrier: true,
  };
}

describe("bench barrier children", () => {
  it("times one run of runSeconds per go, and reports the same figures in its result", async () => {
    const child = startChild(request(3), 60_000);
    const seen: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      const [value] = await runGroup([child]);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(1000 * RUN_SECONDS);
      expect(value).not.toBeNull();
      expect(value!).toBeGreaterThan(0);
      seen.push(value!);
    }
    const result = await child.result;
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.measurement!.runs).toEqual(seen);
    // W3's steps take tens of microseconds: thousands fit in a run.
    expect(result.measurement!.stepsPerRun).toBeGreaterThan(100);
  });

  it("runs a group's children over the same turn, and ends a child stopped before its last run", async () => {
    const a = startChild(request(3), 60_000);
    const b = startChild(request(3), 60_000);
    const first = await runGroup([a, b]);
    expect(first.every((v) => v !== null && v > 0)).toBe(true);
    a.stop();
    b.stop();
    const results = await Promise.all([a.result, b.result]);
    for (const result of results) {
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toMatch(/closed stdin/);
    }
  });
});
