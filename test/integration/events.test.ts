// A job's event log (GET /v1/jobs/:id/events) against the real API and worker processes: which
// events a normal, an early-stopped, an overfitting, a cancelled and a diverged job leave, one
// `epoch_finished` per epoch, and the cursor pagination and level filter.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client } from "../helpers/client.js";
import { regressionCsv } from "../helpers/data.js";
import { seededRandom } from "../helpers/random.js";
import { startStack, waitFor, type Stack } from "../helpers/stack.js";

let stack: Stack;
let c: ReturnType<typeof client>;
let regression: string;
let noise: string;

beforeAll(async () => {
  stack = await startStack("events");
  c = client(stack);
  regression = (await c.uploadCsv(regressionCsv(1000, 4), "name=events&target=y")).id;
  // Targets that are pure noise: nothing to learn, so a large model only memorises the training rows.
  const rand = seededRandom(8);
  const lines = ["a,b,y"];
  for (let i = 0; i < 150; i++) lines.push(`${rand().toFixed(4)},${rand().toFixed(4)},${rand().toFixed(4)}`);
  noise = (await c.uploadCsv(lines.join("\n"), "name=noise")).id;
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

function config(datasetId: string, extra: Record<string, unknown> = {}) {
  return {
    dataset_id: datasetId,
    validation: { split: 0.2 },
    model: { layers: [{ type: "dense", units: 16, activation: "tanh" }, { type: "dense", units: 1 }] },
    loss: "mse",
    optimizer: { type: "sgd", lr: 0.02, momentum: 0.9 },
    epochs: 20,
    batch_size: 32,
    seed: 3,
    ...extra,
  };
}

/** Every event of a job, read a page of `limit` at a time through the cursor. */
async function allEvents(jobId: string, limit = 1000, query = ""): Promise<any[]> {
  const out: any[] = [];
  let after: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const res = await c.api("GET", `/v1/jobs/${jobId}/events?limit=${limit}${after ? `&after=${after}` : ""}${query}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    out.push(...res.body.data);
    expect(res.body.data.length).toBeLessThanOrEqual(limit);
    if (!res.body.has_more) return out;
    expect(res.body.data).toHaveLength(limit);
    after = res.body.last_id;
  }
  throw new Error("too many pages");
}

const types = (events: any[]) => events.map((e) => e.type);

function expectEpochFinishedOncePerEpoch(events: any[], epochs: number) {
  const finished = events.filter((e) => e.type === "epoch_finished");
  expect(finished.map((e) => e.epoch)).toEqual(Array.from({ length: epochs }, (_, i) => i + 1));
  for (const e of finished) {
    expect(e.level).toBe("info");
    expect(e.message).toContain(`Epoch ${e.epoch} finished`);
    expect(typeof e.data.train_loss).toBe("number");
  }
}

describe("GET /v1/jobs/:id/events", () => {
  let normal: any;

  it("a normal job: started, epoch_finished for each epoch, new_best, succeeded, oldest first; pages join up to the whole list", async () => {
    normal = await c.waitForJob((await c.submit(config(regression))).id);
    expect(normal.status).toBe("succeeded");
    const events = await allEvents(normal.id);
    expect(events[0]).toMatchObject({ type: "started", level: "info", epoch: null });
    expect(events[events.length - 1]).toMatchObject({ type: "succeeded", level: "info", epoch: 20 });
    expectEpochFinishedOncePerEpoch(events, 20);
    const bests = events.filter((e) => e.type === "new_best");
    expect(bests.length).toBeGreaterThanOrEqual(1);
    expect(bests[bests.length - 1].epoch).toBe(normal.best_epoch);
    // Each epoch's events come after its epoch_finished.
    for (const b of bests) {
      expect(events.findIndex((e) => e.type === "epoch_finished" && e.epoch === b.epoch)).toBeLessThan(events.indexOf(b));
    }
    for (const e of events) {
      expect(Object.keys(e).sort()).toEqual(["created_at", "data", "epoch", "id", "level", "message", "type"]);
      expect(typeof e.id).toBe("string");
      expect(Number.isNaN(Date.parse(e.created_at))).toBe(false);
    }
    const ids = events.map((e) => BigInt(e.id));
    for (let i = 1; i < ids.length; i++) expect(ids[i] > ids[i - 1]).toBe(true);

    // Small pages, joined, are the same list.
    expect(await allEvents(normal.id, 7)).toEqual(events);
    const last = await c.api("GET", `/v1/jobs/${normal.id}/events?after=${events[events.length - 1].id}`);
    expect(last.body).toEqual({ data: [], has_more: false, last_id: null });
    const middle = await c.api("GET", `/v1/jobs/${normal.id}/events?after=${events[4].id}&limit=3`);
    expect(middle.body).toEqual({ data: events.slice(5, 8), has_more: true, last_id: events[7].id });
  });

  it("early stopping and suspected overfitting are in the log", async () => {
    const stopped = await c.waitForJob(
      (await c.submit(config(noise, { epochs: 300, early_stopping: { monitor: "val_loss", patience: 4 } }))).id,
    );
    expect(stopped.stop_reason).toBe("early_stopping");
    const stopEvents = await allEvents(stopped.id);
    const early = stopEvents.filter((e) => e.type === "early_stopping");
    expect(early).toHaveLength(1);
    expect(early[0]).toMatchObject({ level: "info", epoch: stopped.epoch });
    expectEpochFinishedOncePerEpoch(stopEvents, stopped.epoch);

    // A wide network on 120 rows of noise: training loss keeps falling while validation loss rises.
    const overfit = await c.waitForJob(
      (
        await c.submit(
          config(noise, {
            // Full-batch gradient descent without momentum: a training loss that falls at every epoch.
            model: { layers: [{ type: "dense", units: 128, activation: "tanh" }, { type: "dense", units: 1 }] },
            optimizer: { type: "sgd", lr: 0.1, momentum: 0 },
            epochs: 400,
            batch_size: 1000,
            shuffle: false,
          }),
        )
      ).id,
    );
    expect(overfit.status).toBe("succeeded");
    const warnings = (await c.api("GET", `/v1/jobs/${overfit.id}/events?level=warn`)).body.data;
    const suspected = warnings.filter((e: any) => e.type === "overfitting_suspected");
    expect(suspected, JSON.stringify(warnings)).toHaveLength(1);
    expect(suspected[0].data.since).toBeLessThan(suspected[0].epoch);
    expect(suspected[0].message).toMatch(/Overfitting suspected since epoch \d+/);
  });

  it("a cancelled job ends with `cancelled`; a diverged one with an error-level `failed` giving the reason", async () => {
    const long = await c.submit(config(regression, { epochs: 5000, batch_size: 8 }));
    await c.waitForEpoch(long.id, 2);
    expect((await c.api("POST", `/v1/jobs/${long.id}/cancel`)).status).toBeLessThan(300);
    let cancelled: any;
    await waitFor(async () => (cancelled = await c.getJob(long.id)).status === "cancelled", 60_000, () => JSON.stringify(cancelled));
    const cEvents = await allEvents(long.id);
    expect(cEvents[0].type).toBe("started");
    expect(cEvents[cEvents.length - 1]).toMatchObject({ type: "cancelled", level: "info", epoch: cancelled.epoch });
    expect(cEvents[cEvents.length - 1].message).toContain(`after epoch ${cancelled.epoch}`);
    expectEpochFinishedOncePerEpoch(cEvents, cancelled.epoch);

    const diverged = await c.waitForJob((await c.submit(config(regression, { optimizer: { type: "sgd", lr: 50 } }))).id);
    expect(diverged.status).toBe("failed");
    const dEvents = await allEvents(diverged.id);
    expect(dEvents[0].type).toBe("started");
    const failed = dEvents[dEvents.length - 1];
    expect(failed).toMatchObject({ type: "failed", level: "error", data: { code: "diverged" } });
    expect(failed.message).toContain(diverged.error.message);
    // The level filter: only the failure is an error.
    const errors = await c.api("GET", `/v1/jobs/${diverged.id}/events?level=error`);
    expect(errors.body.data).toEqual([failed]);
    const both = await c.api("GET", `/v1/jobs/${diverged.id}/events?level=warn,error`);
    expect(both.body.data.every((e: any) => e.level !== "info")).toBe(true);
    expect(types(both.body.data)).toContain("failed");
    const info = await allEvents(diverged.id, 1000, "&level=info");
    expect(info).toEqual(dEvents.filter((e) => e.level === "info"));
  });

  it("refuses malformed cursors, limits and levels; a missing job is a 404, no key a 401", async () => {
    for (const q of ["after=abc", "after=-1", "limit=0", "limit=1001", "level=debug", "level=info,", "level=INFO"]) {
      const res = await c.api("GET", `/v1/jobs/${normal.id}/events?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error.code, q).toBeDefined();
    }
    const missing = await c.api("GET", "/v1/jobs/8d0f3a4e-1111-4222-8333-944455556666/events");
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("job_not_found");
    const anonymous = await fetch(`${stack.baseUrl}/v1/jobs/${normal.id}/events`);
    expect(anonymous.status).toBe(401);
  });
});
