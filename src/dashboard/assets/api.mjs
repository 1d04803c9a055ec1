// The dashboard's one way to the REST API: the public /v1 routes, with the operator's key when one is set.

const KEY = "clawfleet.apiKey";
const unauthenticatedListeners = new Set();

/** An answer that is not a 2xx, as the API described it (`{"error": {type, message, details?}}`). */
export class ApiError extends Error {
  constructor(status, type, message, details) {
    super(message);
    this.status = status;
    this.type = type;
    this.details = details;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) ?? "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** Called with the error whenever the API answers 401: the page then asks for a key. */
export function onUnauthenticated(listener) {
  unauthenticatedListeners.add(listener);
}

export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** A JSON call; resolves with the answer's body, rejects with an ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: "no-store" });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", `the request did not reach the node: ${err && err.message ? err.message : err}`);
  }
  const text = await res.text();
  let parsed;
  try {
    parsed = text === "" ? null : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const e = parsed && typeof parsed === "object" && parsed.error ? parsed.error : undefined;
    const err = new ApiError(res.status, e ? e.type : `http_${res.status}`, e ? e.message : text.slice(0, 500) || res.statusText, e ? e.details : undefined);
    if (res.status === 401) for (const l of unauthenticatedListeners) l(err);
    throw err;
  }
  if (parsed === undefined) throw new ApiError(res.status, "bad_response", `the answer to ${method} ${path} is not JSON`);
  return parsed;
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Runs `tick` now and then every `ms` after the previous run ended, until `signal` aborts. */
export function poll(tick, ms, signal) {
  let timer;
  const run = async () => {
    if (signal.aborted) return;
    try {
      await tick();
    } finally {
      if (!signal.aborted) timer = setTimeout(run, ms);
    }
  };
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  void run();
}
