// API keys and tenants: making a key (shown once), revoking it, and finding the tenant a request's
// bearer token belongs to.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { AppError } from "../errors.js";
import type { Db } from "../db/client.js";
import * as repo from "../db/keys.js";

/** Keys look like `th_` followed by 43 base64url characters (32 random bytes). */
const KEY_PREFIX = "th_";
/** How much of a key is kept in clear, to recognise it in a list. */
const SHOWN_CHARS = 10;

export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

export async function createApiKey(db: Db, tenant: string): Promise<{ row: repo.ApiKeyRow; key: string }> {
  const key = KEY_PREFIX + randomBytes(32).toString("base64url");
  const row = await repo.insertKey(db, { tenant, prefix: key.slice(0, SHOWN_CHARS), hash: hashKey(key) });
  return { row, key };
}

export async function revokeApiKey(db: Db, id: string): Promise<repo.ApiKeyRow> {
  const row = await repo.revokeKey(db, id);
  if (!row) throw new AppError("key_not_found", `No API key has id ${id}.`, "id");
  return row;
}

/** The tenant of a live key, or null for an unknown or revoked one. */
export async function tenantOfKey(db: Db, key: string): Promise<string | null> {
  const row = await repo.findLiveKeyByHash(db, hashKey(key));
  return row ? row.tenant : null;
}

/** Compares a presented token with the admin key in constant time (over their hashes). */
export function isAdminKey(adminKey: string | undefined, presented: string): boolean {
  if (!adminKey) return false;
  return timingSafeEqual(Buffer.from(hashKey(adminKey), "hex"), Buffer.from(hashKey(presented), "hex"));
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
  return m ? m[1] : null;
}
