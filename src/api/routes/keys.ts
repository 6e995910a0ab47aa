import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import * as keys from "../../services/keys.js";
import { listKeys } from "../../db/keys.js";
import type { AppContext } from "../context.js";
import { errorSchema, idParams } from "../schemas.js";

const tenantName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "1-63 letters, digits, `.`, `_` or `-`, starting with a letter or digit")
  .describe("The tenant the key belongs to; keys of one tenant see the same datasets and jobs.");

const keySchema = z.object({
  id: z.string(),
  tenant: z.string(),
  prefix: z.string().describe("The key's first characters, to recognise it; not usable as a key."),
  created_at: z.string(),
  revoked_at: z.string().nullable(),
});

function keyView(k: { id: string; tenant: string; prefix: string; createdAt: Date; revokedAt: Date | null }): z.infer<typeof keySchema> {
  return { id: k.id, tenant: k.tenant, prefix: k.prefix, created_at: k.createdAt.toISOString(), revoked_at: k.revokedAt?.toISOString() ?? null };
}

export const keyRoutes = (ctx: AppContext): FastifyPluginAsyncZod => async (app) => {
  app.post("/v1/keys", {
    schema: {
      tags: ["keys"],
      summary: "Create an API key for a tenant (admin key)",
      description: "The key itself is in this answer only: it is stored hashed and cannot be shown again.",
      body: z.object({ tenant: tenantName }),
      response: { 201: keySchema.extend({ key: z.string().describe("The API key: send it as `Authorization: Bearer <key>`.") }) },
    },
  }, async (req, reply) => {
    const made = await keys.createApiKey(ctx.db, req.body.tenant);
    return reply.code(201).send({ ...keyView(made.row), key: made.key });
  });

  app.get("/v1/keys", {
    schema: {
      tags: ["keys"],
      summary: "List API keys, newest first (admin key)",
      querystring: z.object({ tenant: tenantName.optional() }),
      response: { 200: z.object({ data: z.array(keySchema) }) },
    },
  }, async (req) => ({ data: (await listKeys(ctx.db, req.query.tenant)).map(keyView) }));

  app.delete("/v1/keys/:id", {
    schema: {
      tags: ["keys"],
      summary: "Revoke an API key (admin key)",
      description: "From the next request on, the key is answered 401. Revoking a revoked key again is harmless.",
      params: idParams,
      response: { 200: keySchema, 404: errorSchema },
    },
  }, async (req) => keyView(await keys.revokeApiKey(ctx.db, req.params.id)));
};
