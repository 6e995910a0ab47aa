// The worker's log: one JSON object per line, filtered by LOG_LEVEL.
import type { Config } from "../src/config.js";

export type Fields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

const RANK = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;

export function createLogger(level: Config["logLevel"], base: Fields = {}): Logger {
  const write = (at: "info" | "warn" | "error", msg: string, fields: Fields = {}) => {
    if (RANK[at] < RANK[level]) return;
    console.log(JSON.stringify({ time: new Date().toISOString(), level: at, pid: process.pid, ...base, msg, ...fields }));
  };
  return {
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
  };
}

/** An error's message for the log (never for API responses). */
export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
