// Turns a postgresql:// URL into discrete pg settings. The migration engine needs these rather than
// a connectionString: @prisma/adapter-pg makes its shadow database by spreading the pool config with
// another `database`, and pg lets a connectionString override that field, so with a URL the
// "shadow" pool would talk to the real database (and the shadow database is never dropped).
import type { PoolConfig } from "pg";

export interface PgSettings {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
}

export function parsePgUrl(databaseUrl: string): PgSettings {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new Error("DATABASE_URL is not a valid URL");
  }
  if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
    throw new Error(`DATABASE_URL must start with postgresql:// (got ${url.protocol}//)`);
  }
  // Prisma's boilerplate adds ?schema=public; anything else would be silently ignored here.
  for (const [key, value] of url.searchParams) {
    if (!(key === "schema" && value === "public")) {
      throw new Error(`DATABASE_URL parameter "${key}" is not supported by the migration scripts`);
    }
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!database) throw new Error("DATABASE_URL names no database");
  return {
    host: decodeURIComponent(url.hostname).replace(/^\[(.*)\]$/, "$1") || "127.0.0.1",
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username) || "postgres",
    password: url.password ? decodeURIComponent(url.password) : undefined,
    database,
  };
}

/** Pool settings for the same server, another database. */
export function poolConfig(s: PgSettings, database = s.database): PoolConfig {
  return { host: s.host, port: s.port, user: s.user, password: s.password, database };
}

/** A database name as a quoted SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
