// A small HTTP client for tests that talk to a running API process.
import { expect } from "vitest";
import { waitFor, type Stack } from "./stack.js";

export function client(stack: Stack) {
  async function api(method: string, path: string, body?: unknown) {
    const res = await fetch(`${stack.baseUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async function uploadCsv(csv: string, query: string) {
    const res = await fetch(`${stack.baseUrl}/v1/datasets?${query}`, { method: "POST", headers: { "content-type": "text/csv" }, body: csv });
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
      () => `job ${JSON.stringify(job)}\nworker:\n${stack.worker.output()}`,
    );
    return job;
  }

  async function metrics(id: string) {
    return (await api("GET", `/v1/jobs/${id}/metrics`)).body.data as any[];
  }

  return { api, uploadCsv, submit, waitForJob, metrics };
}
