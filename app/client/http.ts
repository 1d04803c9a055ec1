/**
 * The client commands' one way to the REST API: Node's fetch, the bearer key,
 * and the API's answers sorted into three outcomes the commands map to exit
 * codes: an answer (2xx), an API error (its `{"error": {type, message}}`), or
 * no answer at all (nothing listening, DNS, a timeout).
 */

/** The API answered with a 4xx or 5xx. `type` and `message` are the error body's, or made up from the status when there is none. */
export class ApiError extends Error {
  constructor(
    public readonly status: number,
    public readonly type: string,
    message: string,
    public readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** No answer from the API: the request never got one (refused, unresolvable, reset, timed out). */
export class ConnectError extends Error {
  constructor(
    public readonly url: string,
    public readonly reason: string,
  ) {
    super(`cannot connect to ${url}: ${reason}`);
    this.name = "ConnectError";
  }
}

/** A 2xx answer: the parsed body, and its text as sent (what `--json` prints). */
export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
  text: string;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  /** The API's base address (`http://host:port`, a path prefix allowed). */
  url: string;
  /** Sent as `Authorization: Bearer <key>`; none without. */
  apiKey?: string | undefined;
  fetch?: Fetch;
  /** A request that has no answer after this long is a ConnectError. @default 30000 */
  timeoutMs?: number;
}

export class ApiClient {
  readonly url: string;
  private readonly apiKey: string | undefined;
  private readonly fetch: Fetch;
  private readonly timeoutMs: number;

  constructor(opts: ApiClientOptions) {
    this.url = opts.url.replace(/\/+$/, "");
    this.apiKey = opts.apiKey;
    this.fetch = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  get<T = unknown>(path: string, opts: RequestOptions = {}): Promise<ApiAnswer<T>> {
    return this.request<T>("GET", path, opts);
  }

  post<T = unknown>(path: string, body: unknown, opts: RequestOptions = {}): Promise<ApiAnswer<T>> {
    return this.request<T>("POST", path, { ...opts, body });
  }

  put<T = unknown>(path: string, body: unknown, opts: RequestOptions = {}): Promise<ApiAnswer<T>> {
    return this.request<T>("PUT", path, { ...opts, body });
  }

  delete<T = unknown>(path: string, opts: RequestOptions = {}): Promise<ApiAnswer<T>> {
    return this.request<T>("DELETE", path, opts);
  }

  /**
   * A GET whose answer is read as it arrives (an event stream): the response once its head is in, for the
   * caller to read and to end with `signal`. No timeout of its own: a stream lives as long as it has to.
   */
  async stream(path: string, headers: Record<string, string>, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const all: Record<string, string> = { ...headers };
    if (this.apiKey !== undefined) all.Authorization = `Bearer ${this.apiKey}`;
    let res: Response;
    try {
      res = await this.fetch(`${this.url}${path}`, { method: "GET", headers: all, signal });
    } catch (err) {
      throw new ConnectError(this.url, reasonOf(err, 0));
    }
    if (res.ok && res.body) return res.body;
    let text = "";
    try {
      text = await res.text();
    } catch (err) {
      throw new ConnectError(this.url, reasonOf(err, 0));
    }
    throw apiErrorOf(res, parseJson(text), text);
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<ApiAnswer<T>> {
    const url = `${this.url}${path}${queryString(opts.query)}`;
    const headers: Record<string, string> = { Accept: "application/json", ...opts.headers };
    if (this.apiKey !== undefined) headers.Authorization = `Bearer ${this.apiKey}`;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let res: Response;
    let text: string;
    try {
      res = await this.fetch(url, {
        method,
        headers,
        ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw new ConnectError(this.url, reasonOf(err, this.timeoutMs));
    }
    const body = parseJson(text);
    if (res.ok) return { status: res.status, body: body as T, text };
    throw apiErrorOf(res, body, text);
  }
}

/** `/v1/tasks/<id>`-style paths: each segment escaped, so an id can never reach another route. */
export const pathOf = (...segments: string[]): string => segments.map((s, i) => (i === 0 ? s : encodeURIComponent(s))).join("/");

function queryString(query: RequestOptions["query"]): string {
  const entries = Object.entries(query ?? {}).filter((e): e is [string, string | number] => e[1] !== undefined);
  return entries.length === 0 ? "" : `?${new URLSearchParams(entries.map(([k, v]): [string, string] => [k, String(v)])).toString()}`;
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function apiErrorOf(res: Response, body: unknown, text: string): ApiError {
  const e = (body as { error?: { type?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (e && typeof e.type === "string" && typeof e.message === "string") {
    const details = typeof e.details === "object" && e.details !== null ? (e.details as Record<string, unknown>) : undefined;
    return new ApiError(res.status, e.type, e.message, details);
  }
  // Not Clawfleet's error body (a proxy's page, say): the status, and the start of what came.
  const snippet = text.trim().replace(/\s+/g, " ").slice(0, 200);
  return new ApiError(res.status, `http_${res.status}`, `${res.statusText || "error"}${snippet ? `: ${snippet}` : ""}`);
}

/** Why fetch got no answer, from undici's error and its cause. */
function reasonOf(err: unknown, timeoutMs: number): string {
  const e = err as { name?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  if (e.name === "AbortError") return "the request was aborted";
  if (e.name === "TimeoutError") return `no answer within ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`}`;
  // undici's "fetch failed" says nothing; its cause does ("connect ECONNREFUSED 127.0.0.1:3000"), or at least its code.
  if (typeof e.cause?.message === "string" && e.cause.message !== "") return e.cause.message;
  if (typeof e.cause?.code === "string") return e.cause.code;
  return typeof e.message === "string" ? e.message : String(err);
}
