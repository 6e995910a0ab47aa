// Applies prisma/migrations to a database: what `prisma migrate deploy` does, but through Prisma's
// WebAssembly schema engine and @prisma/adapter-pg, because the engine binary that the prisma CLI
// needs cannot be downloaded here (see OFFLINE.md). It is the same engine code, so it keeps the
// same `_prisma_migrations` table and checksums, and the real `prisma migrate deploy` accepts the
// result.
//
// Run as a script (`npm run db:migrate`) it migrates DATABASE_URL and exits.
import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { PrismaPg } from "@prisma/adapter-pg";
import { bindMigrationAwareSqlAdapterFactory, type SqlDriverAdapter } from "@prisma/driver-adapter-utils";
import * as glue from "@prisma/schema-engine-wasm/schema_engine_bg";
import type { MigrationList, SchemaFilter } from "@prisma/schema-engine-wasm/schema_engine_bg";
import { loadConfig } from "../config.js";
import { parsePgUrl, poolConfig, quoteIdent, type PgSettings } from "./pg-url.js";

/** Resolved from this file, so the scripts work from any working directory. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../prisma/migrations", import.meta.url));
export const SCHEMA_PATH = fileURLToPath(new URL("../../prisma/schema.prisma", import.meta.url));

/** We declare no externally managed tables or enums (prisma.config.ts has none either). */
export const NO_FILTERS: SchemaFilter = { externalTables: [], externalEnums: [] };

export interface MigrateOptions {
  /** Create the database first when it does not exist. Default true. */
  createDatabase?: boolean;
  /** Receives the engine's log lines (JSON strings). */
  log?: (line: string) => void;
}

export async function migrateDatabase(
  databaseUrl: string,
  opts: MigrateOptions = {},
): Promise<{ applied: string[] }> {
  const settings = parsePgUrl(databaseUrl);
  if (opts.createDatabase ?? true) await createDatabaseIfMissing(settings);
  const engine = await openSchemaEngine(settings, opts.log);
  try {
    const out = await engine
      .applyMigrations({ migrationsList: await readMigrationsList(), filters: NO_FILTERS })
      .catch(engineError);
    return { applied: out.appliedMigrationNames };
  } finally {
    engine.free();
  }
}

/** Drops a database, disconnecting anyone still using it. For tests. */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const settings = parsePgUrl(databaseUrl);
  await withMaintenanceClient(settings, async (client) => {
    // WITH (FORCE) (PostgreSQL 13+) terminates the other sessions on that database first.
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(settings.database)} WITH (FORCE)`);
  });
}

async function createDatabaseIfMissing(settings: PgSettings): Promise<void> {
  await withMaintenanceClient(settings, async (client) => {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [settings.database]);
    if (found.rowCount) return;
    try {
      await client.query(`CREATE DATABASE ${quoteIdent(settings.database)}`);
    } catch (err) {
      // Someone else created it in between: 42P04 duplicate_database, or 23505 when both
      // inserts into pg_database race.
      const code = (err as { code?: string }).code;
      if (code !== "42P04" && code !== "23505") throw err;
    }
  });
}

/** CREATE/DROP DATABASE cannot run inside the database itself: use `postgres`. */
async function withMaintenanceClient<T>(settings: PgSettings, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(poolConfig(settings, "postgres"));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// The schema engine, shared with src/db/new-migration.ts.

/**
 * While introspecting, the engine reads pg_catalog columns of type "char" (OID 18) and name
 * (OID 19), which adapter-pg has no column type for ("Column type 'char' could not be
 * deserialized"). This client relabels them as text (OID 25) in each row description, before pg
 * picks its parsers and the adapter reads the field types; in pg's text format all three arrive
 * as the same string anyway. Only the engine's pools use it.
 */
class CatalogAsTextClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.connection.prependListener("rowDescription", (msg: { fields: { dataTypeID: number }[] }) => {
      for (const field of msg.fields) {
        if (field.dataTypeID === 18 || field.dataTypeID === 19) field.dataTypeID = 25;
      }
    });
  }
}

/**
 * adapter-pg's executeScript splits a script at every ";" (breaking string literals, $$ function
 * bodies and comments that contain one) and runs the pieces one by one, so a failing migration is
 * left half applied. The prisma CLI's engine sends the whole script as one simple query, which
 * PostgreSQL runs as a single implicit transaction: do the same. executeRaw without parameters
 * uses pg's simple protocol and keeps the adapter's error mapping.
 */
class WholeScriptPg extends PrismaPg {
  override async connect() {
    return wholeScripts(await super.connect());
  }
  override async connectToShadowDb() {
    return wholeScripts(await super.connectToShadowDb());
  }
}

function wholeScripts<A extends SqlDriverAdapter>(adapter: A): A {
  adapter.executeScript = async (script: string) => {
    await adapter.executeRaw({ sql: script, args: [], argTypes: [] });
  };
  return adapter;
}

let wasmLoaded: Promise<void> | undefined;

/** Instantiates the engine's wasm once per process (the glue module keeps it in a global). */
function loadEngineWasm(): Promise<void> {
  wasmLoaded ??= (async () => {
    // The package exports only the JS; the .wasm sits next to the glue module.
    const gluePath = createRequire(import.meta.url).resolve("@prisma/schema-engine-wasm/schema_engine_bg");
    const bytes = await readFile(path.join(path.dirname(gluePath), "schema_engine_bg.wasm"));
    const imports = { "./schema_engine_bg.js": glue as unknown as WebAssembly.ModuleImports };
    const { instance } = await WebAssembly.instantiate(bytes, imports);
    glue.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
  })();
  return wasmLoaded;
}

/**
 * A schema engine connected to `settings.database`. Call `free()` when done. The engine leaves a
 * timer of about 10 s pending after its work (its lock timeout), so a script that uses it should
 * end with process.exit.
 */
export async function openSchemaEngine(
  settings: PgSettings,
  log?: (line: string) => void,
  schema?: { path: string; content: string },
): Promise<glue.SchemaEngine> {
  await loadEngineWasm();
  // Discrete settings rather than a connectionString (see pg-url.ts). A short idle timeout closes
  // the shadow database's connections before the adapter drops it, and lets the process exit.
  const adapter = new WholeScriptPg({
    ...poolConfig(settings),
    Client: CatalogAsTextClient,
    idleTimeoutMillis: 50,
    allowExitOnIdle: true,
  });
  return glue.SchemaEngine.new(
    { datamodels: schema ? [[schema.path, schema.content]] : undefined },
    (line: string) => log?.(line),
    bindMigrationAwareSqlAdapterFactory(adapter),
  ).catch(engineError);
}

/** prisma/migrations as the engine wants it, read the way the prisma CLI reads it. */
export async function readMigrationsList(dir = MIGRATIONS_DIR): Promise<MigrationList> {
  const lockPath = "migration_lock.toml";
  const lockContent = await readFile(path.join(dir, lockPath), "utf8").catch(() => null);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const migrationDirectories = await Promise.all(
    entries
      .filter((e) => e.isDirectory())
      .map(async (e) => ({
        path: e.name,
        migrationFile: {
          path: "migration.sql",
          content: await readFile(path.join(dir, e.name, "migration.sql"), "utf8").then(
            (value) => ({ tag: "ok" as const, value }),
            (err: Error) => ({ tag: "error" as const, value: err.message }),
          ),
        },
      })),
  );
  migrationDirectories.sort((a, b) => a.path.localeCompare(b.path));
  return { baseDir: dir, lockfile: { path: lockPath, content: lockContent }, shadowDbInitScript: "", migrationDirectories };
}

/** The engine rejects with plain objects or strings at times: always throw an Error. */
export function engineError(err: unknown): never {
  if (err instanceof Error) throw err;
  const message = typeof err === "string" ? err : ((err as { message?: string })?.message ?? JSON.stringify(err));
  throw new Error(`schema engine: ${message}`);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { databaseUrl } = loadConfig();
  const { host, port, database } = parsePgUrl(databaseUrl);
  const started = performance.now();
  const { applied } = await migrateDatabase(databaseUrl);
  const took = `${Math.round(performance.now() - started)} ms`;
  if (applied.length === 0) console.log(`database is up to date (${database} on ${host}:${port}, ${took})`);
  else console.log(`applied ${applied.length} migration${applied.length === 1 ? "" : "s"}: ${applied.join(", ")} (${database}, ${took})`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Exit explicitly: the engine's pending timer would otherwise hold the process for ~10 s.
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`db:migrate failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
