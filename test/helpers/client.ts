// A small HTTP client for tests that talk to a running API process.
import { expect } from "vitest";
import { waitFor, type Stack } from "./stack.js";

export function client(stack: Stack) {
  async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${stack.baseUrl}${path}`, {
      method,
      headers: body === undefined ? { ...stack.auth, ...headers } : { ...stack.auth, "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
  }

  async function uploadCsv(csv: string, query: string) {
    const res = await fetch(`${stack.baseUrl}/v1/datasets?${query}`, { method: "POST", headers: { ...stack.auth, "content-type": "text/csv" }, body: csv });
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(201);
    return body;
  }

  async function submit(config: unknown) {
    const res = await api("POST", "/v1/jobs", config);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  async function waitForJob(id: string, timeoutMs = 300_000) {
    let job: any;
    await waitFor(
      async () => {
        job = (await api("GET", `/v1/jobs/${id}`)).body;
        return ["succeeded", "failed", "cancelled"].includes(job.status);
      },
      timeoutMs,
      () => `job ${JSON.stringify(job)}\n${stack.workers.map((w, i) => `worker ${i}:\n${w.output()}`).join("\n")}`,
    );
    return job;
  }

  async function metrics(id: string) {
    return (await api("GET", `/v1/jobs/${id}/metrics`)).body.data as any[];
  }

  async function getJob(id: string) {
    return (await api("GET", `/v1/jobs/${id}`)).body;
  }

  /** Waits until the job has stored at least `epoch` epochs; returns the job. */
  async function waitForEpoch(id: string, epoch: number, timeoutMs = 120_000) {
    let job: any;
    await waitFor(
      async () => {
        job = await getJob(id);
        if (["succeeded", "failed", "cancelled"].includes(job.status)) throw new Error(`job ended before epoch ${epoch}: ${JSON.stringify(job)}`);
        return job.epoch >= epoch;
      },
      timeoutMs,
      () => `job ${JSON.stringify(job)}`,
      25,
    );
    return job;
  }

  return { api, uploadCsv, submit, waitForJob, waitForEpoch, getJob, metrics };
}
