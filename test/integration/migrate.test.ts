// Migrates a database of its own with the offline (wasm) migration engine, then checks that the
// generated Prisma client works against the migrated schema.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { PrismaPg } from "@prisma/adapter-pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import {
  MIGRATIONS_DIR,
  NO_FILTERS,
  dropDatabase,
  migrateDatabase,
  openSchemaEngine,
  readMigrationsList,
} from "../../src/db/migrate.js";
import { parsePgUrl } from "../../src/db/pg-url.js";
import { PrismaClient } from "../../src/generated/prisma/client.js";

// Same server as DATABASE_URL, fresh databases.
function freshDatabaseUrl(): string {
  const url = new URL(loadConfig().databaseUrl);
  url.pathname = `/trainhub_test_migrate_${randomBytes(4).toString("hex")}`;
  return url.toString();
}
const connectionString = freshDatabaseUrl();

const TABLES = ["checkpoints", "dataset_chunks", "datasets", "epoch_metrics", "job_events", "jobs"];

async function query<T extends pg.QueryResultRow>(sql: string, url = connectionString): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("migrateDatabase", () => {
  let prisma: InstanceType<typeof PrismaClient> | undefined;
  let firstRun: { applied: string[] };

  beforeAll(async () => {
    firstRun = await migrateDatabase(connectionString);
  });

  afterAll(async () => {
    await prisma?.$disconnect();
    await dropDatabase(connectionString);
  });

  it("creates the database and applies every migration in prisma/migrations", async () => {
    const dirs = (await readdir(MIGRATIONS_DIR, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
    expect(dirs.some((d) => d.endsWith("_init"))).toBe(true);
    expect(firstRun.applied).toEqual(dirs);

    const tables = await query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining([...TABLES, "_prisma_migrations"]));

    const enums = await query<{ typname: string }>("SELECT typname FROM pg_type WHERE typtype = 'e' ORDER BY typname");
    expect(enums.map((e) => e.typname)).toEqual(["DatasetStatus", "EventLevel", "JobStatus"]);
  });

  it("records the init migration in _prisma_migrations with the file's checksum", async () => {
    const rows = await query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }>(
      "SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY migration_name",
    );
    const init = rows.find((r) => r.migration_name.endsWith("_init"));
    expect(init).toBeDefined();
    // Prisma's checksum is the SHA-256 of migration.sql: the real CLI will recognise the row.
    const sql = await readFile(path.join(MIGRATIONS_DIR, init!.migration_name, "migration.sql"));
    expect(init!.checksum).toBe(createHash("sha256").update(sql).digest("hex"));
    expect(init!.finished_at).toBeInstanceOf(Date);
    expect(init!.rolled_back_at).toBeNull();
  });

  it("applies nothing the second time", async () => {
    expect(await migrateDatabase(connectionString)).toEqual({ applied: [] });
    const [{ n }] = await query<{ n: string }>("SELECT count(*) AS n FROM _prisma_migrations");
    expect(Number(n)).toBe(firstRun.applied.length);
  });

  it("agrees with the generated Prisma client", async () => {
    prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString }) });
    const created = await prisma.dataset.create({
      data: {
        tenant: "t",
        name: "iris",
        format: "csv",
        task: "classification",
        inputShape: [4],
        inputWidth: 4,
        targetWidth: 1,
        featureNames: ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        targetNames: ["species"],
        classes: ["setosa", "versicolor", "virginica"],
        chunkRows: 1024,
        bytes: 5_000_000_000n,
      },
    });
    const read = await prisma.dataset.findUniqueOrThrow({ where: { id: created.id } });
    expect(read).toMatchObject({
      name: "iris",
      status: "uploading", // database default
      rows: 0,
      inputShape: [4],
      classes: ["setosa", "versicolor", "virginica"],
      columns: [],
      bytes: 5_000_000_000n,
      sha256: null,
    });
    expect(read.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(read.createdAt).toBeInstanceOf(Date);
  });
});

// adapter-pg's own executeScript splits scripts at every ";" and runs the pieces separately;
// migrate.ts sends each migration whole, as the prisma CLI does.
describe("each migration script", () => {
  const otherUrl = freshDatabaseUrl();
  let dir = "";

  afterAll(async () => {
    await dropDatabase(otherUrl);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs whole: semicolons inside literals work and a failure leaves nothing behind", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "trainhub-migrations-"));
    const migrations: Record<string, string> = {
      "20260101000000_semicolons": [
        "-- a comment; with a semicolon",
        `CREATE TABLE "notes" ("body" TEXT NOT NULL DEFAULT 'a;b');`,
        "CREATE FUNCTION one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;",
      ].join("\n"),
      "20260101000001_fails": `CREATE TABLE "half" ("id" INT);\nSELECT 1/0;\n`,
    };
    await writeFile(path.join(dir, "migration_lock.toml"), 'provider = "postgresql"\n');
    for (const [name, sql] of Object.entries(migrations)) {
      await mkdir(path.join(dir, name));
      await writeFile(path.join(dir, name, "migration.sql"), sql);
    }
    // An empty database of its own (migrateDatabase would apply the real folder to it).
    const maintenance = new URL(otherUrl);
    maintenance.pathname = "/postgres";
    await query(`CREATE DATABASE "${parsePgUrl(otherUrl).database}"`, maintenance.toString());

    const engine = await openSchemaEngine(parsePgUrl(otherUrl));
    try {
      const migrationsList = await readMigrationsList(dir);
      await expect(engine.applyMigrations({ migrationsList, filters: NO_FILTERS })).rejects.toThrow(/division by zero/);
    } finally {
      engine.free();
    }
    const tables = await query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
      otherUrl,
    );
    expect(tables.map((t) => t.table_name).sort()).toEqual(["_prisma_migrations", "notes"]);
    const [{ one }] = await query<{ one: number }>("SELECT one() AS one", otherUrl);
    expect(one).toBe(1);
  });
});
