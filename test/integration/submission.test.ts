// Submitting work, against real processes: priorities order the queue, an Idempotency-Key makes a
// retried submission safe, an upload cut off midway never shows up as ready (and is swept away when
// the API process receiving it died), and SIGTERM to an API lets the requests in flight finish.
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client } from "../helpers/client.js";
import { regressionCsv } from "../helpers/data.js";
import { freePort, startProcess, startStack, waitFor, type Proc, type Stack } from "../helpers/stack.js";
import { createDb, type Db } from "../../src/db/client.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let db: Db;
let small: string;
const extraApis: Proc[] = [];

beforeAll(async () => {
  // No worker at first, so that submitted jobs wait in the queue.
  stack = await startStack("submit", { workers: 0, env: { UPLOAD_STALE_MS: "2000", RECONCILE_INTERVAL_MS: "500" } });
  c = client(stack);
  db = createDb(stack.db.url);
  small = (await c.uploadCsv(regressionCsv(200, 5), "name=small&target=y")).id;
}, 120_000);

afterAll(async () => {
  await Promise.all(extraApis.map((p) => p.stop("SIGKILL")));
  await db?.$disconnect();
  await stack?.close();
});

const job = (extra: Record<string, unknown> = {}) => ({
  dataset_id: small,
  model: { layers: [{ type: "dense", units: 1 }] },
  loss: "mse",
  epochs: 2,
  seed: 1,
  ...extra,
});

/** Another API process on the same database and queue. */
async function startApi(): Promise<{ proc: Proc; baseUrl: string }> {
  const port = await freePort();
  const proc = startProcess("src/api/server.ts", { ...stack.env, PORT: String(port) });
  extraApis.push(proc);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${baseUrl}/healthz`).catch(() => null))?.status === 200, 30_000, () => proc.output());
  return { proc, baseUrl };
}

/**
 * Streams a CSV upload of `rows` rows, `piece` rows at a time, `pauseMs` apart, with no
 * content-length. `done` resolves with the response, or null if the connection broke first.
 */
function streamUpload(baseUrl: string, rows: number, piece: number, pauseMs: number, onPiece?: (i: number) => void) {
  let abort = () => {};
  const done = new Promise<{ status: number; body: any } | null>((resolve) => {
    const req = request(`${baseUrl}/v1/datasets?name=streamed&target=y`, { method: "POST", headers: { ...stack.auth, "content-type": "text/csv" } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : null }));
      res.on("error", () => resolve(null));
    });
    req.on("error", () => resolve(null));
    req.on("close", () => setTimeout(() => resolve(null), 100));
    abort = () => req.destroy();
    const lines = regressionCsv(rows, 9).trimEnd().split("\n");
    req.write(lines[0] + "\n");
    let at = 1;
    let i = 0;
    const next = () => {
      if (req.destroyed) return;
      if (at >= lines.length) return void req.end();
      req.write(lines.slice(at, at + piece).join("\n") + "\n");
      at += piece;
      onPiece?.(i++);
      setTimeout(next, pauseMs);
    };
    next();
  });
  return { done, abort: () => abort() };
}

describe("priority", () => {
  it("runs queued jobs highest priority first, equal priorities in submission order", async () => {
    const submitted: { id: string; priority: number }[] = [];
    for (const priority of [0, 5, -3, 5, 0, 1000, -1000]) {
      const j = await c.submit(job({ priority }));
      expect(j.priority).toBe(priority);
      expect(j.config.priority).toBe(priority);
      submitted.push({ id: j.id, priority });
    }
    stack.startWorker();
    const done = await Promise.all(submitted.map((s) => c.waitForJob(s.id, 60_000)));
    const order = done
      .map((d, i) => ({ ...submitted[i], started: Date.parse(d.started_at) }))
      .sort((a, b) => a.started - b.started)
      .map((s) => `${s.priority}:${submitted.indexOf(submitted.find((x) => x.id === s.id)!)}`);
    expect(order).toEqual(["1000:5", "5:1", "5:3", "0:0", "0:4", "-3:2", "-1000:6"]);
  });

  it("rejects a priority outside -1000..1000", async () => {
    const res = await c.api("POST", "/v1/jobs", job({ priority: 1001 }));
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: "invalid_config", param: "priority" });
  });
});

describe("Idempotency-Key", () => {
  it("returns the same job for the same key and body", async () => {
    const key = `key-${Date.now()}`;
    const first = await c.api("POST", "/v1/jobs", job(), { "idempotency-key": key });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    // The same body, spelled differently: key order and an explicit default do not matter.
    const { epochs, ...rest } = job();
    const second = await c.api("POST", "/v1/jobs", { epochs, ...rest, shuffle: true }, { "idempotency-key": key });
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(second.body.id).toBe(first.body.id);
    expect(await db.job.count({ where: { idempotencyKey: key } })).toBe(1);
  });

  it("creates one job when the same request races itself", async () => {
    const key = `race-${Date.now()}`;
    const answers = await Promise.all(Array.from({ length: 8 }, () => c.api("POST", "/v1/jobs", job({ seed: 77 }), { "idempotency-key": key })));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect(await db.job.count({ where: { idempotencyKey: key } })).toBe(1);
  });

  it("is a 422 when the key is reused with a different body", async () => {
    const key = `reuse-${Date.now()}`;
    const first = await c.api("POST", "/v1/jobs", job(), { "idempotency-key": key });
    expect(first.status).toBe(201);
    const other = await c.api("POST", "/v1/jobs", job({ epochs: 3 }), { "idempotency-key": key });
    expect(other.status).toBe(422);
    expect(other.body.error).toMatchObject({ code: "idempotency_key_reused", param: "Idempotency-Key" });
    expect(other.body.error.message).toContain(first.body.id);
    expect(await db.job.count({ where: { idempotencyKey: key } })).toBe(1);
  });

  it("without a key, two identical submissions are two jobs", async () => {
    const a = await c.submit(job());
    const b = await c.submit(job());
    expect(a.id).not.toBe(b.id);
  });
});

describe("uploads cut off midway", () => {
  it("a client that goes away mid-upload leaves no dataset behind", async () => {
    const before = (await c.api("GET", "/v1/datasets?limit=100")).body.data.length;
    const upload = streamUpload(stack.baseUrl, 20_000, 2000, 50);
    // Once the API has stored a chunk (the dataset is `uploading`), the client disappears.
    await waitFor(async () => (await db.datasetChunk.count({ where: { dataset: { name: "streamed" } } })) > 0, 10_000);
    expect((await db.dataset.findMany({ where: { name: "streamed" } })).map((r) => r.status)).toEqual(["uploading"]);
    upload.abort();
    expect(await upload.done).toBeNull();
    await waitFor(async () => (await db.dataset.count({ where: { name: "streamed" } })) === 0, 10_000);
    expect((await c.api("GET", "/v1/datasets?limit=100")).body.data.length).toBe(before);
  });

  it("an API process that dies mid-upload leaves an `uploading` dataset, unusable, which a worker sweeps away", async () => {
    const { proc, baseUrl } = await startApi();
    const upload = streamUpload(baseUrl, 20_000, 2000, 50);
    await waitFor(async () => (await db.datasetChunk.count({ where: { dataset: { name: "streamed" } } })) > 0, 10_000);
    proc.child.kill("SIGKILL");
    expect(await upload.done).toBeNull();

    const [row] = await db.dataset.findMany({ where: { name: "streamed" } });
    expect(row.status).toBe("uploading");
    const listed = (await c.api("GET", "/v1/datasets?limit=100")).body.data.find((d: any) => d.id === row.id);
    expect(listed?.status ?? "gone").toMatch(/^(uploading|gone)$/);
    const refused = await c.api("POST", "/v1/jobs", job({ dataset_id: row.id }));
    expect([404, 409]).toContain(refused.status);

    // UPLOAD_STALE_MS is 2 s here; the worker sweeps every 0.5 s.
    await waitFor(async () => (await c.api("GET", `/v1/datasets/${row.id}`)).status === 404, 15_000, () => stack.worker.output());
    expect(await db.datasetChunk.count({ where: { datasetId: row.id } })).toBe(0);
  });
});

describe("SIGTERM to an API process", () => {
  it("stops accepting connections, lets the upload in flight finish, then exits", async () => {
    const { proc, baseUrl } = await startApi();
    let signalled!: () => void;
    const sent = new Promise<void>((r) => (signalled = r));
    // About 1.5 s of upload; SIGTERM arrives a third of the way in.
    const upload = streamUpload(baseUrl, 3000, 100, 50, (i) => void (i === 10 && signalled()));
    await sent;
    const exited = proc.stop("SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    expect(await fetch(`${baseUrl}/healthz`).then((r) => r.status).catch(() => "refused")).toBe("refused");
    const res = await upload.done;
    expect(res?.status, JSON.stringify(res)).toBe(201);
    expect(res!.body).toMatchObject({ status: "ready", rows: 3000 });
    expect(await exited).toBe(0);
  });
});
