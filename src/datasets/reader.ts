// What ingestDataset needs from a file format's reader, and what the readers share.
import type { ChunkBuilder } from "./chunk-builder.js";

export interface ReaderOptions {
  /** The target column names the caller asked for (CSV only); undefined for the default. */
  target: string[] | undefined;
  /** Makes the builder once the reader knows the columns (and checks them against the options). */
  createBuilder(featureNames: string[], targetNames: string[]): ChunkBuilder;
}

/**
 * A reader is fed decoded text piece by piece. `run` reads the current piece and returns true when it
 * stopped early because the builder's chunk is full: the caller takes the chunk, hands it on, and
 * calls `run` again. So no more than one chunk is ever waiting.
 */
export interface DatasetReader {
  /** Null until the reader has seen the header (CSV) or the first record (JSON Lines). */
  readonly builder: ChunkBuilder | null;
  push(text: string): void;
  run(): boolean;
  /** The input has ended; the last row may fill the chunk, which the caller then takes. */
  finish(): void;
  /** Why the file holds no rows, for the empty_dataset message. */
  describeEmpty(): string;
}

/** A value as it appears in an error message: quoted, escaped, and cut when long. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
}
