// Learning-rate schedules at points worked out by hand. Unless a test says otherwise the run has
// base lr 0.1, 10 epochs of 4 steps (40 steps), and step = epoch * 4 + batch.
import { describe, expect, it } from "vitest";
import { createSchedule, resolveMode, type LrSchedule } from "../../../src/trainer/schedules.js";
import { scheduleSchema } from "../../../src/trainer/schema/schedule.js";

const STEPS_PER_EPOCH = 4;
const EPOCHS = 10;

function schedule(options: Record<string, unknown>, ctx: Partial<{ baseLr: number; epochs: number; stepsPerEpoch: number }> = {}): LrSchedule {
  return createSchedule(scheduleSchema.parse(options), { baseLr: 0.1, epochs: EPOCHS, stepsPerEpoch: STEPS_PER_EPOCH, ...ctx });
}

/** The rate at a step, with its epoch derived as the training loop does. */
const at = (s: LrSchedule, step: number, stepsPerEpoch = STEPS_PER_EPOCH) => s.lr(step, Math.floor(step / stepsPerEpoch));

const expectRel = (actual: number, expected: number, tolerance = 1e-12) =>
  expect(Math.abs(actual - expected) / Math.abs(expected), `${actual} vs ${expected}`).toBeLessThan(tolerance);

describe("constant", () => {
  it("is the base rate throughout, and the default", () => {
    const s = createSchedule(scheduleSchema.parse(undefined), { baseLr: 0.1, epochs: EPOCHS, stepsPerEpoch: STEPS_PER_EPOCH });
    expect([at(s, 0), at(s, 17), at(s, 39)]).toEqual([0.1, 0.1, 0.1]);
  });
});

describe("step", () => {
  it("multiplies by gamma every step_size epochs (StepLR)", () => {
    // step_size 3, gamma 0.1: epochs 0-2 -> 0.1, 3-5 -> 0.01, 6-8 -> 0.001.
    const s = schedule({ type: "step", step_size: 3 });
    expectRel(at(s, 11), 0.1); // epoch 2, last batch
    expectRel(at(s, 12), 0.01); // epoch 3, first batch
    expectRel(at(s, 23), 0.01); // epoch 5
    expectRel(at(s, 24), 0.001); // epoch 6
  });
});

describe("exponential", () => {
  it("per epoch: lr * gamma^epoch", () => {
    // gamma 0.5: epoch 0 -> 0.1, epoch 1 -> 0.05 (all its batches), epoch 2 -> 0.025.
    const s = schedule({ type: "exponential", gamma: 0.5 });
    expectRel(at(s, 3), 0.1);
    expectRel(at(s, 4), 0.05);
    expectRel(at(s, 7), 0.05);
    expectRel(at(s, 8), 0.025);
  });

  it("every_steps: lr * gamma^floor(step / every_steps)", () => {
    // every 3 steps: steps 0-2 -> 0.1, 3-5 -> 0.05, 6-8 -> 0.025, regardless of epochs.
    const s = schedule({ type: "exponential", gamma: 0.5, every_steps: 3 });
    expectRel(at(s, 2), 0.1);
    expectRel(at(s, 3), 0.05);
    expectRel(at(s, 7), 0.025);
  });
});

describe("cosine", () => {
  it("falls along half a cosine from lr to min_lr over the run's steps", () => {
    // T = 40 steps, min 0.01: lr(s) = 0.01 + 0.09 (1 + cos(pi s / 40)) / 2.
    const s = schedule({ type: "cosine", min_lr: 0.01 });
    expectRel(at(s, 0), 0.1); // cos 0 = 1
    expectRel(at(s, 10), 0.01 + 0.045 * (1 + Math.SQRT1_2)); // cos(pi/4): 0.0868198
    expectRel(at(s, 20), 0.055, 1e-12); // cos(pi/2) = 0: halfway
    expectRel(at(s, 39), 0.01 + 0.045 * (1 + Math.cos((39 * Math.PI) / 40))); // the last batch: 0.0101387
    expectRel(at(s, 40), 0.01); // past the end: held at min_lr
  });
});

describe("cosine_restarts", () => {
  it("restarts after T_0 epochs, each cycle T_mult times longer", () => {
    // T_0 1 epoch = 4 steps, T_mult 2: cycles [0, 4), [4, 12), [12, 28), [28, 60); min 0.
    // lr = 0.1 (1 + cos(pi * position / cycle length)) / 2.
    const s = schedule({ type: "cosine_restarts", T_0: 1, T_mult: 2 });
    expectRel(at(s, 0), 0.1);
    expectRel(at(s, 2), 0.05); // halfway through the first cycle
    expectRel(at(s, 3), 0.05 * (1 - Math.SQRT1_2)); // 3/4 through: cos(3pi/4) = -0.7071 -> 0.0146447
    expectRel(at(s, 4), 0.1); // restart
    expectRel(at(s, 8), 0.05); // halfway through the 8-step cycle (torch: epoch 2, T_cur 1 of T_i 2)
    expectRel(at(s, 11), 0.05 * (1 + Math.cos((7 * Math.PI) / 8))); // its last step
    expectRel(at(s, 12), 0.1); // restart
    expectRel(at(s, 16), 0.05 * (1 + Math.SQRT1_2)); // 4/16 through: 0.0853553
  });

  it("T_mult 1 repeats the same cycle, down to min_lr", () => {
    // T_0 2 epochs = 8 steps, min 0.02: lr = 0.02 + 0.04 (1 + cos(pi p / 8)), p = step mod 8.
    const s = schedule({ type: "cosine_restarts", T_0: 2, min_lr: 0.02 });
    expectRel(at(s, 4), 0.06);
    expectRel(at(s, 8), 0.1);
    expectRel(at(s, 36), 0.06);
  });
});

describe("one_cycle", () => {
  it("cos: from max_lr/25 up to max_lr over 30% of the steps, then down to max_lr/25/1e4", () => {
    // 40 steps, pct_start 0.3: phase 1 ends at step 0.3 * 40 - 1 = 11, phase 2 at 39.
    // Initial 0.1 / 25 = 0.004, final 0.004 / 1e4 = 4e-7.
    const s = schedule({ type: "one_cycle" });
    expectRel(at(s, 0), 0.004);
    expectRel(at(s, 11), 0.1); // the peak
    // Phase 2 halfway, (25 - 11) / 28 = 1/2: 4e-7 + (0.1 - 4e-7) / 2 (cos(pi/2) + 1) = 0.0500002.
    expectRel(at(s, 25), 0.0500002);
    expectRel(at(s, 39), 4e-7); // the end
  });

  it("cos with an explicit max_lr: halfway up phase 1", () => {
    // max_lr 1 (not the base 0.1), pct_start 0.275: phase 1 ends at 0.275 * 40 - 1 = 10.
    // Initial 1 / 25 = 0.04. Step 5 is halfway: (0.04 + 1) / 2 = 0.52.
    const s = schedule({ type: "one_cycle", max_lr: 1, pct_start: 0.275 });
    expectRel(at(s, 0), 0.04);
    expectRel(at(s, 5), 0.52, 1e-9);
    expectRel(at(s, 10), 1);
  });

  it("linear", () => {
    // pct_start 0.25: phase 1 ends at 9, phase 2 at 39 (30 steps).
    // Step 3: 0.004 + (0.1 - 0.004) * 3/9 = 0.036. Step 24: halfway down, (0.1 + 4e-7) / 2 = 0.0500002.
    const s = schedule({ type: "one_cycle", pct_start: 0.25, anneal_strategy: "linear" });
    expectRel(at(s, 3), 0.036);
    expectRel(at(s, 9), 0.1);
    expectRel(at(s, 24), 0.0500002);
    // 0.1 + (4e-7 - 0.1) * 1: torch's form loses the last digits to cancellation.
    expectRel(at(s, 39), 4e-7, 1e-9);
  });
});

describe("warm-up", () => {
  it("rises linearly per step from lr / W to lr over W = warmup_epochs * stepsPerEpoch steps", () => {
    // warmup 2 epochs = 8 steps: step s -> 0.1 (s + 1) / 8.
    const s = schedule({ type: "constant", warmup_epochs: 2 });
    expectRel(at(s, 0), 0.0125);
    expectRel(at(s, 3), 0.05);
    expectRel(at(s, 7), 0.1);
    expectRel(at(s, 8), 0.1);
  });

  it("then hands over to the schedule, whose counters start after it", () => {
    // step_size 1, gamma 0.5 after 2 warm-up epochs: epoch 2 is the schedule's epoch 0 -> 0.1,
    // epoch 3 its epoch 1 -> 0.05, epoch 4 -> 0.025.
    const step = schedule({ type: "step", step_size: 1, gamma: 0.5, warmup_epochs: 2 });
    expectRel(at(step, 7), 0.1); // the warm-up's last step
    expectRel(at(step, 8), 0.1);
    expectRel(at(step, 12), 0.05);
    expectRel(at(step, 16), 0.025);

    // cosine over the 32 steps left: schedule step 16 (run step 24) is halfway, 0.05;
    // run step 39 is its step 31: 0.05 (1 + cos(31 pi / 32)) = 0.000240763.
    const cosine = schedule({ type: "cosine", warmup_epochs: 2 });
    expectRel(at(cosine, 8), 0.1);
    expectRel(at(cosine, 24), 0.05, 1e-12);
    expectRel(at(cosine, 39), 0.05 * (1 + Math.cos((31 * Math.PI) / 32)));
  });
});

describe("reduce_on_plateau", () => {
  it("reduces after patience bad validations, waits out the cooldown, stops at min_lr", () => {
    // factor 0.5, patience 2, cooldown 1, min_delta 0.1 (absolute), min_lr 0.03; mode auto on
    // val_loss = min. An observation improves if it is below best - 0.1.
    const s = schedule({ type: "reduce_on_plateau", factor: 0.5, patience: 2, cooldown: 1, min_delta: 0.1, min_lr: 0.03 }, { epochs: 20 });
    const losses = [1.0, 0.95, 0.92, 0.5, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45];
    // epoch: value -> (best, bad, cooldown) -> lr of the next epoch
    //  0: 1.0  better than none      -> (1.0, 0, 0) 0.1
    //  1: 0.95 not below 0.9         -> (1.0, 1, 0) 0.1
    //  2: 0.92                       -> (1.0, 2, 0) 0.1
    //  3: 0.5  below 0.9             -> (0.5, 0, 0) 0.1
    //  4: 0.45 not below 0.4         -> bad 1;  5: bad 2
    //  6: 0.45 bad 3 > 2: lr 0.05, cooldown 1, bad 0                       0.05
    //  7: 0.45 bad 1, but in cooldown: cooldown 0, bad 0                   0.05
    //  8: bad 1;  9: bad 2                                                 0.05
    // 10: bad 3 > 2: lr max(0.025, 0.03) = 0.03, cooldown 1               0.03
    // 11: cooldown; 12-13: bad 1, 2; 14: bad 3: max(0.015, 0.03) = 0.03 again (no change)
    const expected = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.03, 0.03, 0.03, 0.03, 0.03];
    const seen = losses.map((value, epoch) => {
      s.observe(epoch, { val_loss: value, train_loss: 99 });
      const next = (epoch + 1) * STEPS_PER_EPOCH;
      expect(at(s, next + 3)).toBe(at(s, next)); // the same all epoch
      return at(s, next);
    });
    seen.forEach((lr, i) => expectRel(lr, expected[i]));
    expect(s.exportState()).toEqual({ type: "reduce_on_plateau", lr: 0.03, best: 0.5, badEpochs: 0, cooldownLeft: 1 });
  });

  it("max mode for accuracies (auto), on the monitored value only", () => {
    // monitor val_accuracy, factor 0.1, patience 0: 0.5 is the first best; 0.55 beats it by more than
    // the default min_delta 1e-4; 0.55 again is a bad epoch, 1 > 0 -> lr 0.01.
    const s = schedule({ type: "reduce_on_plateau", monitor: "val_accuracy", factor: 0.1, patience: 0 });
    s.observe(0, { val_accuracy: 0.5, val_loss: 1 });
    s.observe(1, { val_accuracy: 0.55, val_loss: 2 });
    expectRel(at(s, 8), 0.1);
    s.observe(2, { train_loss: 0.1 }); // no val_accuracy: ignored
    expectRel(at(s, 12), 0.1);
    s.observe(3, { val_accuracy: 0.55, val_loss: 0.1 });
    expectRel(at(s, 16), 0.01);
  });

  it("warms up, ignoring observations made during the warm-up", () => {
    // warmup 2 epochs (8 steps), patience 0, factor 0.1. Epochs 0 and 1 are warm-up: their
    // (worsening) losses are ignored. Epoch 2: 1.0 is the first best; epoch 3: 1.0 again -> 0.01.
    const s = schedule({ type: "reduce_on_plateau", patience: 0, factor: 0.1, warmup_epochs: 2 });
    expectRel(at(s, 0), 0.0125);
    s.observe(0, { val_loss: 5 });
    s.observe(1, { val_loss: 6 });
    expectRel(at(s, 8), 0.1);
    s.observe(2, { val_loss: 1 });
    expectRel(at(s, 12), 0.1);
    s.observe(3, { val_loss: 1 });
    expectRel(at(s, 16), 0.01);
    expectRel(at(s, 3), 0.05); // the warm-up itself is unchanged
  });

  it("counts a NaN as a bad epoch, never as the best", () => {
    const s = schedule({ type: "reduce_on_plateau", patience: 0 });
    s.observe(0, { val_loss: Number.NaN });
    expect(s.exportState()).toEqual({ type: "reduce_on_plateau", lr: 0.1 * 0.1, best: null, badEpochs: 0, cooldownLeft: 0 });
  });
});

describe("resolveMode", () => {
  it("auto is max for accuracies, min otherwise; explicit modes pass through", () => {
    expect(resolveMode("val_accuracy", "auto")).toBe("max");
    expect(resolveMode("val_top5_accuracy", "auto")).toBe("max");
    for (const monitor of ["val_loss", "train_loss", "val_mae", "val_rmse"] as const) expect(resolveMode(monitor, "auto")).toBe("min");
    expect(resolveMode("val_accuracy", "min")).toBe("min");
    expect(resolveMode("val_loss", "max")).toBe("max");
  });
});

describe("purity and resuming", () => {
  const specs: Record<string, unknown>[] = [
    { type: "constant", warmup_epochs: 1 },
    { type: "step", step_size: 2, gamma: 0.5 },
    { type: "exponential", gamma: 0.9, every_steps: 3 },
    { type: "cosine", min_lr: 0.001, warmup_epochs: 2 },
    { type: "cosine_restarts", T_0: 1, T_mult: 2 },
    { type: "one_cycle", anneal_strategy: "linear" },
    { type: "reduce_on_plateau", patience: 1, factor: 0.5, cooldown: 1, warmup_epochs: 1 },
  ];
  // A validation loss that improves, then stalls, then improves a little.
  const valLoss = (epoch: number) => [1, 0.8, 0.7, 0.7, 0.71, 0.7, 0.5, 0.5, 0.5, 0.49][epoch];

  /** The whole run's rates, validating after every epoch; at `resumeAt` the schedule is replaced by
   *  a new one restored from its state after a JSON round trip (or left fresh when `fresh`). */
  function rates(options: Record<string, unknown>, resumeAt: number | null, fresh = false): number[] {
    let s = schedule(options);
    const out: number[] = [];
    for (let epoch = 0; epoch < EPOCHS; epoch++) {
      if (epoch === resumeAt) {
        const saved = JSON.parse(JSON.stringify(s.exportState()));
        s = schedule(options);
        if (!fresh) s.importState(saved);
      }
      for (let batch = 0; batch < STEPS_PER_EPOCH; batch++) out.push(s.lr(epoch * STEPS_PER_EPOCH + batch, epoch));
      s.observe(epoch, { val_loss: valLoss(epoch), train_loss: 2 * valLoss(epoch) });
    }
    return out;
  }

  for (const options of specs) {
    it(`gives identical rates after export and import mid-run: ${JSON.stringify(options)}`, () => {
      const straight = rates(options, null);
      expect(rates(options, 5)).toEqual(straight);
      expect(straight.every((lr) => Number.isFinite(lr) && lr > 0)).toBe(true);
    });
  }

  it("reduce_on_plateau's state is what carries over (a fresh one differs)", () => {
    const options = specs[specs.length - 1];
    const straight = rates(options, null);
    // Epoch 0 is warm-up (ignored); best 0.8, then 0.7 at epoch 2; epoch 3 (0.7) is bad 1, epoch 4
    // (0.71) bad 2 > patience 1 -> 0.05 from epoch 5, cooldown 1. Epoch 5 (0.7) is the cooldown;
    // epoch 6 (0.5) a new best; epochs 7 and 8 (0.5) bad 1, 2 -> 0.025 for epoch 9.
    expect(straight[4 * STEPS_PER_EPOCH]).toBe(0.1);
    expect(straight[5 * STEPS_PER_EPOCH]).toBe(0.05);
    expect(straight[8 * STEPS_PER_EPOCH]).toBe(0.05);
    expect(straight[9 * STEPS_PER_EPOCH]).toBe(0.025);
    // Resumed at epoch 5 without the state, it would have forgotten the reduction.
    expect(rates(options, 5, true)[5 * STEPS_PER_EPOCH]).toBe(0.1);
  });

  it("asking for a rate changes nothing", () => {
    for (const options of specs) {
      const s = schedule(options);
      const first = [at(s, 30), at(s, 5), at(s, 30)];
      expect(first[0]).toBe(first[2]);
      expect(s.exportState()).toEqual(schedule(options).exportState());
    }
  });

  it("rejects another schedule's state, and malformed plateau state", () => {
    expect(() => schedule({ type: "cosine" }).importState({ type: "constant" })).toThrow(/constant/);
    const plateau = schedule({ type: "reduce_on_plateau" });
    expect(() => plateau.importState({ type: "cosine" })).toThrow(/cosine/);
    expect(() => plateau.importState({ type: "reduce_on_plateau", lr: 0.1, best: null, badEpochs: -1, cooldownLeft: 0 })).toThrow(/badEpochs/);
    expect(() => plateau.importState({ type: "reduce_on_plateau", lr: 0, best: null, badEpochs: 0, cooldownLeft: 0 })).toThrow(/lr/);
  });

  it("rejects a context that cannot count steps", () => {
    expect(() => schedule({ type: "constant" }, { stepsPerEpoch: 0 })).toThrow(/stepsPerEpoch/);
    expect(() => schedule({ type: "constant" }, { epochs: 2.5 })).toThrow(/epochs/);
    expect(() => schedule({ type: "constant" }, { baseLr: -1 })).toThrow(/baseLr/);
  });
});
