// Rows go in one at a time, chunks of encoded features come out. Only the chunk being filled is held
// in memory; the targets go to a TargetCollector, which keeps them until the end.
import { RunningStats, type ColumnStats } from "./numbers.js";
import { TargetCollector, type Task, type TargetValue } from "./targets.js";
import { float32ToBytes } from "./tensor-codec.js";

/** One chunk of rows ready to be stored: x is rows*inputWidth float32, little-endian, row-major. */
export interface EncodedChunk {
  index: number;
  rows: number;
  x: Uint8Array;
}

export interface BuiltDataset {
  rows: number;
  task: Task;
  classes: string[];
  /** Every feature column, then every regression target column. */
  columns: ColumnStats[];
  yChunks: Uint8Array[];
}

/**
 * A row is written with `beginRow`, then `setFeature` for every feature and `addTarget` for every
 * target, then `commitRow`. A row that turns out to be bad is simply never committed: the upload
 * fails as a whole, so the half-written values do not matter.
 */
export class ChunkBuilder {
  readonly inputWidth: number;
  readonly targets: TargetCollector;
  /** Rows committed so far. */
  rows = 0;

  private readonly featureStats: RunningStats;
  private x: Float32Array | null = null;
  private rowInChunk = 0;
  private rowBase = 0;
  private chunkIndex = 0;

  constructor(
    readonly featureNames: readonly string[],
    targetNames: readonly string[],
    task: Task | undefined,
    readonly chunkRows: number,
  ) {
    this.inputWidth = featureNames.length;
    this.featureStats = new RunningStats(this.inputWidth);
    this.targets = new TargetCollector(targetNames, task, chunkRows);
  }

  beginRow(): void {
    // The chunk's buffer is allocated on its first row, so a dataset that ends exactly at a chunk
    // boundary does not allocate one more.
    if (this.x === null) this.x = new Float32Array(this.chunkRows * this.inputWidth);
    this.rowBase = this.rowInChunk * this.inputWidth;
  }

  setFeature(j: number, value: number): void {
    this.x![this.rowBase + j] = value;
    this.featureStats.add(j, value, this.rows + 1);
  }

  addTarget(t: number, label: string, value: number): TargetValue {
    return this.targets.add(this.rowInChunk, this.rows + 1, t, label, value);
  }

  /** Commits the row; true when the chunk is now full and should be taken. */
  commitRow(): boolean {
    this.rows++;
    this.rowInChunk++;
    return this.rowInChunk === this.chunkRows;
  }

  /** The chunk filled so far (and a fresh one started), or null when it has no rows. */
  takeChunk(): EncodedChunk | null {
    const rows = this.rowInChunk;
    if (rows === 0 || this.x === null) return null;
    const x = rows === this.chunkRows ? this.x : this.x.slice(0, rows * this.inputWidth);
    this.targets.sealChunk(rows);
    const chunk: EncodedChunk = { index: this.chunkIndex++, rows, x: float32ToBytes(x) };
    this.x = null;
    this.rowInChunk = 0;
    return chunk;
  }

  /** Call once every chunk has been taken. */
  finish(): BuiltDataset {
    const targets = this.targets.finish(this.rows);
    return {
      rows: this.rows,
      task: targets.task,
      classes: targets.classes,
      columns: [...this.featureStats.summarize(this.featureNames, this.rows), ...targets.columns],
      yChunks: targets.yChunks,
    };
  }
}
