// The per-tenant cap on unfinished jobs (MAX_ACTIVE_JOBS_PER_TENANT): one job more is a 429 with a
// clear message, concurrent submissions cannot overshoot it, other tenants are not affected, and a
// finished (here: cancelled) job frees its place. No worker runs, so submitted jobs stay queued.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../src/services/keys.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { blobsCsv } from "../helpers/data.js";

let t: TestApp;
let dataset: string;
let otherKey: string;

beforeAll(async () => {
  t = await startTestApp("jobcap", { MAX_ACTIVE_JOBS_PER_TENANT: "3" });
  const res = await t.inject({ method: "POST", url: "/v1/datasets?target=colour", headers: { "content-type": "text/csv" }, payload: blobsCsv(60, 1).csv });
  expect(res.statusCode, res.body).toBe(201);
  dataset = res.json().id;
  otherKey = (await createApiKey(t.db, "tenant-b")).key;
});

afterAll(async () => {
  await t?.close();
});

const config = () => ({ dataset_id: dataset, model: { layers: [{ type: "dense", units: 3 }] }, loss: "cross_entropy", epochs: 1 });
const submit = (headers: Record<string, string> = {}) => t.inject({ method: "POST", url: "/v1/jobs", payload: config(), headers });

describe("the per-tenant job cap", () => {
  it("lets exactly the cap through when submissions race, and answers the rest 429", async () => {
    const answers = await Promise.all(Array.from({ length: 8 }, () => submit()));
    const codes = answers.map((a) => a.statusCode).sort();
    expect(codes).toEqual([201, 201, 201, 429, 429, 429, 429, 429]);
    const refused = answers.find((a) => a.statusCode === 429)!.json();
    expect(refused.error.code).toBe("too_many_jobs");
    expect(refused.error.message).toMatch(/3 queued or running jobs/);
    const listed = (await t.inject({ method: "GET", url: "/v1/jobs?limit=100" })).json().data;
    expect(listed).toHaveLength(3);
  });

  it("does not count against another tenant", async () => {
    const upload = await t.inject({
      method: "POST",
      url: "/v1/datasets?target=colour",
      headers: { "content-type": "text/csv", authorization: `Bearer ${otherKey}` },
      payload: blobsCsv(60, 2).csv,
    });
    const res = await t.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: { authorization: `Bearer ${otherKey}` },
      payload: { ...config(), dataset_id: upload.json().id },
    });
    expect(res.statusCode, res.body).toBe(201);
  });

  it("a replayed Idempotency-Key is answered even at the cap; a job that ends frees a place", async () => {
    const listed = (await t.inject({ method: "GET", url: "/v1/jobs?limit=100" })).json().data;
    expect((await submit()).statusCode).toBe(429);
    const cancelled = await t.inject({ method: "POST", url: `/v1/jobs/${listed[0].id}/cancel` });
    expect(cancelled.json().status).toBe("cancelled");
    const keyed = await submit({ "idempotency-key": "cap-1" });
    expect(keyed.statusCode, keyed.body).toBe(201);
    expect((await submit()).statusCode).toBe(429);
    const replay = await submit({ "idempotency-key": "cap-1" });
    expect(replay.statusCode).toBe(200);
    expect(replay.json().id).toBe(keyed.json().id);
  });
});
