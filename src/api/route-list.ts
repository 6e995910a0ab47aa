// Every route the app registers, as (method, url pattern): what the tests compare the OpenAPI
// document and the tenant-isolation table against, so that a new route cannot be left out of either.
import type { FastifyInstance } from "fastify";

export interface RouteEntry {
  method: string;
  url: string;
  /** Left out of the OpenAPI document on purpose (`schema.hide`: the docs' own pages, static files). */
  hidden: boolean;
}

const lists = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Starts recording the app's routes; call before any route is registered. */
export function trackRoutes(app: FastifyInstance): void {
  const list: RouteEntry[] = [];
  lists.set(app, list);
  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      // HEAD routes are only fastify's own twins of our GET routes.
      if (method === "HEAD") continue;
      list.push({ method, url: route.url, hidden: (route.schema as { hide?: boolean } | undefined)?.hide === true });
    }
  });
}

export function routesOf(app: FastifyInstance): readonly RouteEntry[] {
  return lists.get(app) ?? [];
}
