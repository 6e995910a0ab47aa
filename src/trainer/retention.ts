// Checkpoint retention (the job config's `checkpoints`): which epochs' weights are kept, and why.
// Pure, so the worker (which epochs' weights to hold on to while the database writer catches up)
// and the writer (which rows to keep) apply the same rules.
//
// - `last`: the `keep_last` newest epochs (the newest also carries the resume state);
// - `best`: the `keep_best` epochs with the lowest tracked loss (validation loss, or training loss
//   without validation data) among the epochs that validated; ties go to the earlier epoch, as the
//   trainer's own notion of "best" (strictly lower) does;
// - `periodic`: every `every_epochs`-th epoch, never deleted.
import type { JobConfig } from "./config.js";
import type { CheckpointRetention } from "./schema/checkpoints.js";

export type CheckpointKind = "last" | "best" | "periodic";

/** The retention a config asks for (configs stored before the field existed get the defaults). */
export function retentionOf(config: Pick<JobConfig, "checkpoints">): CheckpointRetention {
  return config.checkpoints ?? { keep_last: 1, keep_best: 1, every_epochs: 0 };
}

/** Whether the trainer validates after `epoch` (validate_every, and always the last epoch). */
export function validatesAt(config: Pick<JobConfig, "validate_every" | "epochs">, epoch: number): boolean {
  return epoch % config.validate_every === 0 || epoch === config.epochs;
}

/** The loss `best` ranks an epoch by, or null when the epoch did not validate. */
export function trackedLoss(
  config: Pick<JobConfig, "validate_every" | "epochs">,
  report: { epoch: number; trainLoss: number; valLoss: number | null },
): number | null {
  return validatesAt(config, report.epoch) ? (report.valLoss ?? report.trainLoss) : null;
}

export interface Ranked {
  epoch: number;
  /** null: not a candidate (did not validate). */
  tracked: number | null;
}

/** The epochs of the `k` best candidates, best first (lowest loss, then earliest epoch). */
export function bestEpochs(candidates: readonly Ranked[], k: number): number[] {
  const seen = new Set<number>();
  const ranked: { epoch: number; tracked: number }[] = [];
  for (const c of candidates) {
    if (c.tracked === null || !Number.isFinite(c.tracked) || seen.has(c.epoch)) continue;
    seen.add(c.epoch);
    ranked.push({ epoch: c.epoch, tracked: c.tracked });
  }
  ranked.sort((a, b) => a.tracked - b.tracked || a.epoch - b.epoch);
  return ranked.slice(0, k).map((c) => c.epoch);
}

/** Whether `epoch` is among the `keep_last` newest when `newest` is the newest epoch. */
export function inLastWindow(r: CheckpointRetention, epoch: number, newest: number): boolean {
  return epoch <= newest && epoch > newest - r.keep_last;
}

export function isPeriodic(r: CheckpointRetention, epoch: number): boolean {
  return r.every_epochs > 0 && epoch % r.every_epochs === 0;
}

/**
 * Of a run of consecutive finished epochs waiting to be written (ascending), which must keep their
 * weights: the newest `keep_last`, the periodic ones, and the `keep_best` best of the run (an epoch
 * that is not among the best of its own run cannot be among the best of the whole job).
 */
export function weightsToKeep(
  config: Pick<JobConfig, "validate_every" | "epochs" | "checkpoints">,
  reports: readonly { epoch: number; trainLoss: number; valLoss: number | null }[],
): boolean[] {
  const r = retentionOf(config);
  if (reports.length === 0) return [];
  const newest = reports[reports.length - 1].epoch;
  const best = new Set(bestEpochs(reports.map((p) => ({ epoch: p.epoch, tracked: trackedLoss(config, p) })), r.keep_best));
  return reports.map((p) => inLastWindow(r, p.epoch, newest) || isPeriodic(r, p.epoch) || best.has(p.epoch));
}

/**
 * For the writer: the weights of a batch's epochs other than `written` (the `last` and `best`
 * epochs, sent on their own) that are still held, and the loss of every epoch that validated.
 * `written` null: a metrics-only write, which keeps no weights.
 */
export function retainedExtras<W>(
  config: Pick<JobConfig, "validate_every" | "epochs">,
  batch: readonly { report: { epoch: number; trainLoss: number; valLoss: number | null }; weights: W | null }[],
  written: readonly number[] | null,
): { kept: { epoch: number; valLoss: number | null; weights: W }[]; ranked: { epoch: number; tracked: number }[] } {
  const kept: { epoch: number; valLoss: number | null; weights: W }[] = [];
  const ranked: { epoch: number; tracked: number }[] = [];
  for (const { report: r, weights } of batch) {
    const tracked = trackedLoss(config, r);
    if (tracked !== null) ranked.push({ epoch: r.epoch, tracked });
    if (written && weights !== null && !written.includes(r.epoch)) kept.push({ epoch: r.epoch, valLoss: r.valLoss, weights });
  }
  return { kept, ranked };
}
