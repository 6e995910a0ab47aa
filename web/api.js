// The API client the page uses: every request carries the stored key; errors keep the API's
// `{ error: { code, message, param } }`.

const KEY_ITEM = "trainhub.apiKey";

export const keyStore = {
  get() {
    try {
      return localStorage.getItem(KEY_ITEM) ?? "";
    } catch {
      return "";
    }
  },
  set(key) {
    localStorage.setItem(KEY_ITEM, key);
  },
  clear() {
    localStorage.removeItem(KEY_ITEM);
  },
};

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const e = body && typeof body === "object" && body.error ? body.error : null;
    super(e?.message ?? fallback ?? `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = e?.code ?? (status === 0 ? "network_error" : `http_${status}`);
    this.param = e?.param ?? null;
  }
}

let unauthorizedHandler = () => {};
/** Called with the ApiError whenever the API answers 401. */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

export function authHeaders(key = keyStore.get()) {
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Turns a non-ok Response into an ApiError (and reports a 401). */
export async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  const err = new ApiError(res.status, body, res.statusText);
  if (res.status === 401) unauthorizedHandler(err);
  return err;
}

/**
 * `api(path, { method, json, body, headers, signal, key, raw })`: JSON in and out by default; with
 * `raw`, the Response itself (when ok).
 */
export async function api(path, opts = {}) {
  const headers = { ...authHeaders(opts.key), ...(opts.headers ?? {}) };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  let res;
  try {
    res = await fetch(path, { method: opts.method ?? "GET", headers, body, signal: opts.signal, cache: "no-store" });
  } catch (e) {
    if (e?.name === "AbortError") throw e;
    throw new ApiError(0, null, `The API could not be reached (${e?.message ?? e}).`);
  }
  if (!res.ok) throw await errorOf(res);
  if (opts.raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** The file name a download should get, from Content-Disposition. */
export function fileNameOf(res, fallback) {
  const cd = res.headers.get("content-disposition") ?? "";
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  return m ? decodeURIComponent(m[1]) : fallback;
}
