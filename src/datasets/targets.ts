// The target values of a dataset, kept whole until the end of the upload (they are small: one or a
// few numbers, or one label id, per row). Class labels can only be turned into class indices once
// every label has been seen, because the classes are sorted; so the y of every chunk is produced here,
// at the end, rather than with the chunk's x.
import { AppError } from "../errors.js";
import { RunningStats, type ColumnStats } from "./numbers.js";
import { float32ToBytes } from "./tensor-codec.js";

export type Task = "regression" | "classification";

/**
 * The most distinct labels a classification target may have. It also bounds the memory spent on
 * labels while the task is not yet known: a numeric column with more distinct values than this is
 * taken to be a regression target.
 */
export const MAX_CLASSES = 65_536;

/** What became of one target value. */
export const TargetValue = {
  accepted: 0,
  /** The task is regression (given, or forced by several target columns) and the value is not a number. */
  notNumeric: 1,
  /** A class label that is the empty string. */
  emptyLabel: 2,
} as const;
export type TargetValue = (typeof TargetValue)[keyof typeof TargetValue];

export interface TargetSummary {
  task: Task;
  classes: string[];
  /** Statistics of the target columns for regression; [] for classification. */
  columns: ColumnStats[];
  yChunks: Uint8Array[];
}

/**
 * Collects the targets of every row.
 *
 * When the task is not given and there is one target column, the collector keeps both readings of
 * each value, the number and the label, until it can decide: the first value that is not a number
 * makes the task classification; a column whose distinct values outnumber MAX_CLASSES is settled
 * as regression (and its labels dropped).
 */
export class TargetCollector {
  readonly width: number;
  private mode: Task | "undecided";
  private readonly taskGiven: boolean;
  private tooManyLabels = false;

  private readonly stats: RunningStats;
  private numericChunks: Float32Array[] = [];
  private numeric: Float32Array | null = null;

  private readonly labelIds = new Map<string, number>();
  private labels: string[] = [];
  private idChunks: Uint32Array[] = [];
  private ids: Uint32Array | null = null;

  constructor(
    readonly names: readonly string[],
    task: Task | undefined,
    private readonly chunkRows: number,
  ) {
    this.width = names.length;
    if (task === "classification" && this.width !== 1) {
      throw new AppError(
        "invalid_request",
        `a classification dataset has exactly one target column; ${this.width} were given (${names.join(", ")})`,
        "target",
      );
    }
    this.taskGiven = task !== undefined;
    this.mode = task ?? (this.width === 1 ? "undecided" : "regression");
    this.stats = new RunningStats(this.width);
  }

  /** Whether `add` needs the numeric reading of a value (callers may skip parsing otherwise). */
  get wantsNumbers(): boolean {
    return this.mode !== "classification";
  }

  /**
   * Adds target `t` of a row.
   * @param row the row's index within the current chunk
   * @param count the row's 1-based number in the dataset
   * @param label the value as text (for classification)
   * @param value the value as a finite number, or NaN when it is not one
   */
  add(row: number, count: number, t: number, label: string, value: number): TargetValue {
    if (this.mode !== "classification") {
      if (value === value) {
        if (this.numeric === null) this.numeric = new Float32Array(this.chunkRows * this.width);
        this.numeric[row * this.width + t] = value;
        this.stats.add(t, value, count);
        if (this.mode === "regression") return TargetValue.accepted;
      } else if (this.mode === "regression") {
        return TargetValue.notNumeric;
      } else {
        // Undecided, and a value that is not a number: the labels decide it.
        this.mode = "classification";
        this.numeric = null;
        this.numericChunks = [];
      }
    }

    if (label.length === 0) return TargetValue.emptyLabel;
    let id = this.labelIds.get(label);
    if (id === undefined) {
      if (this.labels.length === MAX_CLASSES) {
        if (this.mode === "classification") {
          throw new AppError(
            "invalid_request",
            `target column "${this.names[0]}" has more than ${MAX_CLASSES} distinct labels; a classification target may have at most ${MAX_CLASSES} classes`,
            "target",
          );
        }
        // Undecided and still all numbers: too many distinct values to be classes.
        this.mode = "regression";
        this.tooManyLabels = true;
        this.labelIds.clear();
        this.labels = [];
        this.ids = null;
        this.idChunks = [];
        return TargetValue.accepted;
      }
      id = this.labels.length;
      this.labels.push(label);
      this.labelIds.set(label, id);
    }
    if (this.ids === null) this.ids = new Uint32Array(this.chunkRows);
    this.ids[row] = id;
    return TargetValue.accepted;
  }

  /** Why a value was rejected as not a number, for the error message. */
  get numericReason(): string {
    if (this.tooManyLabels) return `the column has more than ${MAX_CLASSES} distinct numbers, too many to be class labels, so the task is regression`;
    if (this.taskGiven) return "the task is regression";
    return "with several target columns the task is regression";
  }

  /** Closes the current chunk, which holds `rows` rows. */
  sealChunk(rows: number): void {
    if (this.mode !== "classification") {
      const numeric = this.numeric ?? new Float32Array(this.chunkRows * this.width);
      this.numericChunks.push(rows === this.chunkRows ? numeric : numeric.slice(0, rows * this.width));
    }
    if (this.mode !== "regression") {
      const ids = this.ids ?? new Uint32Array(this.chunkRows);
      this.idChunks.push(rows === this.chunkRows ? ids : ids.slice(0, rows));
    }
    this.numeric = null;
    this.ids = null;
  }

  /** The task, classes and every chunk's y; `rows` is the dataset's row count. */
  finish(rows: number): TargetSummary {
    if (this.mode === "classification") {
      const classes = sortLabels(this.labels);
      const classOf = new Float32Array(this.labels.length);
      classes.forEach((label, index) => {
        classOf[this.labelIds.get(label)!] = index;
      });
      const yChunks = this.idChunks.map((ids) => {
        const y = new Float32Array(ids.length);
        for (let i = 0; i < ids.length; i++) y[i] = classOf[ids[i]];
        return float32ToBytes(y);
      });
      return { task: "classification", classes, columns: [], yChunks };
    }
    return {
      task: "regression",
      classes: [],
      columns: this.stats.summarize(this.names, rows),
      yChunks: this.numericChunks.map(float32ToBytes),
    };
  }
}

const INTEGER = /^[+-]?\d+$/;

/**
 * Sorts class labels: numerically when every label is an integer (so that labels 0..K-1 get class
 * indices 0..K-1, and "10" comes after "9"), else by UTF-16 code units, which does not depend on the
 * locale of the host.
 */
export function sortLabels(labels: readonly string[]): string[] {
  const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  if (labels.length > 0 && labels.every((label) => INTEGER.test(label))) {
    // BigInt, not Number: "12345678901234567890" and "12345678901234567891" are different classes.
    return labels
      .map((label) => ({ label, key: BigInt(label) }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : byCodeUnits(a.label, b.label)))
      .map(({ label }) => label);
  }
  return [...labels].sort(byCodeUnits);
}
