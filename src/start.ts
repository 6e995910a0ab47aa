// `npm start`: everything on one machine. Applies migrations, then runs the API and one worker as
// two processes (as they would run on separate hosts), and stops both together.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadConfig } from "./config.js";
import { migrateDatabase } from "./db/migrate.js";

const config = loadConfig();
const result = await migrateDatabase(config.databaseUrl);
console.log(result.applied.length > 0 ? `applied migrations: ${result.applied.join(", ")}` : "database is up to date");

const root = fileURLToPath(new URL("..", import.meta.url));
const children: ChildProcess[] = [];
let stopping = false;

function run(name: string, entry: string): void {
  const child = spawn(process.execPath, ["--import", "tsx", entry], { cwd: root, stdio: "inherit", env: process.env });
  children.push(child);
  child.on("exit", (code, signal) => {
    if (stopping) return;
    console.error(`${name} exited (${signal ?? code}); stopping the rest`);
    stop(code ?? 1);
  });
}

function stop(code: number): void {
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  let left = children.filter((c) => c.exitCode === null).length;
  if (left === 0) process.exit(code);
  for (const c of children) c.once("exit", () => --left === 0 && process.exit(code));
}

process.once("SIGINT", () => stop(0));
process.once("SIGTERM", () => stop(0));

run("api", "src/api/server.ts");
run("worker", "workers/main.ts");
console.log(`API on http://${config.host}:${config.port} (docs at /docs), one worker on queue "${config.queueName}"`);
console.log("every /v1 route needs an API key: make one with `npm run key -- <tenant>` and send it as `Authorization: Bearer <key>`");
