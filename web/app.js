// The dashboard: key entry, job list, a job's live page, upload and submit forms. Plain ES modules,
// no build step; every request goes to this origin.
import { api, ApiError, authHeaders, errorOf, fileNameOf, keyStore, onUnauthorized } from "./api.js";
import { readSse } from "./sse.js";
import { COLOURS, lineChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

function show(el, on = true) {
  el.hidden = !on;
}

function setText(el, text) {
  el.textContent = text ?? "";
}

function fmtNumber(v, digits = 4) {
  if (v === null || v === undefined) return "—";
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(digits)));
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function totalEpochsOf(job) {
  const e = job?.config?.epochs;
  return typeof e === "number" && e > 0 ? e : 0;
}

function progressOf(job) {
  const total = totalEpochsOf(job);
  if (!total) return 0;
  return Math.min(1, job.epoch / total);
}

/** A short text for an API error: its message and, when it names one, the field. */
function errorLine(err) {
  if (err instanceof ApiError) return err.message;
  return String(err?.message ?? err);
}

/** Fills an error box with the message and the parameter it is about. */
function showFormError(box, err) {
  box.textContent = "";
  const msg = document.createElement("span");
  msg.className = "message";
  msg.textContent = errorLine(err);
  box.append(msg);
  if (err instanceof ApiError) {
    if (err.param) {
      const p = document.createElement("div");
      p.append("Field: ");
      const code = document.createElement("code");
      code.className = "param";
      code.textContent = err.param;
      p.append(code);
      box.append(p);
    }
    const c = document.createElement("div");
    c.className = "code note";
    c.textContent = err.status > 0 ? `${err.status} ${err.code}` : err.code;
    box.append(c);
    box.dataset.param = err.param ?? "";
    box.dataset.code = err.code;
  }
  show(box);
}

// ---------------------------------------------------------------------------------------------
// Key

let keyMessage = "";

onUnauthorized((err) => {
  keyMessage =
    `The API refused this key (401 ${err.code}): ${err.message} ` +
    "Check that you pasted the whole key, or ask an administrator for a new one.";
  currentPage?.stop();
  currentPage = null;
  renderKeyView();
});

function renderKeyStatus() {
  const key = keyStore.get();
  show($("key-status"), Boolean(key));
  setText($("key-hint"), key ? `…${key.slice(-4)}` : "");
}

function renderKeyView() {
  for (const v of document.querySelectorAll(".view")) show(v, v.id === "key-view");
  $("api-key").value = keyStore.get();
  const err = $("key-error");
  setText(err, keyMessage);
  show(err, Boolean(keyMessage));
  renderKeyStatus();
  $("api-key").focus();
}

$("key-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  const button = ev.submitter ?? $("key-form").querySelector("button[type=submit]");
  button.disabled = true;
  try {
    // Try the key before keeping it.
    await api("/v1/jobs?limit=1", { key });
    keyStore.set(key);
    keyMessage = "";
    show($("key-error"), false);
    renderKeyStatus();
    if (location.hash === "#/key" || location.hash === "") location.hash = "#/";
    else route();
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) {
      keyMessage = `Could not check the key: ${errorLine(err)}`;
      renderKeyView();
    }
    // a 401 has already shown its message through onUnauthorized
  } finally {
    button.disabled = false;
  }
});

$("forget-key").addEventListener("click", () => {
  keyStore.clear();
  keyMessage = "";
  renderKeyView();
});

$("change-key").addEventListener("click", () => {
  keyMessage = "";
  currentPage?.stop();
  currentPage = null;
  renderKeyView();
});

// ---------------------------------------------------------------------------------------------
// Datasets (names for the list; the submit form's choices)

const datasetNames = new Map();

async function datasetName(id) {
  if (datasetNames.has(id)) return datasetNames.get(id);
  const p = api(`/v1/datasets/${encodeURIComponent(id)}`)
    .then((d) => d.name)
    .catch(() => null);
  datasetNames.set(id, p);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Job list

class ListPage {
  constructor() {
    this.timer = null;
    this.lastId = null;
    this.extraPages = false;
    this.stopped = false;
  }

  start() {
    $("status-filter").value = new URLSearchParams(location.hash.split("?")[1] ?? "").get("status") ?? "";
    void this.load();
    this.timer = setInterval(() => {
      if (!this.extraPages && document.visibilityState === "visible") void this.load();
    }, 3000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
  }

  async load(append = false) {
    const status = $("status-filter").value;
    const q = new URLSearchParams({ limit: "20" });
    if (status) q.set("status", status);
    if (append && this.lastId) q.set("after", this.lastId);
    let page;
    try {
      page = await api(`/v1/jobs?${q}`);
    } catch (err) {
      if (this.stopped || err.status === 401) return;
      setText($("jobs-error"), `Could not load the jobs: ${errorLine(err)}`);
      show($("jobs-error"));
      return;
    }
    if (this.stopped) return;
    show($("jobs-error"), false);
    this.lastId = page.last_id;
    const body = $("jobs-body");
    if (!append) body.textContent = "";
    for (const job of page.data) body.append(this.row(job));
    const count = body.children.length;
    show($("jobs-table"), count > 0);
    show($("more-jobs"), page.has_more);
    const empty = $("jobs-empty");
    if (count === 0) {
      empty.textContent = status
        ? `No ${status} jobs. Choose another status, or "all".`
        : "No jobs yet. Upload a dataset and submit a job under \u201cUpload & submit\u201d.";
    }
    show(empty, count === 0);
  }

  row(job) {
    const tr = document.createElement("tr");
    tr.className = "job-row";
    tr.dataset.jobId = job.id;
    tr.dataset.status = job.status;
    const cell = (content, cls) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (content instanceof Node) td.append(content);
      else td.textContent = content;
      tr.append(td);
      return td;
    };
    const link = document.createElement("a");
    link.href = `#/jobs/${job.id}`;
    link.textContent = job.id.slice(0, 8);
    link.title = job.id;
    cell(link, "id");
    const badge = document.createElement("span");
    badge.className = `status ${job.status}`;
    badge.textContent = job.status;
    cell(badge, "status-cell");
    const ds = cell(job.dataset_id.slice(0, 8), "dataset");
    void datasetName(job.dataset_id).then((name) => {
      if (name) ds.textContent = name;
      ds.title = job.dataset_id;
    });
    cell(fmtTime(job.created_at), "created");
    const prog = document.createElement("span");
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = progressOf(job);
    prog.append(bar, ` ${job.epoch}/${totalEpochsOf(job) || "?"}`);
    cell(prog, "progress");
    cell(fmtNumber(job.best_val_loss), "best");
    return tr;
  }
}

$("status-filter").addEventListener("change", () => {
  const s = $("status-filter").value;
  location.hash = s ? `#/?status=${s}` : "#/";
});
$("refresh-jobs").addEventListener("click", () => currentPage instanceof ListPage && currentPage.load());
$("more-jobs").addEventListener("click", () => {
  if (currentPage instanceof ListPage) {
    currentPage.extraPages = true;
    void currentPage.load(true);
  }
});

// ---------------------------------------------------------------------------------------------
// A job's page

class JobPage {
  constructor(id) {
    this.id = id;
    this.job = null;
    this.metrics = [];
    this.lastEpoch = 0;
    this.ended = false;
    this.stopped = false;
    this.abort = new AbortController();
    this.eventsAfter = null;
    this.eventTimer = null;
    this.drawQueued = false;
    this.mode = "connecting";
  }

  start() {
    setText($("job-id"), this.id);
    for (const id of ["job-failed", "job-load-error"]) show($(id), false);
    show($("job-content"), false);
    setText($("job-status"), "");
    setText($("action-message"), "");
    $("events-body").textContent = "";
    setText($("events-note"), "");
    setText($("job-config"), "");
    setText($("metric-caption"), "Validation metric");
    for (const id of ["chart-loss", "chart-metric", "chart-lr"]) $(id).dataset.points = "0";
    $("chart-metric").textContent = "";
    this.buildCharts();
    void this.init();
  }

  stop() {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.eventTimer);
    clearTimeout(this.pollTimer);
    for (const c of this.charts ?? []) c.destroy();
    window.removeEventListener("resize", this.onResize);
  }

  buildCharts() {
    const best = () => this.job?.best_epoch ?? null;
    const log = $("log-scale").checked;
    this.loss = lineChart($("chart-loss"), {
      yLabel: "loss",
      log,
      getBest: best,
      series: [
        { label: "training loss", colour: COLOURS.train },
        { label: "validation loss", colour: COLOURS.validation, gaps: true },
      ],
    });
    this.metricKeys = null;
    this.metric = null;
    this.lr = lineChart($("chart-lr"), { yLabel: "learning rate", getBest: () => null, series: [{ label: "lr", colour: COLOURS.lr }] });
    this.charts = [this.loss, this.lr];
    $("chart-loss").dataset.scale = log ? "log" : "linear";
    this.onResize = () => this.charts.forEach((c) => c.resize());
    window.addEventListener("resize", this.onResize);
  }

  /** Accuracy for classifiers, MAE (and RMSE) for regression: whichever the metrics carry. */
  ensureMetricChart() {
    if (this.metric) return;
    const keys = new Set();
    for (const m of this.metrics) for (const k of Object.keys(m.metrics ?? {})) keys.add(k);
    if (keys.size === 0) return;
    let chosen;
    let caption;
    if (keys.has("accuracy")) {
      chosen = ["accuracy", ...(keys.has("top5_accuracy") ? ["top5_accuracy"] : [])];
      caption = "Validation accuracy";
    } else if (keys.has("mae")) {
      chosen = ["mae", ...(keys.has("rmse") ? ["rmse"] : [])];
      caption = "Validation MAE";
    } else {
      chosen = [...keys].slice(0, 2);
      caption = `Validation ${chosen.join(", ")}`;
    }
    this.metricKeys = chosen;
    setText($("metric-caption"), caption);
    $("chart-metric").dataset.metric = chosen[0];
    this.metric = lineChart($("chart-metric"), {
      yLabel: chosen[0],
      getBest: () => this.job?.best_epoch ?? null,
      series: chosen.map((k, i) => ({ label: k, colour: i === 0 ? COLOURS.metric : COLOURS.metric2, gaps: true })),
    });
    this.charts.push(this.metric);
  }

  async init() {
    try {
      this.setJob(await api(`/v1/jobs/${encodeURIComponent(this.id)}`, { signal: this.abort.signal }));
    } catch (err) {
      if (this.stopped || err.name === "AbortError" || err.status === 401) return;
      setText($("job-load-error"), err.status === 404 ? `No job ${this.id} (or it belongs to another key's tenant).` : `Could not load the job: ${errorLine(err)}`);
      show($("job-load-error"));
      return;
    }
    show($("job-content"));
    this.charts.forEach((c) => c.resize());
    void this.follow();
    void this.pollEvents();
  }

  setJob(job) {
    this.job = job;
    const status = $("job-status");
    status.className = `status ${job.status}`;
    status.dataset.status = job.status;
    setText(status, job.status);
    const total = totalEpochsOf(job);
    $("job-progress").value = progressOf(job);
    setText($("job-epochs"), `epoch ${job.epoch} of ${total || "?"} (${Math.round(progressOf(job) * 100)}%)`);
    const best = $("job-best");
    best.dataset.epoch = job.best_epoch ?? "";
    setText(best, job.best_epoch == null ? "—" : `epoch ${job.best_epoch} (validation loss ${fmtNumber(job.best_val_loss)})`);
    setText($("job-dataset"), job.dataset_id);
    void datasetName(job.dataset_id).then((name) => name && setText($("job-dataset"), `${name} (${job.dataset_id})`));
    setText($("job-created"), fmtTime(job.created_at));
    setText($("job-started"), fmtTime(job.started_at));
    setText($("job-finished"), fmtTime(job.finished_at));
    setText($("job-stop"), job.stop_reason ?? "—");
    setText($("job-config"), JSON.stringify(job.config, null, 2));

    const failed = $("job-failed");
    if (job.status === "failed") {
      failed.textContent = "";
      const head = document.createElement("strong");
      head.textContent = "This job failed. ";
      const code = document.createElement("code");
      code.className = "error-code";
      code.textContent = job.error?.code ?? "unknown";
      const msg = document.createElement("span");
      msg.className = "error-message";
      msg.textContent = `: ${job.error?.message || "no message"}`;
      failed.append(head, code, msg);
      failed.dataset.code = job.error?.code ?? "";
      show(failed);
    } else show(failed, false);

    $("cancel-job").disabled = !["queued", "running"].includes(job.status);
    $("download-best").disabled = job.best_epoch == null;
    $("download-last").disabled = !(job.epoch > 0);
    for (const c of this.charts ?? []) c.setTotalEpochs(total);
    this.scheduleDraw();
  }

  addMetric(m) {
    if (typeof m?.epoch !== "number" || m.epoch <= this.lastEpoch) return; // replays after a reconnect
    this.metrics.push(m);
    this.lastEpoch = m.epoch;
    this.scheduleDraw();
  }

  scheduleDraw() {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      if (!this.stopped) this.draw();
    });
  }

  draw() {
    const xs = this.metrics.map((m) => m.epoch);
    this.loss.setData(xs, [this.metrics.map((m) => m.train_loss), this.metrics.map((m) => m.val_loss)]);
    this.lr.setData(xs, [this.metrics.map((m) => m.lr)]);
    this.ensureMetricChart();
    if (this.metric) this.metric.setData(xs, this.metricKeys.map((k) => this.metrics.map((m) => m.metrics?.[k] ?? null)));
    $("chart-loss").dataset.lastEpoch = String(this.lastEpoch);
  }

  setLive(mode, text) {
    this.mode = mode;
    const el = $("live");
    el.className = `live${mode === "stream" || mode === "poll" ? " on" : ""}`;
    el.dataset.mode = mode;
    setText(el, text);
    show(el);
  }

  /** Follows the metrics stream, reconnecting with Last-Event-ID, until the job's `end` event. */
  async follow() {
    let delay = 500;
    while (!this.stopped && !this.ended) {
      try {
        await readSse(`/v1/jobs/${encodeURIComponent(this.id)}/metrics/stream`, {
          headers: authHeaders(),
          lastEventId: this.lastEpoch > 0 ? String(this.lastEpoch) : "",
          signal: this.abort.signal,
          onOpen: () => {
            delay = 500;
            this.setLive("stream", "live");
          },
          onEvent: (ev) => this.onStreamEvent(ev),
        });
      } catch (err) {
        if (this.stopped || err?.name === "AbortError") return;
        if (err instanceof Response) {
          const apiErr = await errorOf(err);
          if (apiErr.status === 401) return;
          if (apiErr.status === 404 && apiErr.code === "not_found") {
            // This server has no stream route: fall back to polling.
            return this.poll();
          }
          if (apiErr.status === 404) {
            setText($("job-load-error"), apiErr.message);
            show($("job-load-error"));
            return;
          }
        }
      }
      if (this.stopped || this.ended) break;
      this.setLive("reconnecting", "reconnecting…");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
    if (this.ended) this.setLive("ended", "finished");
  }

  onStreamEvent(ev) {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (ev.type === "epoch") this.addMetric(data);
    else if (ev.type === "status") this.setJob(data);
    else if (ev.type === "end") {
      this.setJob(data);
      this.ended = true;
      void this.pollEvents(true);
    }
  }

  /** Without a stream: the job and new metrics every second until the job ends. */
  async poll() {
    this.setLive("poll", "polling");
    while (!this.stopped) {
      try {
        const [job, metrics] = await Promise.all([
          api(`/v1/jobs/${encodeURIComponent(this.id)}`, { signal: this.abort.signal }),
          api(`/v1/jobs/${encodeURIComponent(this.id)}/metrics?after_epoch=${this.lastEpoch}`, { signal: this.abort.signal }),
        ]);
        for (const m of metrics.data) this.addMetric(m);
        this.setJob(job);
        if (FINISHED.has(job.status) && job.epoch <= this.lastEpoch) {
          this.ended = true;
          this.setLive("ended", "finished");
          void this.pollEvents(true);
          return;
        }
      } catch (err) {
        if (this.stopped || err?.name === "AbortError" || err?.status === 401) return;
      }
      await new Promise((r) => (this.pollTimer = setTimeout(r, 1000)));
    }
  }

  /** The event log, oldest first, fetched page by page from the last one seen. */
  async pollEvents(once = false) {
    clearTimeout(this.eventTimer);
    if (this.stopped) return;
    try {
      for (;;) {
        const q = new URLSearchParams({ limit: "100" });
        if (this.eventsAfter) q.set("after", this.eventsAfter);
        const page = await api(`/v1/jobs/${encodeURIComponent(this.id)}/events?${q}`, { signal: this.abort.signal });
        if (this.stopped) return;
        for (const e of page.data) this.addEvent(e);
        if (page.last_id) this.eventsAfter = page.last_id;
        if (!page.has_more) break;
      }
      setText($("events-note"), $("events-body").children.length === 0 ? "No events yet." : "");
    } catch (err) {
      if (this.stopped || err?.name === "AbortError" || err?.status === 401) return;
      setText($("events-note"), err.status === 404 ? "This server does not offer the event log." : `Could not load the events: ${errorLine(err)}`);
      if (err.status === 404) return;
    }
    if (!once && !this.ended) this.eventTimer = setTimeout(() => this.pollEvents(), 2000);
  }

  addEvent(e) {
    const tr = document.createElement("tr");
    tr.dataset.type = e.type;
    const td = (text, cls) => {
      const c = document.createElement("td");
      c.textContent = text;
      if (cls) c.className = cls;
      tr.append(c);
    };
    td(fmtTime(e.created_at));
    td(e.level, `level-${e.level}`);
    td(e.epoch ?? "");
    td(e.message || e.type);
    $("events-body").append(tr);
  }

  async cancel() {
    const button = $("cancel-job");
    button.disabled = true;
    setText($("action-message"), "Cancelling…");
    try {
      const job = await api(`/v1/jobs/${encodeURIComponent(this.id)}/cancel`, { method: "POST" });
      this.setJob(job);
      setText($("action-message"), job.status === "cancelling" ? "Cancel sent; the worker stops between two batches." : "Cancelled.");
    } catch (err) {
      setText($("action-message"), `Could not cancel: ${errorLine(err)}`);
      if (this.job) this.setJob(this.job);
    }
  }

  async download(checkpoint) {
    setText($("action-message"), `Downloading the ${checkpoint} weights…`);
    try {
      const res = await api(`/v1/jobs/${encodeURIComponent(this.id)}/weights?checkpoint=${checkpoint}`, { raw: true });
      const blob = await res.blob();
      const name = fileNameOf(res, `job-${this.id}-${checkpoint}.safetensors`);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setText($("action-message"), `Saved ${name} (${blob.size} bytes, epoch ${res.headers.get("x-checkpoint-epoch") ?? "?"}).`);
    } catch (err) {
      setText($("action-message"), `Could not download: ${errorLine(err)}`);
    }
  }
}

$("cancel-job").addEventListener("click", () => currentPage instanceof JobPage && currentPage.cancel());
$("download-best").addEventListener("click", () => currentPage instanceof JobPage && currentPage.download("best"));
$("download-last").addEventListener("click", () => currentPage instanceof JobPage && currentPage.download("last"));
$("log-scale").addEventListener("change", () => {
  if (!(currentPage instanceof JobPage)) return;
  currentPage.loss.setLog($("log-scale").checked);
  currentPage.scheduleDraw();
});

// ---------------------------------------------------------------------------------------------
// Upload and submit

const CONFIG_TEMPLATE = {
  dataset_id: "",
  validation: { split: 0.2 },
  model: { layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dense", units: 1 }] },
  loss: "mse",
  optimizer: { type: "adam", lr: 0.01 },
  epochs: 20,
  batch_size: 32,
};

class NewPage {
  start() {
    const ta = $("job-config-input");
    if (!ta.value.trim()) ta.value = JSON.stringify(CONFIG_TEMPLATE, null, 2);
    void this.loadDatasets();
  }
  stop() {}

  async loadDatasets(select) {
    const sel = $("job-dataset-select");
    const generation = (this.generation = (this.generation ?? 0) + 1);
    try {
      const page = await api("/v1/datasets?limit=100");
      if (generation !== this.generation) return; // a later load (after an upload) wins
      const keep = select ?? sel.value;
      sel.length = 1;
      for (const d of page.data) {
        if (d.status !== "ready") continue;
        const o = document.createElement("option");
        o.value = d.id;
        o.textContent = `${d.name} (${d.rows} rows, ${d.task || "?"}) ${d.id.slice(0, 8)}`;
        sel.append(o);
        datasetNames.set(d.id, Promise.resolve(d.name));
      }
      sel.value = keep;
    } catch {
      // the forms still work with an id typed into the config
    }
  }
}

function contentTypeOf(file) {
  if (/\.csv$/i.test(file.name)) return "text/csv";
  if (/\.(jsonl|ndjson)$/i.test(file.name)) return "application/x-ndjson";
  return file.type || "application/octet-stream";
}

$("upload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("upload-file").files[0];
  const errBox = $("upload-error");
  const okBox = $("upload-result");
  show(errBox, false);
  show(okBox, false);
  if (!file) return;
  const q = new URLSearchParams();
  for (const [field, id] of [["name", "upload-name"], ["target", "upload-target"], ["task", "upload-task"], ["input_shape", "upload-shape"]]) {
    const v = $(id).value.trim();
    if (v) q.set(field, v);
  }
  if (!q.has("name")) q.set("name", file.name.replace(/\.[^.]+$/, "") || "dataset");
  const button = $("upload-submit");
  button.disabled = true;
  try {
    const ds = await api(`/v1/datasets?${q}`, { method: "POST", body: file, headers: { "content-type": contentTypeOf(file) } });
    okBox.textContent = `Uploaded \u201c${ds.name}\u201d: ${ds.rows} rows, ${ds.input_width} inputs, ${ds.task}${ds.classes ? ` (classes ${ds.classes.join(", ")})` : ""}. Id ${ds.id}.`;
    okBox.dataset.datasetId = ds.id;
    // Shown once the dataset is selected in the job form too, so the page never shows the upload
    // done while the form still offers the previous choice.
    await (currentPage instanceof NewPage ? currentPage.loadDatasets(ds.id) : Promise.resolve());
    setDatasetInConfig(ds.id);
    show(okBox);
  } catch (err) {
    showFormError(errBox, err);
  } finally {
    button.disabled = false;
  }
});

function setDatasetInConfig(id) {
  const ta = $("job-config-input");
  try {
    const cfg = JSON.parse(ta.value);
    if (cfg && typeof cfg === "object" && !Array.isArray(cfg)) {
      cfg.dataset_id = id;
      ta.value = JSON.stringify(cfg, null, 2);
    }
  } catch {
    // leave a config the user is still typing alone
  }
}

$("job-dataset-select").addEventListener("change", () => {
  const id = $("job-dataset-select").value;
  if (id) setDatasetInConfig(id);
});

$("job-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const errBox = $("job-form-error");
  show(errBox, false);
  let config;
  try {
    config = JSON.parse($("job-config-input").value);
  } catch (e) {
    showFormError(errBox, new ApiError(0, { error: { code: "invalid_json", message: `The config is not valid JSON: ${e.message}`, param: "config" } }));
    return;
  }
  const button = $("job-submit");
  button.disabled = true;
  try {
    const job = await api("/v1/jobs", { method: "POST", json: config, headers: { "idempotency-key": crypto.randomUUID() } });
    location.hash = `#/jobs/${job.id}`;
  } catch (err) {
    showFormError(errBox, err);
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------------
// Routing: #/ (jobs), #/?status=…, #/jobs/<id>, #/new, #/key

let currentPage = null;

function route() {
  currentPage?.stop();
  currentPage = null;
  show($("global-error"), false);
  const hash = location.hash || "#/";
  const section = hash.startsWith("#/new") ? "new" : hash.startsWith("#/key") ? "key" : "jobs";
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === section);
  if (!keyStore.get() || hash === "#/key") {
    renderKeyView();
    return;
  }
  renderKeyStatus();
  let view;
  const job = /^#\/jobs\/([^/?#]+)/.exec(hash);
  if (job) {
    view = "job-view";
    currentPage = new JobPage(decodeURIComponent(job[1]));
  } else if (hash.startsWith("#/new")) {
    view = "new-view";
    currentPage = new NewPage();
  } else {
    view = "list-view";
    currentPage = new ListPage();
  }
  for (const v of document.querySelectorAll(".view")) show(v, v.id === view);
  currentPage.start();
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (ev) => {
  if (ev.reason?.name === "AbortError") return;
  setText($("global-error"), `Something went wrong: ${errorLine(ev.reason)}`);
  show($("global-error"));
});
route();
