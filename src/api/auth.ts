// Who is asking. Every /v1 route needs `Authorization: Bearer <key>`: a tenant's key for the data
// routes (the request then sees only that tenant's datasets and jobs: `req.tenant`), the admin key
// (ADMIN_API_KEY) for /v1/keys. Health checks, /metrics, the docs and the dashboard's static files
// are not under /v1 and stay open.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { AppError } from "../errors.js";
import { bearerToken, isAdminKey, tenantOfKey } from "../services/keys.js";
import type { AppContext } from "./context.js";
import { errorSchema } from "./schemas.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The tenant of the request's key ("" on routes that take no tenant key). */
    tenant: string;
  }
}

export type Access = "tenant" | "admin" | "open";

/** Which key a path needs. */
export function accessOf(path: string): Access {
  if (path === "/v1/keys" || path.startsWith("/v1/keys/")) return "admin";
  if (path.startsWith("/v1/")) return "tenant";
  return "open";
}

export function registerAuth(app: FastifyInstance, ctx: AppContext): void {
  app.decorateRequest("tenant", "");

  // Documents the requirement on each /v1 route, in the OpenAPI document as well.
  app.addHook("onRoute", (route) => {
    const access = accessOf(route.url);
    if (access === "open" || !route.schema) return;
    const schema = route.schema as { security?: unknown; response?: Record<string, unknown> };
    schema.security = [{ [access === "admin" ? "adminKey" : "apiKey"]: [] }];
    schema.response = { 401: errorSchema, ...(access === "admin" ? { 403: errorSchema } : {}), ...schema.response };
  });

  app.addHook("onRequest", async (req: FastifyRequest) => {
    // The route's own pattern, never the raw URL: the router decodes percent-escapes, so
    // `/%761/keys` reaches the `/v1/keys` route while its URL does not start with "/v1/". An
    // unmatched URL (no pattern) goes on to the 404 handler, which reveals nothing.
    const pattern = req.routeOptions.url;
    if (pattern === undefined) return;
    const access = accessOf(pattern);
    if (access === "open") return;
    const token = bearerToken(req.headers.authorization);
    if (token === null) {
      throw new AppError("unauthorized", "Send your API key as `Authorization: Bearer <key>`.", "authorization");
    }
    if (access === "admin") {
      if (isAdminKey(ctx.config.adminApiKey, token)) return;
      if (await tenantOfKey(ctx.db, token)) {
        throw new AppError("forbidden", "Creating, listing and revoking keys needs the admin key (ADMIN_API_KEY).", "authorization");
      }
      throw new AppError("unauthorized", "The key is not the admin key.", "authorization");
    }
    const tenant = await tenantOfKey(ctx.db, token);
    if (tenant === null) throw new AppError("unauthorized", "The API key is unknown or has been revoked.", "authorization");
    req.tenant = tenant;
  });
}

/** The OpenAPI security schemes the routes refer to. */
export const securitySchemes = {
  apiKey: { type: "http", scheme: "bearer", description: "A tenant's API key (made by an admin with POST /v1/keys)." },
  adminKey: { type: "http", scheme: "bearer", description: "The admin key, the service's ADMIN_API_KEY." },
} as const;
