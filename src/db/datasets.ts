// Dataset rows and their chunks. A dataset is created `uploading`, its chunks are appended as the
// upload is parsed, and only `finishDataset` (one transaction) makes it `ready`.
import { isId, type Db } from "./client.js";
import type { Dataset as DatasetRow } from "../generated/prisma/client.js";

export type { DatasetRow };

export interface DatasetSummaryWrite {
  task: string;
  rows: number;
  inputShape: number[];
  inputWidth: number;
  targetWidth: number;
  featureNames: string[];
  targetNames: string[];
  classes: string[];
  columns: unknown;
  chunkRows: number;
  bytes: number;
  sha256: string;
  yChunks: Uint8Array[];
}

export async function createUploadingDataset(db: Db, tenant: string, name: string, format: string): Promise<DatasetRow> {
  return db.dataset.create({
    data: { tenant, name, format, task: "", inputWidth: 0, targetWidth: 0, inputShape: [], chunkRows: 0 },
  });
}

export async function insertChunk(db: Db, datasetId: string, index: number, rows: number, x: Uint8Array): Promise<void> {
  // y is filled in by finishDataset: class indices are known only once every label has been seen.
  // Written through the dataset so that its updated_at moves with every chunk: an upload that
  // stops moving was abandoned (see deleteAbandonedUploads).
  await db.dataset.update({
    where: { id: datasetId },
    data: { chunks: { create: { index, rows, x: toBytes(x), y: new Uint8Array(0) } } },
  });
}

export async function finishDataset(db: Db, datasetId: string, s: DatasetSummaryWrite): Promise<DatasetRow> {
  return db.$transaction(async (tx) => {
    for (let index = 0; index < s.yChunks.length; index++) {
      await tx.datasetChunk.update({
        where: { datasetId_index: { datasetId, index } },
        data: { y: toBytes(s.yChunks[index]) },
      });
    }
    return tx.dataset.update({
      where: { id: datasetId },
      data: {
        status: "ready",
        task: s.task,
        rows: s.rows,
        inputShape: s.inputShape,
        inputWidth: s.inputWidth,
        targetWidth: s.targetWidth,
        featureNames: s.featureNames,
        targetNames: s.targetNames,
        classes: s.classes,
        columns: s.columns as object,
        chunkRows: s.chunkRows,
        bytes: BigInt(s.bytes),
        sha256: s.sha256,
      },
    });
  }, { timeout: 120_000 });
}

/** Removes a dataset whose upload failed, with its chunks. */
export async function deleteDataset(db: Db, datasetId: string): Promise<void> {
  await db.dataset.deleteMany({ where: { id: datasetId } });
}

/**
 * Deletes a dataset with its chunks unless a queued, running or cancelling job uses it, in one
 * statement (a check and a delete apart could let a job slip in between). Jobs that have ended keep
 * their results; their dataset_id becomes null. Returns false when a job uses it.
 */
export async function deleteUnusedDataset(db: Db, datasetId: string): Promise<boolean> {
  const n = await db.$executeRaw`
    DELETE FROM datasets d
     WHERE d.id = ${datasetId}::uuid
       AND NOT EXISTS (
         SELECT 1 FROM jobs j
          WHERE (j.dataset_id = d.id OR j.validation_dataset_id = d.id)
            AND j.status IN ('queued', 'running', 'cancelling'))`;
  return n === 1;
}

/**
 * Deletes `uploading` datasets (and their chunks) that have not received a chunk since
 * `staleBefore`: their upload was cut off with the process receiving it. Returns how many.
 */
export async function deleteAbandonedUploads(db: Db, staleBefore: Date): Promise<number> {
  const res = await db.dataset.deleteMany({ where: { status: "uploading", updatedAt: { lt: staleBefore } } });
  return res.count;
}

/** A dataset by id; with `tenant`, only if it belongs to that tenant. */
export async function findDataset(db: Db, id: string, tenant?: string): Promise<DatasetRow | null> {
  return isId(id) ? db.dataset.findFirst({ where: { id, ...(tenant !== undefined ? { tenant } : {}) } }) : null;
}

export async function listDatasets(db: Db, tenant: string, opts: { after?: string; limit: number; sha256?: string }): Promise<DatasetRow[]> {
  const cursor = isId(opts.after)
    ? await db.dataset.findFirst({ where: { id: opts.after, tenant }, select: { createdAt: true, id: true } })
    : null;
  return db.dataset.findMany({
    where: {
      tenant,
      ...(opts.sha256 ? { sha256: opts.sha256 } : {}),
      // `failed` datasets are not served at all; `uploading` ones are listed with that status.
      status: { not: "failed" },
      ...(cursor ? { OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] } : {}),
    },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: opts.limit + 1,
  });
}

export async function readChunks(db: Db, datasetId: string): Promise<{ rows: number; x: Uint8Array; y: Uint8Array }[]> {
  return db.datasetChunk.findMany({
    where: { datasetId },
    orderBy: { index: "asc" },
    select: { rows: true, x: true, y: true },
  });
}

// Prisma's Bytes fields want a Uint8Array backed by a plain ArrayBuffer.
function toBytes(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return u.buffer instanceof ArrayBuffer ? (u as Uint8Array<ArrayBuffer>) : new Uint8Array(u);
}
