// Malformed requests against a real API process: each of the cases below gets the 4xx it should, in
// the `{ error: { code, message, param } }` shape, never a 5xx; afterwards the process is still
// alive, healthy and serving. Wrong types, missing fields, huge numbers, negative sizes, unknown
// enum values, wrong content types, oversized bodies, broken multipart, invalid UTF-8, malformed
// JSON, bad headers and bad query strings, on every route family.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client } from "../helpers/client.js";
import { startStack, type Stack } from "../helpers/stack.js";

let stack: Stack;
let datasetId: string;
let jobId: string;

beforeAll(async () => {
  // No worker: jobs stay queued. A small upload limit, to test it without sending megabytes.
  stack = await startStack("malformed", { workers: 0, env: { UPLOAD_LIMIT_BYTES: "20000" } });
  const c = client(stack);
  datasetId = (await c.uploadCsv("a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n", "name=tiny&target=label")).id;
  jobId = (await c.submit(goodJob())).id;
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

function goodJob(): any {
  return {
    dataset_id: datasetId,
    model: { layers: [{ type: "dense", units: 4, activation: "relu" }, { type: "dense", units: 2 }] },
    loss: "cross_entropy",
    epochs: 2,
  };
}

const utf8 = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const BAD_UTF8 = new Uint8Array([0xc3, 0x28, 0xff, 0xfe]);

interface Case {
  name: string;
  method: string;
  /** A function: the ids exist only once beforeAll has run. */
  path: () => string;
  headers?: Record<string, string>;
  /** A string or bytes (sent as is), or a value sent as JSON. */
  body?: () => unknown;
  /** No Authorization header (default: the stack's tenant key). */
  anonymous?: boolean;
  /** The admin key instead of the tenant's. */
  admin?: boolean;
  status: number;
  code?: string;
  /** The `param` the error must name (undefined: not checked). */
  param?: string | null;
}

const job = (patch: (j: any) => void) => () => {
  const j = goodJob();
  patch(j);
  return j;
};

const boundary = "----trainhubtest";
const multipart = () => ({ "content-type": `multipart/form-data; boundary=${boundary}` });

const cases: Case[] = [
  // --- dataset uploads -------------------------------------------------------------------------
  { name: "upload without a body", method: "POST", path: () => "/v1/datasets?format=csv", status: 400, code: "missing_file", param: "file" },
  { name: "upload with an empty CSV body", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "text/csv" }, body: () => "", status: 400, code: "missing_file" },
  { name: "upload of XML", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "application/xml" }, body: () => "<a/>", status: 415, code: "unsupported_media_type", param: "content-type" },
  { name: "upload with an unknown format", method: "POST", path: () => "/v1/datasets?format=parquet", headers: { "content-type": "text/csv" }, body: () => "a,y\n1,2\n", status: 400, param: "format" },
  { name: "upload with an unknown task", method: "POST", path: () => "/v1/datasets?task=clustering", headers: { "content-type": "text/csv" }, body: () => "a,y\n1,2\n", status: 400, param: "task" },
  { name: "upload with a negative input_shape", method: "POST", path: () => "/v1/datasets?input_shape=-1,2", headers: { "content-type": "text/csv" }, body: () => "a,b,y\n1,2,3\n", status: 400, param: "input_shape" },
  { name: "upload whose input_shape does not multiply out", method: "POST", path: () => "/v1/datasets?input_shape=3,3&target=y", headers: { "content-type": "text/csv" }, body: () => "a,b,y\n1,2,3\n", status: 400 },
  { name: "upload with an empty name", method: "POST", path: () => "/v1/datasets?name=", headers: { "content-type": "text/csv" }, body: () => "a,y\n1,2\n", status: 400, param: "name" },
  { name: "upload named with a NUL character", method: "POST", path: () => "/v1/datasets?name=a%00b", headers: { "content-type": "text/csv" }, body: () => "a,y\n1,2\n", status: 400, param: "name" },
  { name: "CSV with only a header", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "text/csv" }, body: () => "a,b,y\n", status: 400, code: "empty_dataset" },
  { name: "CSV with a ragged row", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "text/csv" }, body: () => "a,b,y\n1,2,3\n4,5\n", status: 400, code: "csv_ragged_row" },
  { name: "CSV with a word for a feature", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "text/csv" }, body: () => "a,b,y\n1,two,3\n", status: 400, code: "non_numeric_value" },
  { name: "CSV with an unterminated quote", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "text/csv" }, body: () => 'a,b,y\n"1,2,3\n', status: 400 },
  { name: "CSV with invalid UTF-8 in the header", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "text/csv" }, body: () => concat(utf8("a"), BAD_UTF8, utf8(",y\n1,2\n")), status: 400 },
  { name: "CSV with invalid UTF-8 in a value", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "text/csv" }, body: () => concat(utf8("a,y\n1,"), BAD_UTF8, utf8("\n")), status: 400 },
  { name: "CSV with a huge number", method: "POST", path: () => "/v1/datasets?target=y", headers: { "content-type": "text/csv" }, body: () => "a,y\n1e999,2\n", status: 400 },
  { name: "CSV over the upload limit", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "text/csv" }, body: () => "a,y\n" + "1,2\n".repeat(6000), status: 413, code: "payload_too_large" },
  { name: "JSON Lines with a broken record", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "application/x-ndjson" }, body: () => '{"x":[1,2],"y":1}\n{"x":[1,\n', status: 400, code: "invalid_jsonl" },
  { name: "JSON Lines with x of the wrong type", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "application/x-ndjson" }, body: () => '{"x":"1,2","y":1}\n', status: 400 },
  { name: "multipart without a boundary", method: "POST", path: () => "/v1/datasets", headers: { "content-type": "multipart/form-data" }, body: () => "--x\r\n\r\n", status: 400 },
  {
    name: "multipart cut off before its closing boundary",
    method: "POST",
    path: () => "/v1/datasets",
    headers: multipart(),
    body: () => `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\nContent-Type: text/csv\r\n\r\na,y\n1,`,
    status: 400,
  },
  {
    name: "multipart with the file in the wrong field",
    method: "POST",
    path: () => "/v1/datasets",
    headers: multipart(),
    body: () => `--${boundary}\r\nContent-Disposition: form-data; name="data"; filename="a.csv"\r\n\r\na,y\n1,2\n\r\n--${boundary}--\r\n`,
    status: 400,
    code: "missing_file",
    param: "file",
  },
  {
    name: "multipart with garbage between boundaries",
    method: "POST",
    path: () => "/v1/datasets",
    headers: multipart(),
    body: () => `--${boundary}\r\nthis is not a part header\r\n--${boundary}--\r\n`,
    status: 400,
  },
  // --- dataset reads ---------------------------------------------------------------------------
  { name: "list datasets with limit 0", method: "GET", path: () => "/v1/datasets?limit=0", status: 400, param: "limit" },
  { name: "list datasets with a word for limit", method: "GET", path: () => "/v1/datasets?limit=many", status: 400, param: "limit" },
  { name: "list datasets with a huge limit", method: "GET", path: () => "/v1/datasets?limit=1e309", status: 400, param: "limit" },
  { name: "look up a malformed sha256", method: "GET", path: () => "/v1/datasets?sha256=abc", status: 400, param: "sha256" },
  { name: "read a dataset by a malformed id", method: "GET", path: () => "/v1/datasets/..%2F..%2Fetc", status: 404, code: "dataset_not_found" },
  { name: "delete a dataset that does not exist", method: "DELETE", path: () => "/v1/datasets/8d0f3a4e-1111-4222-8333-944455556666", status: 404, code: "dataset_not_found" },
  { name: "delete a dataset a queued job uses", method: "DELETE", path: () => `/v1/datasets/${datasetId}`, status: 409, code: "dataset_in_use", param: "id" },
  // --- job submission --------------------------------------------------------------------------
  { name: "job body that is not JSON", method: "POST", path: () => "/v1/jobs", headers: { "content-type": "application/json" }, body: () => "{nope", status: 400, code: "invalid_request", param: "body" },
  { name: "job body that is empty", method: "POST", path: () => "/v1/jobs", headers: { "content-type": "application/json" }, body: () => "", status: 400 },
  { name: "job body with invalid UTF-8", method: "POST", path: () => "/v1/jobs", headers: { "content-type": "application/json" }, body: () => concat(utf8('{"dataset_id":"'), BAD_UTF8, utf8('"}')), status: 422 },
  // text/plain is read as a string, which is not a config.
  { name: "job body as text/plain", method: "POST", path: () => "/v1/jobs", headers: { "content-type": "text/plain" }, body: () => JSON.stringify(goodJob()), status: 422, code: "invalid_config" },
  { name: "job body that is an array", method: "POST", path: () => "/v1/jobs", body: () => [goodJob()], status: 422, code: "invalid_config" },
  { name: "job body that is a string", method: "POST", path: () => "/v1/jobs", body: () => "train please", status: 422, code: "invalid_config" },
  { name: "job without dataset_id", method: "POST", path: () => "/v1/jobs", body: job((j) => delete j.dataset_id), status: 422, code: "invalid_config", param: "dataset_id" },
  { name: "job with a number for dataset_id", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.dataset_id = 42)), status: 422, param: "dataset_id" },
  { name: "job with negative epochs", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.epochs = -1)), status: 422, param: "epochs" },
  { name: "job with a huge number of epochs", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.epochs = 1e12)), status: 422, param: "epochs" },
  { name: "job with fractional epochs", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.epochs = 2.5)), status: 422, param: "epochs" },
  { name: "job with batch_size 0", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.batch_size = 0)), status: 422, param: "batch_size" },
  { name: "job with an overflowing lr (1e400 parses as Infinity)", method: "POST", path: () => "/v1/jobs", headers: { "content-type": "application/json" }, body: () => JSON.stringify(goodJob()).replace(/}$/, ',"optimizer":{"type":"sgd","lr":1e400}}'), status: 422 },
  { name: "job with a word for lr", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.optimizer = { type: "adam", lr: "fast" })), status: 422, param: "optimizer.lr" },
  { name: "job with an unknown optimizer", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.optimizer = { type: "adagrad" })), status: 422, param: "optimizer.type" },
  { name: "job with an unknown loss", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.loss = "hinge")), status: 422, code: "invalid_config", param: "loss" },
  { name: "job with an unknown activation", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.model.layers[0].activation = "swish9")), status: 422, param: "model.layers.0.activation" },
  { name: "job with no layers", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.model.layers = [])), status: 422, param: "model.layers" },
  { name: "job with negative units", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.model.layers[0].units = -5)), status: 422, param: "model.layers.0.units" },
  { name: "job with a huge layer", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.model.layers[0].units = 2 ** 40)), status: 422, param: "model.layers.0.units" },
  { name: "job with a validation split of 1", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.validation = { split: 1 })), status: 422, param: "validation.split" },
  { name: "job with a huge priority", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.priority = 1e20)), status: 422, param: "priority" },
  { name: "job with an unknown field", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.epochz = 3)), status: 422, param: "epochz" },
  {
    name: "job nested 10,000 arrays deep",
    method: "POST",
    path: () => "/v1/jobs",
    headers: { "content-type": "application/json" },
    body: () => JSON.stringify(goodJob()).replace(/}$/, `,"deep":${"[".repeat(10_000)}${"]".repeat(10_000)}}`),
    status: 422,
  },
  { name: "job body over 1 MiB", method: "POST", path: () => "/v1/jobs", headers: { "content-type": "application/json" }, body: () => JSON.stringify({ ...goodJob(), pad: "x".repeat(1_100_000) }), status: 413, code: "payload_too_large" },
  { name: "job with a 300-character Idempotency-Key", method: "POST", path: () => "/v1/jobs", headers: { "idempotency-key": "k".repeat(300) }, body: () => goodJob(), status: 400, param: "idempotency-key" },
  { name: "job on a dataset that does not exist", method: "POST", path: () => "/v1/jobs", body: job((j) => (j.dataset_id = "8d0f3a4e-1111-4222-8333-944455556666")), status: 404, code: "dataset_not_found", param: "dataset_id" },
  // --- job reads and actions -------------------------------------------------------------------
  { name: "list jobs with an unknown status", method: "GET", path: () => "/v1/jobs?status=exploded", status: 400, param: "status" },
  { name: "list jobs with a negative limit", method: "GET", path: () => "/v1/jobs?limit=-3", status: 400, param: "limit" },
  { name: "read a job that does not exist", method: "GET", path: () => "/v1/jobs/8d0f3a4e-1111-4222-8333-944455556666", status: 404, code: "job_not_found", param: "id" },
  { name: "cancel a job by a malformed id", method: "POST", path: () => "/v1/jobs/'%3B%20DROP%20TABLE%20jobs/cancel", status: 404, code: "job_not_found" },
  { name: "metrics after a negative epoch", method: "GET", path: () => `/v1/jobs/${jobId}/metrics?after_epoch=-1`, status: 400, param: "after_epoch" },
  { name: "weights of an unknown checkpoint name", method: "GET", path: () => `/v1/jobs/${jobId}/weights?checkpoint=worst`, status: 400, param: "checkpoint" },
  { name: "weights of an epoch not stored", method: "GET", path: () => `/v1/jobs/${jobId}/weights?checkpoint=999999`, status: 404, code: "checkpoint_not_found" },
  // --- keys and headers ------------------------------------------------------------------------
  { name: "a bearer header without a token", method: "GET", path: () => "/v1/jobs", anonymous: true, headers: { authorization: "Bearer" }, status: 401, code: "unauthorized", param: "authorization" },
  { name: "a key with invalid UTF-8 bytes in it", method: "GET", path: () => "/v1/jobs", anonymous: true, headers: { authorization: "Bearer th_\u00ff\u00fe" }, status: 401, code: "unauthorized" },
  { name: "a tenant's key on the admin routes", method: "POST", path: () => "/v1/keys", body: () => ({ tenant: "x" }), status: 403, code: "forbidden" },
  { name: "create a key with a number for tenant", method: "POST", path: () => "/v1/keys", admin: true, body: () => ({ tenant: 7 }), status: 400, param: "tenant" },
  { name: "create a key without a body", method: "POST", path: () => "/v1/keys", admin: true, status: 400 },
  { name: "revoke a key by a malformed id", method: "DELETE", path: () => "/v1/keys/zzz", admin: true, status: 404, code: "key_not_found" },
  // The router decodes percent-escapes: these reach the /v1 routes and must need the same keys.
  { name: "a percent-escaped /v1 path without a key", method: "GET", path: () => "/%761/jobs", anonymous: true, status: 401, code: "unauthorized" },
  { name: "a percent-escaped keys path with a tenant's key", method: "POST", path: () => "/%761/%6Beys", body: () => ({ tenant: "x" }), status: 403, code: "forbidden" },
  { name: "a percent-escaped keys path without a key", method: "GET", path: () => "/v1/k%65ys", anonymous: true, status: 401, code: "unauthorized" },
  { name: "a route that does not exist", method: "GET", path: () => "/v1/nothing-here", status: 404, code: "not_found" },
  { name: "a method the route does not have", method: "PATCH", path: () => "/v1/jobs", body: () => ({}), status: 404, code: "not_found" },
];

async function send(c: Case): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = {};
  if (!c.anonymous) headers.authorization = `Bearer ${c.admin ? stack.adminKey : stack.key}`;
  let body: string | Uint8Array | undefined;
  const raw = c.body?.();
  if (typeof raw === "string" || raw instanceof Uint8Array) body = raw;
  else if (raw !== undefined) {
    body = JSON.stringify(raw);
    headers["content-type"] = "application/json";
  }
  Object.assign(headers, c.headers);
  const res = await fetch(`${stack.baseUrl}${c.path()}`, { method: c.method, headers, body: body as BodyInit | undefined });
  return { status: res.status, text: await res.text() };
}

describe("malformed requests", () => {
  it("has at least 40 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const res = await send(c);
    expect(res.status, res.text).toBe(c.status);
    const body = JSON.parse(res.text);
    expect(Object.keys(body)).toEqual(["error"]);
    expect(typeof body.error.code).toBe("string");
    expect(typeof body.error.message).toBe("string");
    expect(body.error.message.length).toBeGreaterThan(0);
    expect(body.error.param === null || typeof body.error.param === "string").toBe(true);
    if (c.code !== undefined) expect(body.error.code).toBe(c.code);
    if (c.param !== undefined) expect(body.error.param).toBe(c.param);
  });

  it("left the API process alive, healthy and serving", async () => {
    expect(stack.api.child.exitCode).toBeNull();
    expect(stack.api.child.signalCode).toBeNull();
    expect((await fetch(`${stack.baseUrl}/readyz`)).status).toBe(200);
    const list = await fetch(`${stack.baseUrl}/v1/jobs`, { headers: stack.auth });
    expect(list.status).toBe(200);
    expect(((await list.json()) as { data: { id: string }[] }).data.map((j) => j.id)).toContain(jobId);
    expect(stack.api.output()).not.toMatch(/"level":(50|60)/);
  });
});
