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
export async function obliterateQueue(name: string): Promise<void> {
  const q = new Queue(name, { connection: { url: REDIS_URL } });
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
  worker: Proc;
  db: TestDatabase;
  queueName: string;
  close(): Promise<void>;
}

/** A migrated database, the API process and one worker process, all on fresh names. */
export async function startStack(label: string): Promise<Stack> {
  const db = await createTestDatabase(label);
  const queueName = uniqueQueueName(label);
  const port = await freePort();
  const env = { DATABASE_URL: db.url, REDIS_URL, QUEUE_NAME: queueName, PORT: String(port), HOST: "127.0.0.1" };
  const api = startProcess("src/api/server.ts", env);
  const worker = startProcess("workers/main.ts", env);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${baseUrl}/readyz`).catch(() => null))?.status === 200, 30_000, () => api.output());
  return {
    baseUrl,
    api,
    worker,
    db,
    queueName,
    async close() {
      await Promise.all([api.stop(), worker.stop()]);
      await obliterateQueue(queueName);
      await db.drop();
    },
  };
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, context?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms${context ? `\n${context()}` : ""}`);
}
