// Use cases for datasets: upload (streamed, chunked, made visible only when complete) and loading
// the rows back for training.
import { AppError } from "../errors.js";
import { ingestDataset, assembleRows, type IngestOptions } from "../datasets/index.js";
import type { Db } from "../db/client.js";
import * as repo from "../db/datasets.js";

export interface UploadRequest extends IngestOptions {
  name: string;
}

export async function uploadDataset(
  db: Db,
  tenant: string,
  source: AsyncIterable<Uint8Array | string>,
  req: UploadRequest,
): Promise<repo.DatasetRow> {
  const row = await repo.createUploadingDataset(db, tenant, req.name, req.format);
  try {
    const summary = await ingestDataset(source, req, (chunk) => repo.insertChunk(db, row.id, chunk.index, chunk.rows, chunk.x));
    return await repo.finishDataset(db, row.id, { ...summary, columns: summary.columns });
  } catch (err) {
    // Nothing half-written stays behind: the row and its chunks go together (cascade).
    await repo.deleteDataset(db, row.id).catch(() => undefined);
    throw err;
  }
}

/** A dataset of the tenant's; another tenant's is "not found", exactly like a missing one. */
export async function getDataset(db: Db, tenant: string, id: string): Promise<repo.DatasetRow> {
  const row = await repo.findDataset(db, id, tenant);
  if (!row || row.status === "failed") throw new AppError("dataset_not_found", `No dataset has id ${id}.`, "id");
  return row;
}

/**
 * Deletes a dataset of the tenant's with its rows. Refused (409) while a queued or running job uses
 * it; jobs that have ended keep their metrics and weights, and no longer point at it.
 */
export async function deleteDataset(db: Db, tenant: string, id: string): Promise<void> {
  const row = await getDataset(db, tenant, id);
  if (await repo.deleteUnusedDataset(db, row.id)) return;
  throw new AppError("dataset_in_use", `Dataset ${id} is used by a queued or running job; cancel it or wait for it to end.`, "id");
}

/** Loads every row of a ready dataset into memory as float32, for the trainer. */
export async function loadDatasetRows(db: Db, id: string): Promise<{ meta: repo.DatasetRow; x: Float32Array; y: Float32Array; rows: number }> {
  const meta = await repo.findDataset(db, id);
  if (!meta || meta.status !== "ready") throw new AppError("dataset_not_found", `Dataset ${id} is not available.`, "dataset_id");
  const chunks = await repo.readChunks(db, id);
  const { x, y, rows } = assembleRows(chunks, meta.inputWidth, meta.targetWidth);
  if (rows !== meta.rows) throw new Error(`dataset ${id}: chunks hold ${rows} rows, the summary says ${meta.rows}`);
  return { meta, x, y, rows };
}

/**
 * Deletes uploads abandoned midway (the API process receiving them died, so its own cleanup never
 * ran): `uploading` datasets that have received no chunk for `staleMs`. They were never visible as
 * `ready`, and no job can use them. Returns how many were deleted.
 */
export async function sweepAbandonedUploads(db: Db, staleMs: number): Promise<number> {
  return repo.deleteAbandonedUploads(db, new Date(Date.now() - staleMs));
}
