// Learning-rate schedules (the `lr_schedule` field, schema/schedule.ts). The rate is a pure function
// of the step, the epoch and the schedule's state: asking for it changes nothing, and only
// reduce_on_plateau has state at all (changed by `observe`). So a resumed run needs nothing but the
// exported state and the step and epoch it resumes at.
//
// Counting: `step` is the 0-based index over the whole run of the batch about to run
// (epoch * stepsPerEpoch + batch), `epoch` the 0-based epoch. A warm-up of W = warmup_epochs *
// stepsPerEpoch steps comes first: step s < W gets base * (s + 1) / W, rising from base / W to the
// base rate. The schedule proper then starts its own counters at 0 (s - W, epoch - warmup_epochs)
// and spans the run's remaining epochs.
//
// Each follows its PyTorch namesake stepped once per batch, except StepLR and ExponentialLR
// (without every_steps), which move once per epoch as in PyTorch's usual loop.
import type { Monitor, ScheduleSpec } from "./schema/schedule.js";

export type ScheduleType = ScheduleSpec["type"];

/** reduce_on_plateau's memory (torch ReduceLROnPlateau's). JSON-safe: no Infinity anywhere. */
export interface PlateauState {
  type: "reduce_on_plateau";
  /** The rate after the warm-up: the base rate, reduced by each plateau so far. */
  lr: number;
  /** The best monitored value observed after the warm-up; null before the first. */
  best: number | null;
  /** Observations since the last improvement (torch's num_bad_epochs). */
  badEpochs: number;
  /** Observations still to ignore after a reduction (torch's cooldown_counter). */
  cooldownLeft: number;
}

/** What a checkpoint keeps of a schedule: its type (checked on import) and, if it has any, its state. */
export type ScheduleState = { type: Exclude<ScheduleType, "reduce_on_plateau"> } | PlateauState;

export interface ScheduleContext {
  /** The optimizer's lr. */
  baseLr: number;
  /** Epochs in the whole run, warm-up included. */
  epochs: number;
  /** Batches per epoch (the last may be smaller, but is a step like the others). */
  stepsPerEpoch: number;
}

export interface LrSchedule {
  /** The rate for the batch `step` (0-based over the run) of `epoch` (0-based). Pure. */
  lr(step: number, epoch: number): number;
  /**
   * Takes the values monitored after validating at the end of `epoch` (0-based). Only
   * reduce_on_plateau listens; it ignores observations made during the warm-up and ones that lack
   * its monitored value.
   */
  observe(epoch: number, values: Partial<Record<Monitor, number>>): void;
  exportState(): ScheduleState;
  /** Restores exported state; throws if it is another schedule's or malformed. */
  importState(state: ScheduleState): void;
}

/** Which way is better for a monitored value: "auto" means max for the accuracies, min otherwise. */
export function resolveMode(monitor: Monitor, mode: "auto" | "min" | "max"): "min" | "max" {
  if (mode !== "auto") return mode;
  return monitor === "val_accuracy" || monitor === "val_top5_accuracy" ? "max" : "min";
}

export function createSchedule(spec: ScheduleSpec, ctx: ScheduleContext): LrSchedule {
  const { baseLr, epochs, stepsPerEpoch } = ctx;
  if (!(baseLr > 0 && Number.isFinite(baseLr))) throw new Error(`createSchedule: baseLr must be positive, got ${baseLr}`);
  for (const [name, value] of [["epochs", epochs], ["stepsPerEpoch", stepsPerEpoch]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`createSchedule: ${name} must be a positive integer, got ${value}`);
  }
  const warmupEpochs = spec.warmup_epochs;
  const warmupSteps = warmupEpochs * stepsPerEpoch;
  const warmupLr = (step: number) => (baseLr * (step + 1)) / warmupSteps;

  if (spec.type === "reduce_on_plateau") return new ReduceOnPlateau(spec, baseLr, warmupSteps, warmupLr);

  // The steps left to the schedule proper after the warm-up.
  const steps = Math.max(0, epochs - warmupEpochs) * stepsPerEpoch;
  const rate = curve(spec, baseLr, steps, stepsPerEpoch);
  const type = spec.type;
  return {
    lr: (step, epoch) => (step < warmupSteps ? warmupLr(step) : rate(step - warmupSteps, epoch - warmupEpochs)),
    observe: () => {},
    exportState: () => ({ type }),
    importState(state) {
      if (state.type !== type) throw new Error(`${type}.importState: the state is for "${String(state.type)}"`);
    },
  };
}

/** A stateless schedule's rate at step s and epoch e, both counted from the end of the warm-up. */
type Curve = (s: number, e: number) => number;

function curve(spec: Exclude<ScheduleSpec, { type: "reduce_on_plateau" }>, baseLr: number, steps: number, stepsPerEpoch: number): Curve {
  switch (spec.type) {
    case "constant":
      return () => baseLr;

    case "step": {
      const { step_size: size, gamma } = spec;
      return (_s, e) => baseLr * gamma ** Math.floor(e / size);
    }

    case "exponential": {
      const { gamma, every_steps: every } = spec;
      return every === undefined ? (_s, e) => baseLr * gamma ** e : (s) => baseLr * gamma ** Math.floor(s / every);
    }

    case "cosine": {
      // CosineAnnealingLR with T_max = the remaining steps: base at s = 0, min_lr after the last
      // step (the last batch itself runs a hair above it). Held at min_lr beyond, where torch's
      // closed form would turn back up.
      const min = spec.min_lr;
      return (s) => (s >= steps ? min : min + ((baseLr - min) * (1 + Math.cos((Math.PI * s) / steps))) / 2);
    }

    case "cosine_restarts": {
      // CosineAnnealingWarmRestarts at fractional epoch s / stepsPerEpoch, counted in whole steps
      // so that restarts fall exactly on epoch boundaries (torch finds the cycle with a
      // floating-point log, which can land a restart one step off).
      const { T_0, T_mult, min_lr: min } = spec;
      const first = T_0 * stepsPerEpoch;
      return (s) => {
        let pos = s;
        let length = first;
        if (T_mult === 1) pos = s % first;
        else {
          while (pos >= length) {
            pos -= length;
            length *= T_mult;
          }
        }
        return min + ((baseLr - min) * (1 + Math.cos((Math.PI * pos) / length))) / 2;
      };
    }

    case "one_cycle": {
      // OneCycleLR (two phases) over the remaining steps. Its phase boundaries are torch's: phase 1
      // ends at step pct_start * steps - 1 (not always a whole number), phase 2 at steps - 1.
      // torch does not cycle momentum here (our optimizers keep theirs fixed). Beyond the last
      // step the rate stays at the final one, where torch raises.
      const maxLr = spec.max_lr ?? baseLr;
      const initial = maxLr / spec.div_factor;
      const final = initial / spec.final_div_factor;
      const peak = spec.pct_start * steps - 1;
      const end = steps - 1;
      const anneal =
        spec.anneal_strategy === "cos"
          ? (from: number, to: number, pct: number) => to + ((from - to) / 2) * (Math.cos(Math.PI * pct) + 1)
          : (from: number, to: number, pct: number) => from + (to - from) * pct;
      return (s) => {
        // A phase of zero length is complete (torch divides 0 by 0 there).
        if (s <= peak) return anneal(initial, maxLr, peak > 0 ? s / peak : 1);
        return anneal(maxLr, final, end > peak ? Math.min((s - peak) / (end - peak), 1) : 1);
      };
    }
  }
}

type PlateauSpec = Extract<ScheduleSpec, { type: "reduce_on_plateau" }>;

/** torch's ReduceLROnPlateau ignores reductions smaller than this (its `eps`). */
const MIN_REDUCTION = 1e-8;

/**
 * torch ReduceLROnPlateau with threshold_mode "abs": after each observation,
 *   improvement (value < best - min_delta, or > best + min_delta in max mode): best = value, bad = 0
 *   otherwise bad += 1
 *   during cooldown: cooldown -= 1, bad = 0
 *   bad > patience: lr = max(lr * factor, min_lr), cooldown = its setting, bad = 0
 */
class ReduceOnPlateau implements LrSchedule {
  private state: PlateauState;
  private readonly mode: "min" | "max";

  constructor(
    private readonly spec: PlateauSpec,
    baseLr: number,
    private readonly warmupSteps: number,
    private readonly warmupLr: (step: number) => number,
  ) {
    this.mode = resolveMode(spec.monitor, spec.mode);
    this.state = { type: "reduce_on_plateau", lr: baseLr, best: null, badEpochs: 0, cooldownLeft: 0 };
  }

  lr(step: number): number {
    return step < this.warmupSteps ? this.warmupLr(step) : this.state.lr;
  }

  observe(epoch: number, values: Partial<Record<Monitor, number>>): void {
    const { warmup_epochs, monitor, min_delta, patience, cooldown, factor, min_lr } = this.spec;
    if (epoch < warmup_epochs) return;
    const value = values[monitor];
    if (value === undefined) return;
    const s = this.state;
    // As torch, "best" starts at the worst possible value, so a NaN is never an improvement.
    const best = s.best ?? (this.mode === "min" ? Infinity : -Infinity);
    const improved = this.mode === "min" ? value < best - min_delta : value > best + min_delta;
    if (improved) {
      s.best = value;
      s.badEpochs = 0;
    } else {
      s.badEpochs += 1;
    }
    if (s.cooldownLeft > 0) {
      s.cooldownLeft -= 1;
      s.badEpochs = 0;
    }
    if (s.badEpochs > patience) {
      const reduced = Math.max(s.lr * factor, min_lr);
      if (s.lr - reduced > MIN_REDUCTION) s.lr = reduced;
      s.cooldownLeft = cooldown;
      s.badEpochs = 0;
    }
  }

  exportState(): PlateauState {
    return { ...this.state };
  }

  importState(state: ScheduleState): void {
    const where = "reduce_on_plateau.importState";
    if (state.type !== "reduce_on_plateau") throw new Error(`${where}: the state is for "${String(state.type)}"`);
    const { lr, best, badEpochs, cooldownLeft } = state;
    if (!(lr > 0 && Number.isFinite(lr))) throw new Error(`${where}: lr must be positive, got ${lr}`);
    if (best !== null && typeof best !== "number") throw new Error(`${where}: best must be a number or null, got ${String(best)}`);
    for (const [name, count] of [["badEpochs", badEpochs], ["cooldownLeft", cooldownLeft]] as const) {
      if (!Number.isInteger(count) || count < 0) throw new Error(`${where}: ${name} must be a non-negative integer, got ${count}`);
    }
    this.state = { type: "reduce_on_plateau", lr, best, badEpochs, cooldownLeft };
  }
}
