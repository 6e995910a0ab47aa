import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { pingDb } from "../../db/client.js";
import type { AppContext } from "../context.js";

export const healthRoutes = (ctx: AppContext): FastifyPluginAsyncZod => async (app) => {
  app.get("/healthz", {
    schema: { tags: ["health"], summary: "The process is alive", response: { 200: z.object({ status: z.literal("ok") }) } },
  }, async () => ({ status: "ok" as const }));

  const readySchema = z.object({
    status: z.enum(["ready", "unavailable"]),
    postgres: z.boolean(),
    redis: z.boolean(),
  });
  app.get("/readyz", {
    schema: { tags: ["health"], summary: "PostgreSQL and Redis are reachable", response: { 200: readySchema, 503: readySchema } },
  }, async (_req, reply) => {
    const [postgres, redis] = await Promise.all([pingDb(ctx.db), pingRedis(ctx)]);
    const ok = postgres && redis;
    return reply.code(ok ? 200 : 503).send({ status: ok ? "ready" : "unavailable", postgres, redis });
  });
};

async function pingRedis(ctx: AppContext): Promise<boolean> {
  try {
    const answer = await Promise.race([
      ctx.redis.ping(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), 1000).unref()),
    ]);
    return answer === "PONG";
  } catch {
    return false;
  }
}
