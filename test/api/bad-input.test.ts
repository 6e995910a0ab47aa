// Bad input is answered with a 4xx and `{ error: { code, message, param } }`, never a crash.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.js";

let t: TestApp;
let datasetId: string;

beforeAll(async () => {
  t = await startTestApp("badinput");
  const res = await t.inject({
    method: "POST",
    url: "/v1/datasets?name=tiny&target=label",
    headers: { "content-type": "text/csv" },
    payload: "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n",
  });
  expect(res.statusCode, res.body).toBe(201);
  datasetId = res.json().id;
});

afterAll(async () => {
  await t?.close();
});

function expectError(res: { statusCode: number; json(): any }, status: number, code: string, param: string | null) {
  expect(res.statusCode).toBe(status);
  const body = res.json();
  expect(body.error.code).toBe(code);
  expect(body.error.param).toBe(param);
  expect(typeof body.error.message).toBe("string");
  return body.error.message as string;
}

const upload = (payload: string, query = "", type = "text/csv") =>
  t.inject({ method: "POST", url: `/v1/datasets${query}`, headers: { "content-type": type }, payload });

const goodJob = () => ({
  dataset_id: datasetId,
  model: { layers: [{ type: "dense", units: 4, activation: "relu" }, { type: "dense", units: 2 }] },
  loss: "cross_entropy",
});

describe("dataset uploads", () => {
  it("a request without a file is a 400 missing_file", async () => {
    expectError(await t.inject({ method: "POST", url: "/v1/datasets?format=csv" }), 400, "missing_file", "file");
    expectError(await upload(""), 400, "missing_file", "file");
  });

  it("a ragged row is a 400 that names its line, and leaves no dataset behind", async () => {
    const before = (await t.inject({ method: "GET", url: "/v1/datasets?limit=100" })).json().data.length;
    const msg = expectError(await upload("a,b,y\n1,2,3\n4,5,6\n7,8\n"), 400, "csv_ragged_row", "file");
    expect(msg).toContain("line 4");
    const after = (await t.inject({ method: "GET", url: "/v1/datasets?limit=100" })).json().data.length;
    expect(after).toBe(before);
  });

  it("a non-numeric feature is a 400 that names the line and column", async () => {
    const msg = expectError(await upload("a,b,y\n1,2,3\n4,abc,6\n"), 400, "non_numeric_value", "file");
    expect(msg).toContain("line 3");
    expect(msg).toContain('"b"');
  });

  it("an unknown target column is a 400 naming `target`", async () => {
    expectError(await upload("a,b,y\n1,2,3\n", "?target=z"), 400, "unknown_column", "target");
  });

  it("a body of an unaccepted content type is a 415", async () => {
    expectError(await upload("<x/>", "", "application/xml"), 415, "unsupported_media_type", "content-type");
  });

  it("a bad input_shape query parameter is a 400 naming it", async () => {
    expectError(await upload("a,b,y\n1,2,3\n", "?input_shape=abc"), 400, "invalid_request", "input_shape");
  });

  it("accepts JSON Lines and multipart uploads", async () => {
    const jsonl = await upload('{"x":[1,2],"y":0.5}\n{"x":[3,4],"y":1.5}\n', "", "application/x-ndjson");
    expect(jsonl.statusCode, jsonl.body).toBe(201);
    expect(jsonl.json()).toMatchObject({ rows: 2, input_width: 2, task: "regression", format: "jsonl" });

    const boundary = "----trainhub";
    const body =
      `--${boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\nlabel\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="pts.csv"\r\nContent-Type: text/csv\r\n\r\n` +
      `p,q,label\n1,2,a\n3,4,b\n\r\n--${boundary}--\r\n`;
    const multi = await t.inject({
      method: "POST",
      url: "/v1/datasets",
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      payload: body,
    });
    expect(multi.statusCode, multi.body).toBe(201);
    expect(multi.json()).toMatchObject({ name: "pts.csv", rows: 2, task: "classification", classes: ["a", "b"] });
  });

  it("an unknown dataset id is a 404", async () => {
    expectError(await t.inject({ method: "GET", url: "/v1/datasets/8d0f3a4e-1111-4222-8333-944455556666" }), 404, "dataset_not_found", "id");
    expectError(await t.inject({ method: "GET", url: "/v1/datasets/not-a-uuid" }), 404, "dataset_not_found", "id");
  });
});

describe("job configs", () => {
  const post = (payload: unknown) => t.inject({ method: "POST", url: "/v1/jobs", payload: payload as object });

  it("accepts a good config and fills in the defaults and a seed", async () => {
    const res = await post(goodJob());
    expect(res.statusCode, res.body).toBe(201);
    const job = res.json();
    expect(job.status).toBe("queued");
    expect(job.config).toMatchObject({ epochs: 10, batch_size: 32, shuffle: true, validation: { split: 0.2 } });
    expect(Number.isInteger(job.config.seed)).toBe(true);
    const read = await t.inject({ method: "GET", url: `/v1/jobs/${job.id}` });
    expect(read.json().id).toBe(job.id);
  });

  it("a config naming an unknown layer is a 422 naming the field", async () => {
    const cfg = goodJob();
    (cfg.model.layers[0] as any).type = "transformer";
    expectError(await post(cfg), 422, "invalid_config", "model.layers.0.type");
  });

  it("a config naming an unknown loss is a 422 naming `loss`", async () => {
    expectError(await post({ ...goodJob(), loss: "hinge" }), 422, "invalid_config", "loss");
  });

  it("an unknown field is a 422 naming it", async () => {
    expectError(await post({ ...goodJob(), epochz: 3 }), 422, "invalid_config", "epochz");
  });

  it("an input width that does not match the dataset is a 422 naming model.input_shape", async () => {
    const cfg = { ...goodJob(), model: { ...goodJob().model, input_shape: [5] } };
    const msg = expectError(await post(cfg), 422, "dataset_mismatch", "model.input_shape");
    expect(msg).toContain("5");
    expect(msg).toContain("2");
  });

  it("an output layer that does not match the classes is a 422 naming its units", async () => {
    const cfg = goodJob();
    cfg.model.layers[1].units = 7;
    expectError(await post(cfg), 422, "dataset_mismatch", "model.layers.1.units");
  });

  it("a regression loss on a classification dataset is a 422 naming `loss`", async () => {
    expectError(await post({ ...goodJob(), loss: "mse" }), 422, "dataset_mismatch", "loss");
  });

  it("an unknown dataset is a 404 naming dataset_id", async () => {
    expectError(await post({ ...goodJob(), dataset_id: "8d0f3a4e-1111-4222-8333-944455556666" }), 404, "dataset_not_found", "dataset_id");
  });

  it("a body that is not JSON is a 400", async () => {
    const res = await t.inject({ method: "POST", url: "/v1/jobs", headers: { "content-type": "application/json" }, payload: "{nope" });
    expectError(res, 400, "invalid_request", "body");
  });

  it("an unknown job id is a 404", async () => {
    expectError(await t.inject({ method: "GET", url: "/v1/jobs/8d0f3a4e-1111-4222-8333-944455556666/metrics" }), 404, "job_not_found", "id");
  });
});

describe("after all that", () => {
  it("the service is still healthy and ready", async () => {
    expect((await t.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    const ready = await t.inject({ method: "GET", url: "/readyz" });
    expect(ready.json()).toEqual({ status: "ready", postgres: true, redis: true });
  });

  it("serves a valid OpenAPI document listing the routes", async () => {
    const doc = (await t.inject({ method: "GET", url: "/openapi.json" })).json();
    expect(doc.openapi).toMatch(/^3\./);
    for (const p of ["/v1/datasets", "/v1/datasets/{id}", "/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/metrics", "/v1/jobs/{id}/weights", "/healthz", "/readyz"]) {
      expect(Object.keys(doc.paths)).toContain(p);
    }
    expect((await t.inject({ method: "GET", url: "/docs" })).statusCode).toBeLessThan(400);
  });
});

describe("upload limit", () => {
  it("an upload over the limit is a 413", async () => {
    const small = await startTestApp("limit", { UPLOAD_LIMIT_BYTES: "64" });
    try {
      const big = "a,b,y\n" + "1,2,3\n".repeat(50);
      const res = await small.inject({ method: "POST", url: "/v1/datasets", headers: { "content-type": "text/csv" }, payload: big });
      expectError(res, 413, "payload_too_large", "file");
      const list = await small.inject({ method: "GET", url: "/v1/datasets" });
      expect(list.json().data).toHaveLength(0);
    } finally {
      await small.close();
    }
  });
});

describe("the job config in the OpenAPI document", () => {
  it("describes every field, and gives each optional one a default (or says what happens without it)", async () => {
    const doc = (await t.inject({ method: "GET", url: "/openapi.json" })).json();
    const body = doc.paths["/v1/jobs"].post.requestBody.content["application/json"].schema;
    const problems: string[] = [];
    let fields = 0;
    const walk = (schema: any, path: string) => {
      if (!schema || typeof schema !== "object") return;
      for (const key of ["anyOf", "oneOf", "allOf"]) for (const branch of schema[key] ?? []) walk(branch, path);
      if (schema.items) walk(schema.items, `${path}[]`);
      for (const [name, prop] of Object.entries<any>(schema.properties ?? {})) {
        const at = `${path}.${name}`;
        walk(prop, at);
        if (name === "type") continue; // discriminators are described by their object
        fields++;
        const description = prop.description ?? (prop.anyOf ?? []).map((b: any) => b.description).find(Boolean);
        const required = (schema.required ?? []).includes(name);
        if (!description) problems.push(`${at}: no description`);
        else if (!required && prop.default === undefined && !/default|off unless/i.test(description)) problems.push(`${at}: optional, no default`);
      }
    };
    walk(body, "");
    expect(problems).toEqual([]);
    expect(fields).toBeGreaterThan(60);
  });
});
