// What routes need from the outside world, built once by the server (or a test) and passed to
// buildApp.
import type { Redis } from "ioredis";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import type { TrainingQueue } from "../queue/index.js";

export interface AppContext {
  config: Config;
  db: Db;
  queue: TrainingQueue;
  /** A plain Redis connection, for readiness checks. */
  redis: Redis;
}
