// The per-client rate limit (@fastify/rate-limit): RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS
// per client, the client being the sha256 of its bearer token when it sends an Authorization header,
// else its IP. Counts live in Redis, so every API process of a deployment shares them; the Redis
// keys are namespaced by the queue name (one deployment, one queue; the tests' fresh queue names
// keep their counts apart). Over the limit: 429 `rate_limited` with Retry-After.
//
// The limiter has its own Redis connection that fails fast (no offline queue, a short command
// timeout), and a failing Redis lets requests through (skipOnError): an outage must not take the
// API down with it, nor make every request wait.
import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import rateLimit from "@fastify/rate-limit";
import { Redis } from "ioredis";
import { AppError } from "../errors.js";
import type { AppContext } from "./context.js";

/** Routes that are never limited: probes and the metrics scrape. */
const EXEMPT_ROUTES = new Set(["/healthz", "/readyz", "/metrics"]);
/** A rate-limit check that takes longer than this lets the request through. */
const REDIS_COMMAND_TIMEOUT_MS = 500;
/** How long startup waits for the limiter's Redis connection (it keeps trying afterwards). */
const REDIS_READY_WAIT_MS = 2_000;

/** The client a request is counted against: `key:<sha256 of the token>` or `ip:<address>`. */
export function rateLimitKey(req: FastifyRequest): string {
  const header = req.headers.authorization;
  if (typeof header === "string" && header.trim() !== "") {
    const bearer = /^Bearer\s+(.+)$/i.exec(header.trim());
    const secret = bearer ? bearer[1]! : header.trim();
    return `key:${createHash("sha256").update(secret).digest("hex")}`;
  }
  return `ip:${req.ip}`;
}

function seconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/**
 * Registers the limit on the app: call it before the authentication hook and the routes. Does
 * nothing when RATE_LIMIT_MAX is 0.
 */
export async function registerRateLimit(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const { max, windowMs } = ctx.config.rateLimit;
  if (max === 0) return;

  const redis = new Redis(ctx.config.redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: REDIS_READY_WAIT_MS,
  });
  redis.on("error", () => undefined); // /readyz reports Redis; the limiter just lets requests through
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, REDIS_READY_WAIT_MS).unref();
    redis.once("ready", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  app.addHook("onClose", async () => {
    redis.disconnect();
  });

  await app.register(rateLimit, {
    // Not per route (the plugin's global mode): one app-wide onRequest hook, so that the limit runs
    // where this is registered among the app's hooks (before authentication: a flood of bad keys is
    // limited too, and never reaches the database), and covers unmatched URLs as well.
    global: false,
    max,
    timeWindow: windowMs,
    redis,
    nameSpace: `trainhub:rate-limit:${ctx.config.queueName}:`,
    skipOnError: true,
    keyGenerator: rateLimitKey,
    allowList: (req) => EXEMPT_ROUTES.has(req.routeOptions.url ?? ""),
    errorResponseBuilder: (_req, context) =>
      new AppError(
        "rate_limited",
        `Rate limit exceeded: at most ${context.max} requests per ${seconds(windowMs)} per API key (or IP address without one); retry in ${context.after}.`,
      ),
  });
  const limit = app.rateLimit();
  app.addHook("onRequest", async function (req, reply) {
    await limit.call(this, req, reply);
  });
}
