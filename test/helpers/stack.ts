// Test fixtures against the real services: a fresh PostgreSQL database per test file (migrated
// with the project's own migrator), a fresh queue name, and the real API and worker processes.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import { dropDatabase, migrateDatabase } from "../../src/db/migrate.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BASE_DB_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const url = new URL(BASE_DB_URL);
  url.pathname = `/trainhub_test_${label}_${randomBytes(4).toString("hex")}`;
  await migrateDatabase(url.toString(), { createDatabase: true });
  return { url: url.toString(), drop: () => dropDatabase(url.toString()) };
}

export function uniqueQueueName(label: string): string {
  return `test-${label}-${randomBytes(4).toString("hex")}`;
}

/** Removes every key of a test queue from Redis. */
export async function obliterateQueue(name: string, redisUrl = REDIS_URL): Promise<void> {
  const q = new Queue(name, { connection: { url: redisUrl, maxRetriesPerRequest: 1 } });
  q.on("error", () => undefined);
  await q.obliterate({ force: true }).catch(() => undefined);
  await q.close();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `node --import tsx <entry>` from the project root with the given environment. */
export function startProcess(entry: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return {
    child,
    output: () => out,
    stop: (signal = "SIGTERM") =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.once("exit", (code) => {
          clearTimeout(timer);
          resolve(code);
        });
        child.kill(signal);
      }),
  };
}

export interface Stack {
  baseUrl: string;
  api: Proc;
  /** The first worker (undefined with `workers: 0` until startWorker is called). */
  worker: Proc;
  /** Every worker process started so far, including stopped ones. */
  workers: Proc[];
  db: TestDatabase;
  queueName: string;
  /** The environment every process of the stack gets. */
  env: Record<string, string>;
  /** ADMIN_API_KEY of the stack's API. */
  adminKey: string;
  /** A key of the tenant `tenant`, made through POST /v1/keys. */
  key: string;
  tenant: string;
  /** `{ authorization: "Bearer <key>" }`, to spread into a request's headers. */
  auth: { authorization: string };
  /** Starts another worker process on the same database and queue. */
  startWorker(extraEnv?: Record<string, string>): Proc;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Worker processes to start with the API (default 1). */
  workers?: number;
  /** Extra environment for every process (e.g. WORKER_LOCK_MS), and the Redis to use. */
  env?: Record<string, string>;
}

/** A migrated database, the API process and worker processes, all on fresh names. */
export async function startStack(label: string, opts: StackOptions = {}): Promise<Stack> {
  const db = await createTestDatabase(label);
  const queueName = uniqueQueueName(label);
  const port = await freePort();
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    REDIS_URL,
    QUEUE_NAME: queueName,
    PORT: String(port),
    HOST: "127.0.0.1",
    ADMIN_API_KEY: TEST_ADMIN_KEY,
    // Tests poll hard with one key; the rate limit has tests of its own.
    RATE_LIMIT_MAX: "0",
    ...opts.env,
  };
  const api = startProcess("src/api/server.ts", env);
  const workers: Proc[] = [];
  const startWorker = (extraEnv: Record<string, string> = {}) => {
    const w = startProcess("workers/main.ts", { ...env, ...extraEnv });
    workers.push(w);
    return w;
  };
  for (let i = 0; i < (opts.workers ?? 1); i++) startWorker();
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${baseUrl}/readyz`).catch(() => null))?.status === 200, 30_000, () => api.output());
  const tenant = "tenant-a";
  const key = await createKey(baseUrl, env.ADMIN_API_KEY, tenant);
  return {
    baseUrl,
    adminKey: env.ADMIN_API_KEY,
    key,
    tenant,
    auth: { authorization: `Bearer ${key}` },
    api,
    get worker() {
      return workers[0];
    },
    workers,
    db,
    queueName,
    env,
    startWorker,
    async close() {
      await Promise.all([api.stop(), ...workers.map((w) => w.stop())]);
      await obliterateQueue(queueName, env.REDIS_URL);
      await db.drop();
    },
  };
}

export const TEST_ADMIN_KEY = "test-admin-key-0123456789";

/** Makes a tenant's key through the API, with the admin key. */
export async function createKey(baseUrl: string, adminKey: string, tenant: string): Promise<string> {
  const res = await fetch(`${baseUrl}/v1/keys`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${adminKey}` },
    body: JSON.stringify({ tenant }),
  });
  const body = (await res.json()) as { key?: string };
  if (res.status !== 201 || !body.key) throw new Error(`POST /v1/keys answered ${res.status}: ${JSON.stringify(body)}`);
  return body.key;
}

/** A redis-server of the test's own, keeping nothing on disk, so a restart empties it. */
export interface TestRedis {
  url: string;
  port: number;
  /** Kills it (SIGKILL: no chance to save anything) and waits until it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    const { Redis } = await import("ioredis");
    await waitFor(async () => {
      const r = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on("error", () => undefined);
      try {
        await r.connect();
        return (await r.ping()) === "PONG";
      } catch {
        return false;
      } finally {
        r.disconnect();
      }
    }, 10_000);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill("SIGKILL");
    });
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, kill, start };
}

/**
 * Makes a test database unreachable: new connections are refused and open ones are cut, as when
 * the server restarts. `allow` makes it reachable again.
 */
export async function blockDatabase(databaseUrl: string): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1);
  await adminQuery(databaseUrl, `ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
  await adminQuery(databaseUrl, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [name]);
}

export async function allowDatabase(databaseUrl: string): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1);
  await adminQuery(databaseUrl, `ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
}

/** Runs a statement on the server's `postgres` database. */
export async function adminQuery(databaseUrl: string, sql: string, params: unknown[] = []): Promise<unknown[]> {
  const { default: pg } = await import("pg");
  const url = new URL(databaseUrl);
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, context?: () => string, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms${context ? `\n${context()}` : ""}`);
}
