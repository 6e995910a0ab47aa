// Tenant isolation, against the real API process and a worker: with keys of two tenants, every
// route that takes an id is tried with the other tenant's ids and answers 404 (never a 403 that
// would confirm the id exists), lists show only one's own, and a revoked key is a 401. The table
// below must name every /v1 route in the OpenAPI document (and the OpenAPI test checks that every
// route fastify registered is in the document), so a new route cannot skip this test.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client } from "../helpers/client.js";
import { blobsCsv } from "../helpers/data.js";
import { createKey, startStack, waitFor, type Stack } from "../helpers/stack.js";

let stack: Stack;
let c: ReturnType<typeof client>;
/** Tenant A's (the stack's own key) dataset and finished job; tenant B's key. */
let datasetA: string;
let jobA: string;
let keyB: string;

beforeAll(async () => {
  stack = await startStack("tenancy");
  c = client(stack);
  datasetA = (await c.uploadCsv(blobsCsv(300, 5).csv, "name=a-blobs&target=colour")).id;
  const job = await c.submit({
    dataset_id: datasetA,
    model: { layers: [{ type: "dense", units: 8, activation: "relu" }, { type: "dense", units: 3 }] },
    loss: "cross_entropy",
    epochs: 3,
    seed: 3,
  });
  jobA = job.id;
  expect((await c.waitForJob(jobA, 120_000)).status).toBe("succeeded");
  keyB = await createKey(stack.baseUrl, stack.adminKey, "tenant-b");
}, 180_000);

afterAll(async () => {
  await stack?.close();
});

interface Call {
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
}

async function call(key: string | null, req: Call): Promise<{ status: number; text: string; json: any }> {
  const headers: Record<string, string> = { ...req.headers };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (req.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${stack.baseUrl}${req.path}`, {
    method: req.method,
    headers,
    body: req.body === undefined ? undefined : JSON.stringify(req.body),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: a download, an SVG, an event stream
  }
  return { status: res.status, text, json };
}

/**
 * One entry per /v1 route (keys routes aside): how to call it with tenant A's ids, and what A itself
 * gets back (showing the ids are real). `owner: null` skips A's own call (a delete, checked after).
 */
interface Entry {
  request(): Call;
  owner: number | null;
  /** B's answer, when it is not a 404 naming the id (list routes). */
  other?: (res: { status: number; json: any }) => void;
}

const config = () => ({
  dataset_id: datasetA,
  model: { layers: [{ type: "dense", units: 3 }] },
  loss: "cross_entropy",
  epochs: 1,
});

const table: Record<string, Entry> = {
  "GET /v1/datasets": {
    request: () => ({ method: "GET", path: "/v1/datasets?limit=100" }),
    owner: 200,
    other: (res) => {
      expect(res.status).toBe(200);
      expect(res.json.data.map((d: { id: string }) => d.id)).not.toContain(datasetA);
    },
  },
  "POST /v1/datasets": {
    // Uploading creates the caller's own dataset: nothing of A's is reachable through it.
    request: () => ({ method: "POST", path: "/v1/datasets?format=csv&target=y", body: undefined }),
    owner: 400,
    other: (res) => expect(res.status).toBe(400),
  },
  "GET /v1/datasets/:id": { request: () => ({ method: "GET", path: `/v1/datasets/${datasetA}` }), owner: 200 },
  "DELETE /v1/datasets/:id": { request: () => ({ method: "DELETE", path: `/v1/datasets/${datasetA}` }), owner: null },
  "GET /v1/jobs": {
    request: () => ({ method: "GET", path: "/v1/jobs?limit=100" }),
    owner: 200,
    other: (res) => {
      expect(res.status).toBe(200);
      expect(res.json.data.map((j: { id: string }) => j.id)).not.toContain(jobA);
    },
  },
  "POST /v1/jobs": {
    // Submitting with another tenant's dataset: that dataset does not exist for this tenant.
    request: () => ({ method: "POST", path: "/v1/jobs", body: config() }),
    owner: 201,
    other: (res) => {
      expect(res.status).toBe(404);
      expect(res.json.error).toMatchObject({ code: "dataset_not_found", param: "dataset_id" });
    },
  },
  "GET /v1/jobs/:id": { request: () => ({ method: "GET", path: `/v1/jobs/${jobA}` }), owner: 200 },
  "POST /v1/jobs/:id/cancel": { request: () => ({ method: "POST", path: `/v1/jobs/${jobA}/cancel` }), owner: 409 },
  "GET /v1/jobs/:id/metrics": { request: () => ({ method: "GET", path: `/v1/jobs/${jobA}/metrics` }), owner: 200 },
  "GET /v1/jobs/:id/weights": { request: () => ({ method: "GET", path: `/v1/jobs/${jobA}/weights` }), owner: 200 },
  "GET /v1/jobs/:id/checkpoints": { request: () => ({ method: "GET", path: `/v1/jobs/${jobA}/checkpoints` }), owner: 200 },
  "POST /v1/jobs/:id/predict": { request: () => ({ method: "POST", path: `/v1/jobs/${jobA}/predict`, body: { inputs: [[0, 0]] } }), owner: 200 },
  // The job has ended: the owner's stream sends every epoch and `end`, then closes.
  "GET /v1/jobs/:id/metrics/stream": { request: () => ({ method: "GET", path: `/v1/jobs/${jobA}/metrics/stream` }), owner: 200 },
  "GET /v1/jobs/:id/events": { request: () => ({ method: "GET", path: `/v1/jobs/${jobA}/events` }), owner: 200 },
  "GET /v1/jobs/:id/curves.svg": { request: () => ({ method: "GET", path: `/v1/jobs/${jobA}/curves.svg` }), owner: 200 },
};

/** The /v1 routes of the OpenAPI document, as `METHOD /path/:param`. */
async function documentedRoutes(): Promise<string[]> {
  const doc = await (await fetch(`${stack.baseUrl}/openapi.json`)).json();
  const routes: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, object>)) {
    for (const method of Object.keys(ops)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      routes.push(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`);
    }
  }
  return routes.filter((r) => r.split(" ")[1].startsWith("/v1/") && !r.split(" ")[1].startsWith("/v1/keys"));
}

describe("tenant isolation", () => {
  it("the table covers every /v1 route, and only real ones", async () => {
    const documented = (await documentedRoutes()).sort();
    expect(Object.keys(table).sort()).toEqual(documented);
  });

  it("another tenant's ids are a 404 on every route that takes one; lists and submissions stay within the tenant", async () => {
    for (const [route, entry] of Object.entries(table)) {
      const res = await call(keyB, entry.request());
      if (entry.other) {
        entry.other(res);
        continue;
      }
      expect(res.status, `${route} as another tenant: ${res.text}`).toBe(404);
      expect(["job_not_found", "dataset_not_found"], `${route}: ${res.text}`).toContain(res.json.error.code);
      expect(res.json.error.param).toBe("id");
      expect(res.text).not.toContain("tenant-a");
    }
    // Nothing B tried changed A's data.
    expect((await call(stack.key, { method: "GET", path: `/v1/datasets/${datasetA}` })).status).toBe(200);
    expect((await call(stack.key, { method: "GET", path: `/v1/jobs/${jobA}` })).json.status).toBe("succeeded");
  });

  it("the owner reaches the same ids (they are real)", async () => {
    for (const [route, entry] of Object.entries(table)) {
      if (entry.owner === null) continue;
      const res = await call(stack.key, entry.request());
      expect(res.status, `${route} as the owner: ${res.text}`).toBe(entry.owner);
    }
    const own = await call(stack.key, { method: "GET", path: "/v1/jobs?limit=100" });
    expect(own.json.data.map((j: { id: string }) => j.id)).toContain(jobA);
  });

  it("an Idempotency-Key is per tenant: the same key from two tenants makes two jobs", async () => {
    const ownB = (await call(keyB, { method: "POST", path: "/v1/datasets", body: undefined })).status; // 400: no file
    expect(ownB).toBe(400);
    const headers = { "idempotency-key": "shared-key-1" };
    const a = await call(stack.key, { method: "POST", path: "/v1/jobs", body: config(), headers });
    expect(a.status, a.text).toBe(201);
    const upload = await fetch(`${stack.baseUrl}/v1/datasets?name=b&target=colour`, {
      method: "POST",
      headers: { authorization: `Bearer ${keyB}`, "content-type": "text/csv" },
      body: blobsCsv(60, 9).csv,
    });
    expect(upload.status).toBe(201);
    const datasetB = ((await upload.json()) as { id: string }).id;
    const b = await call(keyB, { method: "POST", path: "/v1/jobs", body: { ...config(), dataset_id: datasetB }, headers });
    expect(b.status, b.text).toBe(201);
    expect(b.json.id).not.toBe(a.json.id);
  });
});

describe("references to another tenant's data inside a job config", () => {
  it("init_from and validation.dataset_id naming another tenant's job or dataset are 404s naming the field", async () => {
    const upload = await fetch(`${stack.baseUrl}/v1/datasets?name=b-own&target=colour`, {
      method: "POST",
      headers: { authorization: `Bearer ${keyB}`, "content-type": "text/csv" },
      body: blobsCsv(60, 12).csv,
    });
    const own = ((await upload.json()) as { id: string }).id;
    const model = { layers: [{ type: "dense", units: 8, activation: "relu" }, { type: "dense", units: 3 }] };
    const base = { dataset_id: own, model, loss: "cross_entropy", epochs: 1 };
    const fromA = await call(keyB, { method: "POST", path: "/v1/jobs", body: { ...base, init_from: { job_id: jobA, checkpoint: "last" } } });
    expect(fromA.status, fromA.text).toBe(404);
    expect(fromA.json.error).toMatchObject({ code: "job_not_found", param: "init_from.job_id" });
    const valA = await call(keyB, { method: "POST", path: "/v1/jobs", body: { ...base, validation: { dataset_id: datasetA } } });
    expect(valA.status, valA.text).toBe(404);
    expect(valA.json.error).toMatchObject({ code: "dataset_not_found", param: "validation.dataset_id" });
    // The same requests from A itself are accepted: the ids are real.
    const ownInit = await call(stack.key, { method: "POST", path: "/v1/jobs", body: { ...base, dataset_id: datasetA, init_from: { job_id: jobA, checkpoint: "last" } } });
    expect(ownInit.status, ownInit.text).toBe(201);
  });
});

describe("keys", () => {
  it("no key, a malformed header or an unknown key is a 401 in the error shape", async () => {
    const tries: Record<string, string>[] = [{}, { authorization: "Basic abc" }, { authorization: "Bearer th_not-a-real-key" }];
    for (const headers of tries) {
      const res = await call(null, { method: "GET", path: "/v1/jobs", headers });
      expect(res.status).toBe(401);
      expect(res.json.error).toMatchObject({ code: "unauthorized", param: "authorization" });
    }
  });

  it("health checks and the docs stay open", async () => {
    expect((await call(null, { method: "GET", path: "/healthz" })).status).toBe(200);
    expect((await call(null, { method: "GET", path: "/readyz" })).status).toBe(200);
    expect((await call(null, { method: "GET", path: "/openapi.json" })).status).toBe(200);
  });

  it("only the admin key manages keys: a tenant's key is a 403, none a 401", async () => {
    expect((await call(stack.key, { method: "POST", path: "/v1/keys", body: { tenant: "x" } })).status).toBe(403);
    expect((await call(stack.key, { method: "GET", path: "/v1/keys" })).status).toBe(403);
    expect((await call(null, { method: "GET", path: "/v1/keys" })).status).toBe(401);
    const bad = await call(stack.adminKey, { method: "POST", path: "/v1/keys", body: { tenant: "no spaces allowed" } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe("tenant");
  });

  it("a new key works at once, is listed without its secret, and is a 401 once revoked", async () => {
    const made = await call(stack.adminKey, { method: "POST", path: "/v1/keys", body: { tenant: "tenant-c" } });
    expect(made.status).toBe(201);
    expect(made.json.key).toMatch(/^th_[A-Za-z0-9_-]{43}$/);
    const key = made.json.key as string;
    expect((await call(key, { method: "GET", path: "/v1/jobs" })).status).toBe(200);

    const listed = await call(stack.adminKey, { method: "GET", path: "/v1/keys?tenant=tenant-c" });
    expect(listed.json.data).toHaveLength(1);
    expect(listed.json.data[0]).toMatchObject({ id: made.json.id, tenant: "tenant-c", prefix: key.slice(0, 10), revoked_at: null });
    expect(listed.text).not.toContain(key);

    const revoked = await call(stack.adminKey, { method: "DELETE", path: `/v1/keys/${made.json.id}` });
    expect(revoked.status).toBe(200);
    expect(revoked.json.revoked_at).not.toBeNull();
    const after = await call(key, { method: "GET", path: "/v1/jobs" });
    expect(after.status).toBe(401);
    expect(after.json.error.code).toBe("unauthorized");
    expect((await call(stack.adminKey, { method: "DELETE", path: "/v1/keys/8d0f3a4e-1111-4222-8333-944455556666" })).status).toBe(404);
  });
});

describe("dataset deletion", () => {
  it("is refused while a job uses the dataset, then removes it; the ended job keeps its results", async () => {
    const upload = await fetch(`${stack.baseUrl}/v1/datasets?name=doomed&target=colour`, {
      method: "POST",
      headers: { ...stack.auth, "content-type": "text/csv" },
      body: blobsCsv(90, 11).csv,
    });
    const doomed = (await upload.json()) as { id: string; sha256: string };
    // The same bytes again are recognisable by their hash.
    const again = await fetch(`${stack.baseUrl}/v1/datasets?name=again&target=colour`, {
      method: "POST",
      headers: { ...stack.auth, "content-type": "text/csv" },
      body: blobsCsv(90, 11).csv,
    });
    const second = (await again.json()) as { id: string; sha256: string };
    expect(second.sha256).toBe(doomed.sha256);
    const same = await call(stack.key, { method: "GET", path: `/v1/datasets?sha256=${doomed.sha256}` });
    expect(same.json.data.map((d: { id: string }) => d.id).sort()).toEqual([doomed.id, second.id].sort());
    expect((await call(keyB, { method: "GET", path: `/v1/datasets?sha256=${doomed.sha256}` })).json.data).toEqual([]);

    // A job long enough to be still queued or running when the delete arrives.
    const job = await call(stack.key, { method: "POST", path: "/v1/jobs", body: { ...config(), dataset_id: doomed.id, epochs: 100_000 } });
    expect(job.status).toBe(201);
    const refused = await call(stack.key, { method: "DELETE", path: `/v1/datasets/${doomed.id}` });
    expect(refused.status, refused.text).toBe(409);
    expect(refused.json.error).toMatchObject({ code: "dataset_in_use", param: "id" });
    await waitFor(async () => (await call(stack.key, { method: "GET", path: `/v1/jobs/${job.json.id}` })).json.epoch >= 1, 60_000);
    expect((await call(stack.key, { method: "POST", path: `/v1/jobs/${job.json.id}/cancel` })).status).toBeLessThan(300);
    const ended = await c.waitForJob(job.json.id, 60_000);
    expect(ended.status).toBe("cancelled");

    expect((await call(stack.key, { method: "DELETE", path: `/v1/datasets/${doomed.id}` })).status).toBe(204);
    expect((await call(stack.key, { method: "GET", path: `/v1/datasets/${doomed.id}` })).status).toBe(404);
    expect((await call(stack.key, { method: "DELETE", path: `/v1/datasets/${doomed.id}` })).status).toBe(404);
    const after = (await call(stack.key, { method: "GET", path: `/v1/jobs/${job.json.id}` })).json;
    expect(after.dataset_id).toBeNull();
    expect(after.status).toBe("cancelled");
    expect((await call(stack.key, { method: "GET", path: `/v1/jobs/${job.json.id}/metrics` })).json.data.length).toBeGreaterThanOrEqual(1);
    expect((await call(stack.key, { method: "GET", path: `/v1/jobs/${job.json.id}/weights` })).status).toBe(200);
  }, 180_000);
});
