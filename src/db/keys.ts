// API keys. A key is shown to its owner once, when it is made; only its sha256 is stored, so a
// stolen database does not hand out working keys.
import { isId, type Db } from "./client.js";
import type { ApiKey as ApiKeyRow } from "../generated/prisma/client.js";

export type { ApiKeyRow };

export async function insertKey(db: Db, data: { tenant: string; prefix: string; hash: string }): Promise<ApiKeyRow> {
  return db.apiKey.create({ data });
}

/** The live (not revoked) key with this hash. */
export async function findLiveKeyByHash(db: Db, hash: string): Promise<Pick<ApiKeyRow, "id" | "tenant"> | null> {
  return db.apiKey.findFirst({ where: { hash, revokedAt: null }, select: { id: true, tenant: true } });
}

/** Revokes a key; revoking it again keeps the first time. Returns the row, or null if there is none. */
export async function revokeKey(db: Db, id: string): Promise<ApiKeyRow | null> {
  if (!isId(id)) return null;
  await db.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
  return db.apiKey.findUnique({ where: { id } });
}

export async function listKeys(db: Db, tenant?: string): Promise<ApiKeyRow[]> {
  return db.apiKey.findMany({ where: tenant ? { tenant } : {}, orderBy: [{ createdAt: "desc" }, { id: "desc" }] });
}
