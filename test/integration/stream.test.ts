// The live metrics stream (GET /v1/jobs/:id/metrics/stream) and the metrics pages, against the real
// API process, a worker, PostgreSQL and Redis. An SSE client (test/helpers/sse.ts) follows jobs,
// disconnects midway and resumes with Last-Event-ID (or ?last_event_id=): every epoch arrives
// once, in order, then `end`.
//
// The stack starts without a worker, so the first tests control exactly what is in the database
// while a client is connected; the worker starts once a client is waiting for a queued job.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client } from "../helpers/client.js";
import { regressionCsv } from "../helpers/data.js";
import { openSse, type SseMessage, type SseStream } from "../helpers/sse.js";
import { createKey, startProcess, startStack, waitFor, type Stack } from "../helpers/stack.js";
import { createDb, type Db } from "../../src/db/client.js";
import * as jobs from "../../src/db/jobs.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let db: Db;
let dataset: string;
let otherAuth: { authorization: string };
/** A job that ran to the end under a connected client (test "live"). */
let finished: { id: string; epochs: number };

const RETRY_MS = 1234;

beforeAll(async () => {
  stack = await startStack("stream", {
    workers: 0,
    env: { STREAM_POLL_MS: "100", STREAM_KEEPALIVE_MS: "300", STREAM_RETRY_MS: String(RETRY_MS) },
  });
  c = client(stack);
  db = createDb(stack.db.url);
  dataset = (await c.uploadCsv(regressionCsv(3000, 21), "name=stream&target=y")).id;
  otherAuth = { authorization: `Bearer ${await createKey(stack.baseUrl, stack.adminKey, "tenant-b")}` };
}, 120_000);

afterAll(async () => {
  await db?.$disconnect();
  await stack?.close();
});

function config(epochs: number, extra: Record<string, unknown> = {}) {
  return {
    dataset_id: dataset,
    validation: { split: 0.2 },
    model: { layers: [{ type: "dense", units: 32, activation: "tanh" }, { type: "dense", units: 1 }] },
    loss: "mse",
    optimizer: { type: "sgd", lr: 0.01, momentum: 0.9 },
    epochs,
    batch_size: 8,
    seed: 7,
    ...extra,
  };
}

function streamUrl(jobId: string, query = "") {
  return `${stack.baseUrl}/v1/jobs/${jobId}/metrics/stream${query}`;
}

function json(e: SseMessage) {
  return JSON.parse(e.data);
}

/** Reads events until `end` (included) and then the end of the response; fails on anything else. */
async function readToEnd(s: SseStream): Promise<SseMessage[]> {
  const events: SseMessage[] = [];
  for (;;) {
    const e = await s.nextEvent();
    if (e === null) throw new Error(`the stream ended without \`end\` after ${JSON.stringify(events.map((x) => x.event + ":" + (x.id ?? "")))}`);
    events.push(e);
    if (e.event === "end") break;
  }
  expect(await s.next(), "the server closes the response after `end`").toBeNull();
  return events;
}

/** Reads events until `count` epoch events have come (or the stream ends). */
async function readEpochs(s: SseStream, count: number): Promise<SseMessage[]> {
  const events: SseMessage[] = [];
  let epochs = 0;
  while (epochs < count) {
    const e = await s.nextEvent();
    if (e === null) break;
    events.push(e);
    if (e.event === "epoch") epochs++;
  }
  return events;
}

const epochsOf = (events: SseMessage[]) => events.filter((e) => e.event === "epoch").map((e) => Number(e.id));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function metricWrite(epoch: number): jobs.EpochMetricWrite {
  return { epoch, trainLoss: 1 / epoch, valLoss: 2 / epoch, lr: 0.01, metrics: { mae: 0.5 }, durationMs: 3, samplesPerSec: 1000 };
}

describe("GET /v1/jobs/:id/metrics/stream", () => {
  it("sends epochs written several to a transaction once each, resumes after Last-Event-ID inside such a batch, and ends", async () => {
    // No worker runs yet: this test writes the epochs itself, as a worker does (recordEpochs).
    const job = await c.submit(config(10));
    const s1 = await openSse(streamUrl(job.id), { ...stack.auth, "x-request-id": "stream-test-1" });
    expect(s1.status).toBe(200);
    expect(s1.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(s1.headers.get("cache-control")).toContain("no-cache");
    expect(s1.headers.get("x-request-id")).toBe("stream-test-1");
    const first = await s1.nextEvent();
    expect(first?.event).toBe("status");
    expect(json(first!)).toMatchObject({ id: job.id, status: "queued", epoch: 0 });
    expect(s1.retry()).toBe(RETRY_MS);

    // Nothing is stored: only keep-alive comments come until something is.
    const ping = await s1.next();
    expect(ping).toEqual({ kind: "comment", text: "ping" });

    await jobs.recordEpochs(db, job.id, { metrics: [1, 2, 3].map(metricWrite), last: null, best: null, events: [] });
    const a = await readEpochs(s1, 3);
    expect(epochsOf(a)).toEqual([1, 2, 3]);
    expect(json(a[a.length - 1])).toEqual({ epoch: 3, train_loss: 1 / 3, val_loss: 2 / 3, lr: 0.01, metrics: { mae: 0.5 }, duration_ms: 3, samples_per_sec: 1000 });

    await jobs.recordEpochs(db, job.id, { metrics: [4, 5, 6, 7, 8].map(metricWrite), last: null, best: null, events: [] });
    const b = await readEpochs(s1, 2);
    expect(epochsOf(b)).toEqual([4, 5]);
    s1.close(); // midway through the second transaction's epochs

    const s2 = await openSse(streamUrl(job.id), { ...stack.auth, "last-event-id": "5" });
    expect(json((await s2.nextEvent())!)).toMatchObject({ status: "queued" });
    expect(epochsOf(await readEpochs(s2, 3))).toEqual([6, 7, 8]);

    await jobs.finishJob(db, job.id, { status: "cancelled" }, [], ["queued"]);
    const rest = await readToEnd(s2);
    expect(rest.map((e) => e.event)).toEqual(["status", "end"]);
    expect(json(rest[0])).toMatchObject({ status: "cancelled" });
    expect(json(rest[1])).toMatchObject({ id: job.id, status: "cancelled", epoch: 8 });
  });

  it("follows a job from queued to succeeded: every epoch once, in order, with its status changes", async () => {
    const job = await c.submit(config(40));
    const s = await openSse(streamUrl(job.id), stack.auth);
    const first = await s.nextEvent();
    expect(json(first!)).toMatchObject({ status: "queued" });

    stack.startWorker(); // the client is connected before the job can start
    const events = await readToEnd(s);
    expect(epochsOf(events)).toEqual(range(1, 40));
    for (const e of events.filter((e) => e.event === "epoch")) expect(e.lastEventId).toBe(e.id);

    // Statuses only move forward: queued, running (each time best_epoch changes, too), succeeded.
    const statuses = events.filter((e) => e.event === "status").map((e) => json(e).status as string);
    const order = ["queued", "running", "succeeded"];
    expect(statuses).toContain("running");
    expect(statuses.map((st) => order.indexOf(st))).toEqual([...statuses.map((st) => order.indexOf(st))].sort((x, y) => x - y));
    expect(statuses[statuses.length - 1]).toBe("succeeded");
    // A status event also marks each change of best epoch, after that epoch was sent.
    for (const [i, e] of events.entries()) {
      if (e.event !== "status" || json(e).best_epoch === null) continue;
      const sentBefore = epochsOf(events.slice(0, i));
      expect(sentBefore).toContain(json(e).best_epoch);
    }
    const end = json(events[events.length - 1]);
    expect(end).toMatchObject({ id: job.id, status: "succeeded", epoch: 40, stop_reason: "max_epochs" });

    // The events carry exactly what the metrics page has.
    const page = await c.api("GET", `/v1/jobs/${job.id}/metrics`);
    expect(events.filter((e) => e.event === "epoch").map(json)).toEqual(page.body.data);
    finished = { id: job.id, epochs: 40 };
  });

  it("a client disconnected midway and reconnected with Last-Event-ID, then ?last_event_id=, gets exactly the missing epochs", async () => {
    const job = await c.submit(config(60));
    const got: number[] = [];

    const s1 = await openSse(streamUrl(job.id), stack.auth);
    got.push(...epochsOf(await readEpochs(s1, 5)));
    s1.close();
    expect(got).toEqual(range(1, 5));

    const s2 = await openSse(streamUrl(job.id), { ...stack.auth, "last-event-id": String(got[got.length - 1]) });
    expect((await s2.nextEvent())?.event).toBe("status");
    const second = epochsOf(await readEpochs(s2, 7));
    s2.close();
    got.push(...second);

    // A client that cannot set headers resumes with the query parameter.
    const s3 = await openSse(streamUrl(job.id, `?last_event_id=${got[got.length - 1]}`), stack.auth);
    const third = await readToEnd(s3);
    got.push(...epochsOf(third));

    expect(got).toEqual(range(1, 60));
    expect(json(third[third.length - 1])).toMatchObject({ status: "succeeded", epoch: 60 });
    // The header wins over the query parameter (EventSource keeps the URL and sends the header).
    const s4 = await openSse(streamUrl(job.id, "?last_event_id=3"), { ...stack.auth, "last-event-id": "58" });
    expect(epochsOf(await readToEnd(s4))).toEqual([59, 60]);
  });

  it("a client connecting after the job ended gets its status, every epoch and `end` at once; after the last epoch, only status and end", async () => {
    const s = await openSse(streamUrl(finished.id), stack.auth);
    const events = await readToEnd(s);
    expect(events[0].event).toBe("status");
    expect(json(events[0])).toMatchObject({ status: "succeeded" });
    expect(events.slice(1, -1).every((e) => e.event === "epoch")).toBe(true);
    expect(epochsOf(events)).toEqual(range(1, finished.epochs));
    expect(events[events.length - 1].event).toBe("end");

    const after = await openSse(streamUrl(finished.id), { ...stack.auth, "last-event-id": String(finished.epochs) });
    expect((await readToEnd(after)).map((e) => e.event)).toEqual(["status", "end"]);
  });

  it("another tenant's job is a 404, a missing key a 401, a malformed Last-Event-ID a 400", async () => {
    const other = await openSse(streamUrl(finished.id), otherAuth);
    expect(other.status).toBe(404);
    expect(JSON.parse(other.errorBody!).error).toMatchObject({ code: "job_not_found", param: "id" });
    const missing = await openSse(streamUrl("8d0f3a4e-1111-4222-8333-944455556666"), stack.auth);
    expect(missing.status).toBe(404);
    const anonymous = await openSse(streamUrl(finished.id));
    expect(anonymous.status).toBe(401);
    const bad = await openSse(streamUrl(finished.id), { ...stack.auth, "last-event-id": "abc" });
    expect(bad.status).toBe(400);
    const badQuery = await openSse(streamUrl(finished.id, "?last_event_id=-1"), stack.auth);
    expect(badQuery.status).toBe(400);
    for (const path of ["metrics", "events"]) {
      const res = await fetch(`${stack.baseUrl}/v1/jobs/${finished.id}/${path}`, { headers: otherAuth });
      expect(res.status, path).toBe(404);
    }
  });

  it("is in the OpenAPI document as text/event-stream, with Last-Event-ID and last_event_id", async () => {
    const doc = await (await fetch(`${stack.baseUrl}/openapi.json`)).json();
    const op = doc.paths["/v1/jobs/{id}/metrics/stream"].get;
    expect(Object.keys(op.responses["200"].content)).toEqual(["text/event-stream"]);
    expect(op.responses["404"]).toBeDefined();
    const params = op.parameters.map((p: any) => `${p.in}:${p.name}`);
    expect(params).toEqual(expect.arrayContaining(["path:id", "header:last-event-id", "query:last_event_id"]));
    const page = doc.paths["/v1/jobs/{id}/metrics"].get;
    expect(page.parameters.map((p: any) => p.name)).toEqual(expect.arrayContaining(["after_epoch", "limit", "every"]));
  });
});

describe("GET /v1/jobs/:id/metrics pages", () => {
  it("pages with after_epoch and limit, and keeps `data` as before", async () => {
    const all = await c.api("GET", `/v1/jobs/${finished.id}/metrics`);
    expect(all.body.data.map((m: any) => m.epoch)).toEqual(range(1, 40));
    expect(all.body).toMatchObject({ has_more: false, next_after_epoch: 40 });

    const pages: number[][] = [];
    let after = 0;
    for (;;) {
      const res = await c.api("GET", `/v1/jobs/${finished.id}/metrics?after_epoch=${after}&limit=15`);
      expect(res.status).toBe(200);
      pages.push(res.body.data.map((m: any) => m.epoch));
      after = res.body.next_after_epoch;
      if (!res.body.has_more) break;
    }
    expect(pages).toEqual([range(1, 15), range(16, 30), range(31, 40)]);
    const empty = await c.api("GET", `/v1/jobs/${finished.id}/metrics?after_epoch=40`);
    expect(empty.body).toEqual({ data: [], has_more: false, next_after_epoch: 40 });
    const exact = await c.api("GET", `/v1/jobs/${finished.id}/metrics?after_epoch=20&limit=20`);
    expect(exact.body.has_more).toBe(false);
    expect(exact.body.data).toHaveLength(20);
  });

  it("every=N keeps every N-th epoch plus the last and the best, also across pages", async () => {
    const job = await c.getJob(finished.id);
    expect(job.best_epoch).not.toBeNull();
    const expected = [...new Set([...range(1, 40).filter((e) => e % 7 === 0), 40, job.best_epoch])].sort((a, b) => a - b);
    const thinned = await c.api("GET", `/v1/jobs/${finished.id}/metrics?every=7`);
    expect(thinned.body.data.map((m: any) => m.epoch)).toEqual(expected);
    const full = (await c.api("GET", `/v1/jobs/${finished.id}/metrics`)).body.data;
    expect(thinned.body.data).toEqual(full.filter((m: any) => expected.includes(m.epoch)));

    const paged: number[] = [];
    let after = 0;
    for (let i = 0; i < 10; i++) {
      const res = await c.api("GET", `/v1/jobs/${finished.id}/metrics?every=7&limit=2&after_epoch=${after}`);
      paged.push(...res.body.data.map((m: any) => m.epoch));
      after = res.body.next_after_epoch;
      if (!res.body.has_more) break;
    }
    expect(paged).toEqual(expected);
  });

  it("refuses limits and intervals out of range", async () => {
    for (const q of ["limit=0", "limit=10001", "every=0", "after_epoch=-1", "limit=abc"]) {
      const res = await c.api("GET", `/v1/jobs/${finished.id}/metrics?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error.code, q).toBeDefined();
    }
  });
});

describe("API shutdown", () => {
  it("ends open streams without `end` so the API can exit; the client resumes on another process", async () => {
    if (stack.workers.length === 0) stack.startWorker(); // when this test runs alone
    const job = await c.submit(config(5000));
    const s = await openSse(streamUrl(job.id), stack.auth);
    const before = epochsOf(await readEpochs(s, 2));
    expect(before).toEqual([1, 2]);
    // SIGTERM: the API drains and exits 0 (stop() would SIGKILL it after 10 s, giving null).
    expect(await stack.api.stop()).toBe(0);
    const rest: SseMessage[] = [];
    for (let e = await s.nextEvent(); e !== null; e = await s.nextEvent()) rest.push(e);
    expect(rest.map((e) => e.event)).not.toContain("end");
    const got = [...before, ...epochsOf(rest)];
    expect(got).toEqual(range(1, got.length));

    // Another API process (same port, database and queue) picks up where the stream stopped.
    const api2 = startProcess("src/api/server.ts", stack.env);
    try {
      await waitFor(async () => (await fetch(`${stack.baseUrl}/readyz`).catch(() => null))?.status === 200, 90_000, () => api2.output());
      const again = await openSse(streamUrl(job.id), { ...stack.auth, "last-event-id": String(got[got.length - 1]) });
      const more = epochsOf(await readEpochs(again, 3));
      again.close();
      expect(more).toEqual(range(got.length + 1, got.length + 3));
      expect((await c.api("POST", `/v1/jobs/${job.id}/cancel`)).status).toBeLessThan(300);
    } finally {
      await api2.stop();
    }
  }, 180_000);
});
