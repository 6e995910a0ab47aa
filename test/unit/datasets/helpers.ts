// Test helpers: feed an upload in pieces cut in various ways, and read the resulting chunks back as
// plain numbers.
import { expect } from "vitest";
import { AppError } from "../../../src/errors.js";
import { bytesToFloat32, ingestDataset, type DatasetSummary, type EncodedChunk, type IngestOptions } from "../../../src/datasets/index.js";

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** How the bytes of an upload are cut into pieces. */
export type Split = "whole" | "bytes" | { every: number } | { random: number };

import { seededRandom } from "../../helpers/random.js";
export { seededRandom };

export function cut(bytes: Uint8Array, split: Split): Uint8Array[] {
  if (split === "whole") return [bytes];
  const pieces: Uint8Array[] = [];
  const next = split === "bytes" ? () => 1 : "every" in split ? () => split.every : randomSizes(split.random);
  for (let at = 0; at < bytes.length; ) {
    const size = next();
    pieces.push(bytes.slice(at, at + size));
    at += size;
  }
  return pieces;
}

function randomSizes(seed: number): () => number {
  const random = seededRandom(seed);
  // Mostly tiny pieces (to cut through CRLFs, quotes and characters), sometimes empty ones, sometimes larger.
  return () => {
    const r = random();
    return r < 0.1 ? 0 : r < 0.8 ? 1 + Math.floor(random() * 4) : 1 + Math.floor(random() * 40);
  };
}

export async function* streamOf(pieces: Iterable<Uint8Array | string>): AsyncGenerator<Uint8Array | string> {
  for (const piece of pieces) yield piece;
}

export interface Ingested {
  summary: DatasetSummary;
  chunks: EncodedChunk[];
  /** Every row's features, across chunks. */
  x: number[][];
  /** Every row's targets, across the summary's yChunks. */
  y: number[][];
}

/** Ingests `input` (text, or bytes) cut as `split` says, and decodes the chunks back to rows. */
export async function ingest(input: string | Uint8Array, opts: IngestOptions, split: Split = "whole"): Promise<Ingested> {
  const bytes = typeof input === "string" ? utf8(input) : input;
  const chunks: EncodedChunk[] = [];
  const summary = await ingestDataset(streamOf(cut(bytes, split)), opts, async (chunk) => {
    chunks.push(chunk);
  });
  return {
    summary,
    chunks,
    x: chunks.flatMap((chunk) => rowsOf(bytesToFloat32(chunk.x), chunk.rows, summary.inputWidth)),
    y: summary.yChunks.flatMap((y, i) => rowsOf(bytesToFloat32(y), chunks[i].rows, summary.targetWidth)),
  };
}

export function rowsOf(values: Float32Array, rows: number, width: number): number[][] {
  expect(values.length).toBe(rows * width);
  return Array.from({ length: rows }, (_, r) => Array.from(values.subarray(r * width, (r + 1) * width)));
}

/** The AppError that ingesting `input` fails with (the test fails if it succeeds or throws anything else). */
export async function ingestError(input: string | Uint8Array, opts: IngestOptions, split: Split = "whole"): Promise<AppError> {
  try {
    await ingest(input, opts, split);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error("expected the upload to be rejected");
}
