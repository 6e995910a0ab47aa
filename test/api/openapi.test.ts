// The OpenAPI document: valid OpenAPI 3 by a standard validator, and complete: every route fastify
// registered is in it (or hidden on purpose, never a /v1 route), with a summary, its parameters and
// its error answers in the `{ error: { code, message, param } }` shape.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Validator } from "@seriousme/openapi-schema-validator";
import { routesOf } from "../../src/api/route-list.js";
import { startTestApp, type TestApp } from "../helpers/app.js";

let t: TestApp;
let doc: any;

beforeAll(async () => {
  t = await startTestApp("openapi");
  const res = await t.app.inject({ method: "GET", url: "/openapi.json" });
  expect(res.statusCode).toBe(200);
  doc = res.json();
});

afterAll(async () => {
  await t?.close();
});

/** `/v1/jobs/:id` as the document spells it: `/v1/jobs/{id}`. */
const openapiPath = (url: string) => url.replace(/:(\w+)/g, "{$1}");

describe("/openapi.json", () => {
  it("is valid OpenAPI 3 according to @seriousme/openapi-schema-validator", async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)?.slice(0, 4000)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toMatch(/^3\./);
  });

  it("the validator does reject a broken document (so the check above means something)", async () => {
    const broken = structuredClone(doc);
    broken.paths["/v1/jobs"].get.responses = "not an object";
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it("lists every route fastify registered; only non-API routes are hidden", () => {
    const routes = routesOf(t.app);
    expect(routes.length).toBeGreaterThan(10);
    const missing: string[] = [];
    for (const r of routes) {
      if (r.hidden) {
        expect(r.url.startsWith("/v1"), `${r.method} ${r.url} is an API route and must be documented`).toBe(false);
        continue;
      }
      const op = doc.paths[openapiPath(r.url)]?.[r.method.toLowerCase()];
      if (!op) missing.push(`${r.method} ${r.url}`);
    }
    expect(missing).toEqual([]);
    // ...and nothing in the document is made up.
    const registered = new Set(routes.map((r) => `${r.method.toLowerCase()} ${openapiPath(r.url)}`));
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(ops)) expect(registered.has(`${method} ${path}`), `${method} ${path}`).toBe(true);
    }
  });

  it("documents each operation: summary, tags, path parameters, security on /v1, and error answers in the error shape", () => {
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(typeof op.summary, where).toBe("string");
        expect(op.tags?.length, where).toBeGreaterThan(0);
        for (const name of [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])) {
          const param = (op.parameters ?? []).find((p: any) => p.in === "path" && p.name === name);
          expect(param, `${where}: path parameter ${name}`).toBeDefined();
          expect(param.description, `${where}: path parameter ${name}`).toBeTruthy();
        }
        if (path.startsWith("/v1/")) {
          expect(op.security, where).toBeDefined();
          const unauthorized = op.responses?.["401"]?.content?.["application/json"]?.schema;
          expect(unauthorized?.properties?.error?.required, `${where}: 401`).toEqual(expect.arrayContaining(["code", "message", "param"]));
        }
        for (const [status, response] of Object.entries(op.responses as Record<string, any>)) {
          // /readyz's 503 is its own report of which service is down; every other 4xx/5xx is an error.
          if (!/^[45]/.test(status) || path === "/readyz") continue;
          const schema = response.content?.["application/json"]?.schema;
          expect(schema?.properties?.error, `${where}: ${status}`).toBeDefined();
        }
      }
    }
  });

  it("declares the bearer-key security schemes", () => {
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.components.securitySchemes.adminKey).toMatchObject({ type: "http", scheme: "bearer" });
  });
});
