// Ingestion of an uploaded dataset: bytes stream in, chunks of encoded rows stream out to the caller
// (which writes them to the database), and a summary comes back at the end. The file is never held
// whole: only the chunk being filled, and the targets, which are small.
import { createHash } from "node:crypto";
import { AppError } from "../errors.js";
import { ChunkBuilder, type EncodedChunk } from "./chunk-builder.js";
import { CsvDatasetReader } from "./csv.js";
import { JsonlDatasetReader } from "./jsonl.js";
import type { ColumnStats } from "./numbers.js";
import type { DatasetReader, ReaderOptions } from "./reader.js";
import type { Task } from "./targets.js";

export type { EncodedChunk } from "./chunk-builder.js";
export type { ColumnStats } from "./numbers.js";
export type { Task } from "./targets.js";

/** Rows per chunk when the options do not say. */
export const DEFAULT_CHUNK_ROWS = 4096;

export interface IngestOptions {
  /** The file's format: CSV with a header row, or JSON Lines `{"x": [...], "y": ...}`. */
  format: "csv" | "jsonl";
  /** CSV: the target column names. Default: the last column. JSON Lines: ignored (the target is "y"). */
  target?: string[];
  /** Default: classification if any target value is not a number, else regression. */
  task?: Task;
  /** The shape of one input, e.g. [1, 28, 28]; its product must equal the number of features. Default: [features]. */
  inputShape?: number[];
  /** Rows per chunk handed to `onChunk`. Default: 4096. */
  chunkRows?: number;
}

export interface DatasetSummary {
  rows: number;
  inputWidth: number;
  inputShape: number[];
  /** Regression: the number of target columns. Classification: 1 (the class index). */
  targetWidth: number;
  task: Task;
  /** Classification: the labels, class index order (numeric when every label is an integer). [] for regression. */
  classes: string[];
  featureNames: string[];
  targetNames: string[];
  /** Every feature column, then every regression target column. */
  columns: ColumnStats[];
  chunkRows: number;
  /** Per chunk, in order: rows*targetWidth float32 little-endian (classification: the class index). */
  yChunks: Uint8Array[];
  /** Bytes read from the source. */
  bytes: number;
  /** Hex SHA-256 of the source bytes. */
  sha256: string;
}

/**
 * Reads a dataset from `source` and hands its rows on in chunks of `chunkRows` rows.
 *
 * `onChunk` is awaited before any more input is read, so a slow database slows the upload down
 * instead of filling memory. Chunks come in index order. A file that cannot be read throws an
 * AppError (param "file") naming the line; bad options throw an AppError naming the option.
 */
export async function ingestDataset(
  source: AsyncIterable<Uint8Array | string>,
  opts: IngestOptions,
  onChunk: (chunk: EncodedChunk) => Promise<void>,
): Promise<DatasetSummary> {
  const options = checkOptions(opts);
  const notParsable = options.format === "csv" ? "invalid_csv" : "invalid_jsonl";
  const readerOptions: ReaderOptions = {
    target: options.target,
    createBuilder: (featureNames, targetNames) => {
      checkInputShape(options.inputShape, featureNames.length);
      return new ChunkBuilder(featureNames, targetNames, options.task, options.chunkRows ?? chunkRowsFor(featureNames.length));
    },
  };
  const reader: DatasetReader = options.format === "csv" ? new CsvDatasetReader(readerOptions) : new JsonlDatasetReader(readerOptions);

  const hash = createHash("sha256");
  let bytes = 0;
  // fatal: a byte sequence that is not UTF-8 is an error, not a silent U+FFFD in a class label.
  // The decoder also strips a leading byte order mark, and keeps a character cut between two pieces.
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const decode = (piece?: Uint8Array): string => {
    try {
      return piece === undefined ? decoder.decode() : decoder.decode(piece, { stream: true });
    } catch {
      throw new AppError(notParsable, `the file is not valid UTF-8 text (in its first ${bytes} bytes)`, "file");
    }
  };
  const readText = async (text: string): Promise<void> => {
    if (text.length === 0) return;
    reader.push(text);
    while (reader.run()) await handOn(reader.builder!.takeChunk());
  };
  const handOn = async (chunk: EncodedChunk | null): Promise<void> => {
    if (chunk !== null) await onChunk(chunk);
  };

  for await (const piece of source) {
    const data = typeof piece === "string" ? Buffer.from(piece, "utf8") : piece;
    if (data.byteLength === 0) continue;
    hash.update(data);
    bytes += data.byteLength;
    await readText(decode(data));
  }
  await readText(decode());
  reader.finish();

  const builder = reader.builder;
  if (builder === null || builder.rows === 0) {
    throw new AppError("empty_dataset", `The file holds no data rows: ${reader.describeEmpty()}.`, "file");
  }
  await handOn(builder.takeChunk());
  const built = builder.finish();

  const targetNames = [...builder.targets.names];
  return {
    rows: built.rows,
    inputWidth: builder.inputWidth,
    inputShape: options.inputShape ?? [builder.inputWidth],
    targetWidth: built.task === "classification" ? 1 : targetNames.length,
    task: built.task,
    classes: built.classes,
    featureNames: [...builder.featureNames],
    targetNames,
    columns: built.columns,
    chunkRows: builder.chunkRows,
    yChunks: built.yChunks,
    bytes,
    sha256: hash.digest("hex"),
  };
}

interface CheckedOptions {
  format: "csv" | "jsonl";
  target: string[] | undefined;
  task: Task | undefined;
  inputShape: number[] | undefined;
  chunkRows: number | undefined;
}

/** Rows per chunk when not given: at most DEFAULT_CHUNK_ROWS, and about 2 MiB of features, so
 * that wide rows (images) still make database rows of a comfortable size. */
export function chunkRowsFor(inputWidth: number): number {
  return Math.max(1, Math.min(DEFAULT_CHUNK_ROWS, Math.floor((2 * 1024 * 1024) / (4 * Math.max(1, inputWidth)))));
}

/** Checks the options once, before any byte is read, and fills in the defaults. */
function checkOptions(opts: IngestOptions): CheckedOptions {
  if (opts.format !== "csv" && opts.format !== "jsonl") {
    throw new AppError("invalid_request", `format must be "csv" or "jsonl", got ${JSON.stringify(opts.format)}`, "format");
  }
  if (opts.task !== undefined && opts.task !== "regression" && opts.task !== "classification") {
    throw new AppError("invalid_request", `task must be "regression" or "classification", got ${JSON.stringify(opts.task)}`, "task");
  }

  let target: string[] | undefined;
  if (opts.format === "csv" && opts.target !== undefined && opts.target.length > 0) {
    target = opts.target.map((name) => name.trim());
    if (target.some((name) => name.length === 0)) throw new AppError("invalid_request", "a target column name is empty", "target");
    const repeated = target.find((name, i) => target!.indexOf(name) !== i);
    if (repeated !== undefined) throw new AppError("invalid_request", `target column "${repeated}" is named twice`, "target");
  }

  const shape = opts.inputShape;
  if (shape !== undefined && (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && d > 0))) {
    throw new AppError("invalid_request", `input_shape must be a list of positive integers, got ${JSON.stringify(shape)}`, "input_shape");
  }

  const chunkRows = opts.chunkRows;
  if (chunkRows !== undefined && (!Number.isSafeInteger(chunkRows) || chunkRows < 1)) throw new RangeError(`chunkRows must be a positive integer, got ${chunkRows}`);

  return { format: opts.format, target, task: opts.task, inputShape: shape === undefined ? undefined : [...shape], chunkRows };
}

function checkInputShape(shape: number[] | undefined, inputWidth: number): void {
  if (shape === undefined) return;
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== inputWidth) {
    throw new AppError(
      "invalid_request",
      `input_shape [${shape.join(", ")}] holds ${size} values, but the file has ${inputWidth} feature column${inputWidth === 1 ? "" : "s"}`,
      "input_shape",
    );
  }
}
