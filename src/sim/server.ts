/**
 * The simulated Anthropic model: a node:http server that speaks enough of the
 * Messages API for the official SDK. Requests pass the stages the real API
 * applies, in its order: route, authenticate, read and validate the body, admit
 * against the rate limits, then answer (after the configured latency, or with an
 * injected failure); `stream: true` gets the same answer as server-sent events
 * (src/sim/stream.ts).
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { resolveSimOptions, type ResolvedSimOptions, type SimOptions } from "./options";
import { fitToMaxTokens, selectPolicy, type SimTurn } from "./policy";
import { genericRoute } from "./policies/generic";
import { SimRateLimiter } from "./ratelimit";
import { DrawSequence } from "./random";
import { CountTokensRequestSchema, MessagesRequestSchema, parseRequest, type MessagesRequest } from "./request";
import { RequestLog, type SimRequestRecord } from "./requestLog";
import { StatsCounter, type SimStats } from "./stats";
import { StreamedAnswer, writeStream, type SimMessage } from "./stream";
import { estimateInputTokens } from "./tokens";

export interface SimServer {
  /** Base URL for the SDK's `baseURL`, e.g. `http://127.0.0.1:41234`. */
  url: string;
  port: number;
  stats(): SimStats;
  /** The `/v1/messages` requests received, oldest first (also `GET /_sim/requests`). */
  requests(): SimRequestRecord[];
  /** Zeroes the counters and the request log, refills the rate-limit buckets and restarts the seeded sequences. */
  reset(): void;
  close(): Promise<void>;
}

type ApiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "api_error"
  | "overloaded_error";

const STATUS_OF: Record<ApiErrorType, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
};

class ApiError extends Error {
  constructor(
    readonly type: ApiErrorType,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Share of injected failures answered 529 overloaded (the rest are 500 api_error), matching what clients mostly meet. */
const OVERLOADED_SHARE = 2 / 3;
const SEQ_JITTER = 1;
const SEQ_FAILURE = 2;

const MODELS = [
  { id: "claude-opus-4-5", display_name: "Claude Opus 4.5", created_at: "2025-11-24T00:00:00Z" },
  { id: "claude-sonnet-4-5", display_name: "Claude Sonnet 4.5", created_at: "2025-09-29T00:00:00Z" },
  { id: "claude-haiku-4-5", display_name: "Claude Haiku 4.5", created_at: "2025-10-15T00:00:00Z" },
];

const hexId = (prefix: string) => `${prefix}${randomBytes(12).toString("hex")}`;

export async function startSimServer(opts: SimOptions = {}): Promise<SimServer> {
  const options = resolveSimOptions(opts);
  const sim = new Simulator(options);
  const server = http.createServer((req, res) => {
    sim.handle(req, res).catch((err: unknown) => {
      // Only reached if writing the response itself failed; the socket is beyond saving.
      res.destroy(err instanceof Error ? err : undefined);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`,
    port,
    stats: () => sim.stats.snapshot(),
    requests: () => sim.requests.snapshot(),
    reset: () => sim.reset(),
    close: () =>
      (closing ??= new Promise<void>((resolve, reject) => {
        sim.shutdown.abort();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      })),
  };
}

class Simulator {
  readonly stats = new StatsCounter();
  readonly requests = new RequestLog();
  readonly shutdown = new AbortController();
  private readonly limiter: SimRateLimiter;
  private readonly jitter: DrawSequence;
  private readonly failures: DrawSequence;

  constructor(private readonly opts: ResolvedSimOptions) {
    this.limiter = new SimRateLimiter({
      requests: opts.requestsPerMinute,
      inputTokens: opts.inputTokensPerMinute,
      outputTokens: opts.outputTokensPerMinute,
      windowMs: opts.limitWindowMs,
    });
    this.jitter = new DrawSequence(opts.seed, SEQ_JITTER);
    this.failures = new DrawSequence(opts.seed, SEQ_FAILURE);
  }

  reset(): void {
    this.stats.reset();
    this.requests.reset();
    this.limiter.reset();
    this.jitter.reset();
    this.failures.reset();
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const arrivedAt = Date.now();
    res.setHeader("request-id", hexId("req_"));
    const path = new URL(req.url ?? "/", "http://sim").pathname;
    if (path.startsWith("/_sim/")) return this.control(req.method ?? "GET", path, res);

    this.stats.request();
    let status: number;
    let headers: Record<string, string> = {};
    let body: unknown;
    try {
      [headers, body] = await this.api(req, res, path, arrivedAt);
      status = 200;
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError("api_error", "Internal server error");
      status = STATUS_OF[e.type];
      headers = e.headers;
      body = { type: "error", error: { type: e.type, message: e.message } };
      // The rest of an oversized upload is not worth reading.
      if (e.type === "request_too_large") headers = { ...headers, connection: "close" };
    }
    // A client that hung up gets nothing, and is not counted as answered.
    if (res.destroyed) return;
    this.stats.status(status);
    if (body instanceof StreamedAnswer) return writeStream(res, headers, body, this.shutdown.signal);
    send(res, status, body, headers);
  }

  private async api(req: http.IncomingMessage, res: http.ServerResponse, path: string, arrivedAt: number): Promise<[Record<string, string>, unknown]> {
    const route = `${req.method ?? "GET"} ${path}`;
    const known = route === "POST /v1/messages" || route === "POST /v1/messages/count_tokens" || route === "GET /v1/models" || route.startsWith("GET /v1/models/");
    if (!known) throw new ApiError("not_found_error", `Not found: ${route}`);
    if (this.opts.apiKey !== undefined && presentedKey(req) !== this.opts.apiKey) throw new ApiError("authentication_error", "invalid x-api-key");

    if (route === "GET /v1/models") {
      return [{}, { data: MODELS.map((m) => ({ type: "model", ...m })), has_more: false, first_id: MODELS[0]?.id ?? null, last_id: MODELS.at(-1)?.id ?? null }];
    }
    if (route.startsWith("GET /v1/models/")) {
      // Any model name is served, so any model exists.
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      const known = MODELS.find((m) => m.id === id);
      return [{}, { type: "model", id, display_name: known?.display_name ?? id, created_at: known?.created_at ?? "2025-01-01T00:00:00Z" }];
    }

    const raw = await this.readJson(req);
    if (route === "POST /v1/messages/count_tokens") {
      const parsed = parseRequest(CountTokensRequestSchema, raw);
      if (!parsed.ok) throw new ApiError("invalid_request_error", parsed.message);
      return [{}, { input_tokens: estimateInputTokens(parsed.value) }];
    }
    const parsed = parseRequest(MessagesRequestSchema, raw);
    if (!parsed.ok) throw new ApiError("invalid_request_error", parsed.message);
    return this.messages(parsed.value, arrivedAt, res);
  }

  private async messages(r: MessagesRequest, arrivedAt: number, res: http.ServerResponse): Promise<[Record<string, string>, unknown]> {
    this.stats.model(r.model);
    // Logged at arrival, before the body was read and validated: when the provider got it.
    const logged = this.requests.record(r, arrivedAt);
    // A client that hangs up before its answer (its caller aborted the call) is noted, with when the model saw it go.
    res.once("close", () => {
      if (!res.writableFinished) logged.aborted_at = Date.now();
    });

    const inputTokens = estimateInputTokens(r);
    const admission = this.limiter.admit(r.model, inputTokens, r.max_tokens);
    logged.admitted = admission.ok;
    if (!admission.ok) {
      throw new ApiError("rate_limit_error", admission.message, {
        ...this.limiter.headers(r.model),
        "retry-after": String(Math.max(1, Math.ceil(admission.retryAfterMs / 1000))),
        // The SDK prefers this one; it keeps shrunken benchmark windows precise.
        "retry-after-ms": String(Math.max(1, Math.ceil(admission.retryAfterMs))),
      });
    }

    try {
      const delay = this.opts.latencyMs + Math.floor(this.jitter.next() * this.opts.latencyJitterMs);
      const failure = this.failures.next();
      const failing = failure < this.opts.failureRate;
      // A streamed answer spends its latency between its deltas; a failure comes before any of it, as unstreamed.
      if (delay > 0 && (failing || r.stream !== true)) await sleep(delay, undefined, { signal: this.shutdown.signal });
      if (failing) {
        throw failure < this.opts.failureRate * OVERLOADED_SHARE
          ? new ApiError("overloaded_error", "Overloaded")
          : new ApiError("api_error", "Internal server error");
      }

      // The scripted policies first; the generic one plays every other agent.
      const route = selectPolicy(this.opts.policies, r) ?? genericRoute;
      let turn: SimTurn;
      try {
        turn = route.policy(r);
      } catch (err) {
        throw new ApiError("api_error", `the ${route.name} policy failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      const { turn: fitted, outputTokens } = fitToMaxTokens(turn, r.max_tokens);
      admission.settle(outputTokens);
      this.stats.usage(inputTokens, outputTokens);
      for (const block of fitted.content) if (block.type === "tool_use") this.stats.toolUse(block.name);
      const message: SimMessage = {
        id: hexId("msg_"),
        type: "message",
        role: "assistant",
        model: r.model,
        content: fitted.content,
        stop_reason: fitted.stop_reason,
        stop_sequence: null,
        usage: { input_tokens: inputTokens, output_tokens: outputTokens, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
      };
      return [this.limiter.headers(r.model), r.stream === true ? new StreamedAnswer(message, delay) : message];
    } finally {
      // No-op after a successful settle; otherwise nothing was produced.
      admission.settle(0);
    }
  }

  private async readJson(req: http.IncomingMessage): Promise<unknown> {
    const max = this.opts.maxBodyBytes;
    const tooLarge = () => new ApiError("request_too_large", `Request exceeds the maximum allowed number of bytes (${max}).`);
    if (Number(req.headers["content-length"] ?? 0) > max) throw tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > max) throw tooLarge();
      chunks.push(buf);
    }
    const text = Buffer.concat(chunks).toString("utf8");
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new ApiError("invalid_request_error", `There was an error parsing the body of your request: ${err instanceof Error ? err.message : "not JSON"}`);
    }
  }

  private control(method: string, path: string, res: http.ServerResponse): void {
    if (method === "GET" && path === "/_sim/stats") return send(res, 200, this.stats.snapshot());
    if (method === "GET" && path === "/_sim/requests") return send(res, 200, this.requests.snapshot());
    if (method === "POST" && path === "/_sim/reset") {
      this.reset();
      return send(res, 200, { reset: true });
    }
    send(res, 404, { type: "error", error: { type: "not_found_error", message: `Not found: ${method} ${path}` } });
  }
}

/** The API takes the key as `x-api-key` or as a bearer token; SDK 1.x sends the latter. */
function presentedKey(req: http.IncomingMessage): string | undefined {
  const header = req.headers["x-api-key"];
  if (typeof header === "string") return header;
  const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "");
  return bearer?.[1];
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
