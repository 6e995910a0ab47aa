// The dashboard in a real browser (Debian's Chromium, driven by playwright-core) against the real API
// and worker processes: key entry (a wrong key, then a right one), the empty job list, uploading a
// dataset and submitting a job from the page (with the API's errors shown next to the form), the
// loss chart gaining points live, status `succeeded`, the weights downloaded, a failed job's
// message, cancelling; and no request ever leaves the origin. Also the server-rendered SVG curves.
import { mkdirSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { regressionCsv } from "../helpers/data.js";
import { startStack, type Stack } from "../helpers/stack.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const ARTIFACTS = join(ROOT, "test-artifacts");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ADMIN_KEY = `admin-${randomBytes(16).toString("hex")}`;
const FINISHED = ["succeeded", "failed", "cancelled"];

let stack: Stack;
let browser: Browser;
let apiKey: string;
/** Every URL the pages requested, and those that were not on the API's origin. */
const requested: string[] = [];
/** Status and content type of each answer the pages got, by URL. */
const responses: { url: string; status: number; type: string }[] = [];
const offOrigin: string[] = [];
const pageErrors: string[] = [];

async function api(method: string, path: string, body?: unknown, key: string | null = apiKey) {
  const headers: Record<string, string> = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${stack.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, body: json, text, headers: res.headers };
}

async function newContext(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const origin = new URL(stack.baseUrl).origin;
  // Anything not on the origin is recorded and refused: the page must not need it.
  await context.route("**/*", async (route) => {
    const url = route.request().url();
    requested.push(url);
    if (new URL(url).origin === origin) return route.continue();
    offOrigin.push(url);
    return route.abort("blockedbyclient");
  });
  context.on("request", (req) => {
    const url = req.url();
    if (!/^(data|blob):/.test(url) && new URL(url).origin !== origin && !offOrigin.includes(url)) offOrigin.push(url);
  });
  context.on("response", (res) => responses.push({ url: res.url(), status: res.status(), type: res.headers()["content-type"] ?? "" }));
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  return { context, page };
}

/** The browser's network log for the page, checked at the end of each browser test. */
function expectNothingLeftTheOrigin() {
  expect(offOrigin, `requests that left ${stack.baseUrl}`).toEqual([]);
  expect(requested.length).toBeGreaterThan(0);
}

async function enterKey(page: Page, key: string) {
  await page.locator("#api-key").fill(key);
  await page.locator("#key-form button[type=submit]").click();
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium), as .ci/run does`);
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startStack("dashboard", { env: { ADMIN_API_KEY: ADMIN_KEY } });
  const made = await api("POST", "/v1/keys", { tenant: "dash-alice" }, ADMIN_KEY);
  expect(made.status, made.text).toBe(201);
  apiKey = made.body.key;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

describe("dashboard in Chromium", () => {
  it("refuses a wrong key with a clear message, then shows an empty job list for a right one", async () => {
    const { context, page } = await newContext();
    try {
      await page.goto(stack.baseUrl + "/");
      await page.locator("#key-view").waitFor({ state: "visible" });

      await enterKey(page, "not-a-real-key-0000");
      const keyError = page.locator("#key-error");
      await keyError.waitFor({ state: "visible" });
      expect(await keyError.textContent()).toMatch(/refused this key \(401/);
      expect(await page.evaluate(() => localStorage.getItem("trainhub.apiKey"))).toBeNull();

      await enterKey(page, apiKey);
      await page.locator("#list-view").waitFor({ state: "visible" });
      const empty = page.locator("#jobs-empty");
      await empty.waitFor({ state: "visible" });
      expect(await empty.textContent()).toContain("No jobs yet");
      expect(await page.evaluate(() => localStorage.getItem("trainhub.apiKey"))).toBe(apiKey);

      await page.locator("#status-filter").selectOption("failed");
      await page.waitForFunction(() => document.getElementById("jobs-empty")?.textContent?.includes("No failed jobs"));

      // The key outlives a reload.
      await page.reload();
      await page.locator("#list-view").waitFor({ state: "visible" });
      expectNothingLeftTheOrigin();
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);

  it("uploads a dataset, submits a job, watches the chart grow live to succeeded, downloads the weights", async () => {
    const { context, page } = await newContext();
    const epochs = 30;
    try {
      await page.goto(stack.baseUrl + "/");
      await enterKey(page, apiKey);
      await page.locator("#list-view").waitFor({ state: "visible" });

      // Upload.
      await page.locator("a[data-nav=new]").click();
      await page.locator("#new-view").waitFor({ state: "visible" });
      const csvPath = join(ARTIFACTS, "dashboard-linear.csv");
      writeFileSync(csvPath, regressionCsv(12_000, 21));
      await page.locator("#upload-file").setInputFiles(csvPath);
      await page.locator("#upload-target").fill("y");
      await page.locator("#upload-submit").click();
      const uploaded = page.locator("#upload-result");
      await uploaded.waitFor({ state: "visible", timeout: 30_000 });
      const datasetId = await uploaded.getAttribute("data-dataset-id");
      expect(datasetId).toBeTruthy();
      expect(await uploaded.textContent()).toContain("12000 rows");
      expect(await page.locator("#job-dataset-select").inputValue()).toBe(datasetId);

      // A config the API refuses: the error is shown next to the form, naming the field.
      const config = {
        dataset_id: datasetId,
        validation: { split: 0.2 },
        model: { layers: [{ type: "dense", units: 64, activation: "tanh" }, { type: "dense", units: 64, activation: "tanh" }, { type: "dense", units: 1 }] },
        loss: "mse",
        optimizer: { type: "sgd", lr: 0.01, momentum: 0.9 },
        epochs,
        batch_size: 8,
        seed: 4,
      };
      await page.locator("#job-config-input").fill(JSON.stringify({ ...config, epochs: -3 }, null, 2));
      await page.locator("#job-submit").click();
      const formError = page.locator("#job-form-error");
      await formError.waitFor({ state: "visible" });
      expect(await formError.getAttribute("data-param")).toBe("epochs");
      expect(await formError.locator(".param").textContent()).toBe("epochs");
      expect(await formError.textContent()).toMatch(/422 invalid_config/);

      await page.locator("#job-config-input").fill("{ not json");
      await page.locator("#job-submit").click();
      await page.waitForFunction(() => document.getElementById("job-form-error")?.textContent?.includes("not valid JSON"));
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-forms.png"), fullPage: true });

      // The real thing: the page goes to the job.
      await page.locator("#job-config-input").fill(JSON.stringify(config, null, 2));
      await page.locator("#job-submit").click();
      await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
      const jobId = page.url().split("#/jobs/")[1];
      await page.locator("#job-view").waitFor({ state: "visible" });

      // Watch the loss chart gain points while the job runs.
      const seen: { points: number; status: string }[] = [];
      const deadline = Date.now() + 240_000;
      for (;;) {
        const sample = await page.evaluate(() => ({
          points: Number(document.getElementById("chart-loss")?.dataset.points ?? 0),
          status: document.getElementById("job-status")?.dataset.status ?? "",
        }));
        if (seen.length === 0 || seen[seen.length - 1].points !== sample.points || seen[seen.length - 1].status !== sample.status) seen.push(sample);
        if (FINISHED.includes(sample.status) && sample.points >= epochs) break;
        if (FINISHED.includes(sample.status) && sample.status !== "succeeded") break;
        if (Date.now() > deadline) throw new Error(`job did not finish in the page: ${JSON.stringify(seen)}\n${stack.worker.output()}`);
        await page.waitForTimeout(100);
      }
      console.log(`chart samples (points, status): ${seen.map((s) => `${s.points}:${s.status}`).join(" ")}`);
      const statusText = await page.locator("#job-status").textContent();
      expect(statusText).toBe("succeeded");
      const whileRunning = seen.filter((s) => s.status === "running" && s.points > 0 && s.points < epochs).map((s) => s.points);
      expect(new Set(whileRunning).size, `the chart should gain points while the job runs: ${JSON.stringify(seen)}`).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < seen.length; i++) expect(seen[i].points).toBeGreaterThanOrEqual(seen[i - 1].points);
      expect(Number(await page.locator("#chart-loss").getAttribute("data-points"))).toBe(epochs);
      expect(Number(await page.locator("#chart-lr").getAttribute("data-points"))).toBe(epochs);
      expect(await page.locator("#chart-metric").getAttribute("data-metric")).toBe("mae");
      expect(await page.locator("#metric-caption").textContent()).toBe("Validation MAE");
      expect(await page.locator("#chart-loss canvas").count()).toBeGreaterThan(0);

      const job = (await api("GET", `/v1/jobs/${jobId}`)).body;
      expect(job.status).toBe("succeeded");
      expect(await page.locator("#job-best").getAttribute("data-epoch")).toBe(String(job.best_epoch));
      expect(await page.locator("#job-config").textContent()).toContain('"batch_size": 8');

      // The page followed the metrics stream (not its polling fallback) and shows the event log.
      // expect.soft: a failure here still fails the test, but the checks after it still run.
      const streamAnswers = responses.filter((r) => r.url.includes(`/v1/jobs/${jobId}/metrics/stream`));
      expect.soft(streamAnswers.length, "the page should request /metrics/stream").toBeGreaterThan(0);
      expect
        .soft(streamAnswers.filter((r) => r.status === 200 && r.type.startsWith("text/event-stream")).length, `stream answers: ${JSON.stringify(streamAnswers)}`)
        .toBeGreaterThan(0);
      expect.soft(await page.locator("#live").getAttribute("data-mode")).toBe("ended");
      const events = await page
        .waitForFunction(() => (document.getElementById("events-body")?.children.length ?? 0) >= 2, undefined, { timeout: 10_000 })
        .then(() => true, () => false);
      expect.soft(events, `the event log should list the job's events: ${await page.locator("#events-note").textContent()}`).toBe(true);

      // Log scale toggle.
      await page.locator("#log-scale").check();
      expect(await page.locator("#chart-loss").getAttribute("data-scale")).toBe("log");
      expect(await page.locator("#cancel-job").isDisabled()).toBe(true);

      // Weights: best and last, through the page's fetch with the key, saved as files.
      for (const which of ["best", "last"] as const) {
        const [download] = await Promise.all([page.waitForEvent("download"), page.locator(`#download-${which}`).click()]);
        const file = join(ARTIFACTS, `dashboard-${which}.safetensors`);
        await download.saveAs(file);
        const buf = readFileSync(file);
        const n = Number(buf.readBigUInt64LE(0));
        const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
        expect(Object.keys(header)).toEqual(expect.arrayContaining(["0.weight", "0.bias", "2.weight", "2.bias"]));
        expect(download.suggestedFilename()).toMatch(new RegExp(`^job-${jobId}-epoch-\\d+\\.safetensors$`));
        if (which === "best") expect(download.suggestedFilename()).toContain(`epoch-${job.best_epoch}.`);
        else expect(download.suggestedFilename()).toContain(`epoch-${epochs}.`);
      }
      await page.locator("#log-scale").uncheck();
      await page.waitForTimeout(300);
      const shot = join(ARTIFACTS, "dashboard-job.png");
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`dashboard screenshot: ${shot}`);

      // The list shows the job with its dataset name, progress and best validation loss.
      await page.goto(`${stack.baseUrl}/#/`);
      const row = page.locator(`tr[data-job-id="${jobId}"]`);
      await row.waitFor({ state: "visible" });
      await page.waitForFunction((id) => document.querySelector(`tr[data-job-id="${id}"] td.dataset`)?.textContent === "dashboard-linear", jobId);
      expect(await row.locator("td.progress").textContent()).toContain(`${epochs}/${epochs}`);
      expect(Number(await row.locator("td.best").textContent())).toBeCloseTo(job.best_val_loss, 3);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-list.png") });

      expectNothingLeftTheOrigin();
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 300_000);

  it("shows a failed job's error code and message, and cancels a running job", async () => {
    const ds = await fetch(`${stack.baseUrl}/v1/datasets?name=small&target=y`, {
      method: "POST",
      headers: { "content-type": "text/csv", authorization: `Bearer ${apiKey}` },
      body: regressionCsv(2000, 5),
    });
    expect(ds.status).toBe(201);
    const datasetId = (await ds.json()).id;
    const base = {
      dataset_id: datasetId,
      model: { layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dense", units: 1 }] },
      loss: "mse",
      seed: 1,
    };
    // A learning rate this large makes the loss blow up: the job fails with `diverged`.
    const doomed = await api("POST", "/v1/jobs", { ...base, optimizer: { type: "sgd", lr: 1e6, momentum: 0.9 }, epochs: 5 });
    expect(doomed.status, doomed.text).toBe(201);
    const long = await api("POST", "/v1/jobs", { ...base, optimizer: { type: "sgd", lr: 0.001 }, epochs: 5000, batch_size: 1 });
    expect(long.status, long.text).toBe(201);

    const { context, page } = await newContext();
    try {
      await page.goto(stack.baseUrl + "/");
      await enterKey(page, apiKey);
      await page.goto(`${stack.baseUrl}/#/jobs/${doomed.body.id}`);
      const failed = page.locator("#job-failed");
      await failed.waitFor({ state: "visible", timeout: 120_000 });
      const job = (await api("GET", `/v1/jobs/${doomed.body.id}`)).body;
      expect(job.status).toBe("failed");
      expect(await failed.getAttribute("data-code")).toBe(job.error.code);
      expect(await failed.locator(".error-code").textContent()).toBe(job.error.code);
      expect(await failed.textContent()).toContain(job.error.message);
      expect(await failed.textContent()).toContain("This job failed");

      await page.goto(`${stack.baseUrl}/#/jobs/${long.body.id}`);
      await page.waitForFunction(() => document.getElementById("job-status")?.dataset.status === "running", undefined, { timeout: 120_000 });
      await page.locator("#cancel-job").click();
      await page.waitForFunction(() => document.getElementById("job-status")?.dataset.status === "cancelled", undefined, { timeout: 60_000 });

      // The status filter finds the failed one.
      await page.goto(`${stack.baseUrl}/#/?status=failed`);
      await page.locator(`tr[data-job-id="${doomed.body.id}"]`).waitFor({ state: "visible" });
      expect(await page.locator("tr.job-row").count()).toBe(1);

      expectNothingLeftTheOrigin();
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 240_000);
});

describe("server side", () => {
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", isArray: (name) => name === "path" });

  it("GET /v1/jobs/:id/curves.svg: an SVG with one path per curve and one point per epoch", async () => {
    const jobs = await api("GET", "/v1/jobs?status=succeeded&limit=1");
    expect(jobs.body.data.length, "needs the succeeded job of the browser test").toBe(1);
    const job = jobs.body.data[0];
    const metrics = (await api("GET", `/v1/jobs/${job.id}/metrics`)).body.data;
    for (const log of [false, true]) {
      const res = await api("GET", `/v1/jobs/${job.id}/curves.svg?log=${log}&width=900&height=500`);
      expect(res.status, res.text).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^image\/svg\+xml/);
      expect(XMLValidator.validate(res.text)).toBe(true);
      const svg = parser.parse(res.text).svg;
      expect(svg.width).toBe("900");
      expect(svg["data-scale"]).toBe(log ? "log" : "linear");
      const paths = (svg.path ?? []).filter((p: any) => p["data-curve"]);
      expect(paths.map((p: any) => p["data-curve"]).sort()).toEqual(["train", "validation"]);
      for (const p of paths) {
        const pts = (p.d.match(/[ML]/g) ?? []).length;
        const expected = p["data-curve"] === "train" ? metrics.length : metrics.filter((m: any) => m.val_loss !== null).length;
        expect(pts).toBe(expected);
      }
    }
    const unknown = await api("GET", "/v1/jobs/00000000-0000-4000-8000-000000000000/curves.svg");
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: "job_not_found" });
    const tooWide = await api("GET", `/v1/jobs/${job.id}/curves.svg?width=100000`);
    expect(tooWide.status).toBe(400);
    expect(tooWide.body.error.param).toBe("width");
    const noKey = await api("GET", `/v1/jobs/${job.id}/curves.svg`, undefined, null);
    expect(noKey.status).toBe(401);
  });

  it("serves the page and uPlot from its own origin, outside the API document", async () => {
    const index = await fetch(`${stack.baseUrl}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toMatch(/text\/html/);
    expect(index.headers.get("content-security-policy")).toContain("default-src 'self'");
    const html = await index.text();
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const uplot = await fetch(`${stack.baseUrl}/assets/uplot/uPlot.esm.js`);
    expect(uplot.status).toBe(200);
    expect(uplot.headers.get("content-type")).toMatch(/javascript/);
    expect((await fetch(`${stack.baseUrl}/assets/uplot/uPlot.cjs.js`)).status).toBe(404);
    expect((await fetch(`${stack.baseUrl}/assets/uplot/../../package.json`)).status).toBe(404);
    const doc = (await api("GET", "/openapi.json", undefined, null)).body;
    expect(doc.paths["/v1/jobs/{id}/curves.svg"]?.get?.tags).toEqual(["jobs"]);
    expect(Object.keys(doc.paths).filter((p) => !p.startsWith("/v1/") && !["/healthz", "/readyz", "/metrics"].includes(p))).toEqual([]);
  });
});
