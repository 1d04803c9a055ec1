/** The REST API's answers (their schemas are in `src/contracts/api.ts`), built from store records. */
import type { ErrorBody, ModelUsage, StepRecord, StepView, TaskRecord, TaskView, TaskWebhookView } from "../contracts";
import {
  ClawfleetError,
  errorBody,
  httpStatusOf,
  isTransportFailure,
  MalformedRequestError,
  PayloadTooLargeError,
  RouteNotFoundError,
  UnavailableError,
} from "../errors";

/** Per-model usage from the LLM checkpoints: what a tiered agent spent on each tier's model. */
export function usageByModel(steps: readonly StepRecord[]): Record<string, ModelUsage> {
  const out: Record<string, ModelUsage> = {};
  for (const s of steps) {
    if (s.kind !== "llm") continue;
    const m = (out[s.data.model] ??= { calls: 0, input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cost_usd: 0 });
    m.calls += 1;
    m.input_tokens += s.data.usage.input_tokens;
    m.output_tokens += s.data.usage.output_tokens;
    m.cache_read_input_tokens += s.data.usage.cache_read_input_tokens;
    m.cost_usd = Math.round((m.cost_usd + s.data.usage.cost_usd) * 1e8) / 1e8;
  }
  return out;
}

/** `steps`, when given, adds `usage.by_model`; `webhook`, the task's webhook delivery. */
export function taskView(t: TaskRecord, steps?: readonly StepRecord[], webhook?: TaskWebhookView): TaskView {
  return {
    id: t.id,
    agent: t.agent,
    status: t.status,
    priority: t.priority,
    input: t.input,
    metadata: t.metadata,
    result: t.result ?? null,
    error: t.error ?? null,
    attempts: t.attempts,
    steps: t.steps,
    usage: {
      input_tokens: t.usage.input_tokens,
      output_tokens: t.usage.output_tokens,
      cache_read_input_tokens: t.usage.cache_read_input_tokens,
      cost_usd: t.usage.cost_usd,
      ...(steps ? { by_model: usageByModel(steps) } : {}),
    },
    prompt_version: t.prompt_version,
    tenant: t.tenant,
    created_at: t.created_at,
    started_at: t.started_at,
    finished_at: t.finished_at,
    ...(t.cancelled_by !== undefined ? { cancelled_by: t.cancelled_by, cancel_reason: t.cancel_reason ?? null } : {}),
    budgets: t.budgets ?? null,
    budget_exhausted: t.budget_exhausted ?? null,
    ...(webhook !== undefined ? { webhook } : {}),
  };
}

export function stepView(s: StepRecord): StepView {
  if (s.kind === "llm") {
    return {
      step: s.step,
      kind: s.kind,
      model: s.data.model,
      tier: s.data.tier,
      stop_reason: s.data.stop_reason,
      usage: s.data.usage,
      content: s.data.content,
      duration_ms: s.data.duration_ms,
      ...(s.data.budget_exhausted !== undefined ? { budget_exhausted: s.data.budget_exhausted } : {}),
      created_at: s.created_at,
    };
  }
  return {
    step: s.step,
    kind: s.kind,
    tool: s.data.tool,
    tool_use_id: s.data.tool_use_id,
    input: s.data.input,
    output: s.data.output,
    ok: s.data.ok,
    duration_ms: s.data.duration_ms,
    created_at: s.created_at,
  };
}

interface HttpishError {
  status?: unknown;
  statusCode?: unknown;
  type?: unknown;
  code?: unknown;
  name?: unknown;
  message?: unknown;
  data?: unknown;
}

/**
 * Any error that reaches the HTTP layer, as a status and the one error body.
 * Body-parser and router errors are a client's fault and get their 4xx; only an
 * error Clawfleet does not know becomes a 500, with no internals in the message.
 */
export function httpError(err: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
  let e: unknown = err;
  if (!(err instanceof ClawfleetError)) {
    const h = (err ?? {}) as HttpishError;
    const status = Number(h.status ?? h.statusCode ?? h.code);
    if (h.type === "entity.too.large" || status === 413) {
      e = new PayloadTooLargeError("the request body is larger than 1 MiB", { limit_bytes: 1024 * 1024 });
    } else if (h.type === "encoding.unsupported" || (typeof h.code === "string" && h.code.startsWith("Z_"))) {
      // A Content-Encoding body-parser does not know, or a body that does not decode as the one named:
      // zlib's error, whose `Z_…` code moleculer-web passes on in place of body-parser's status.
      e = new MalformedRequestError(`the request body does not decode as its Content-Encoding${typeof h.message === "string" ? `: ${h.message}` : ""}`);
    } else if (h.type === "entity.parse.failed" || h.type === "charset.unsupported") {
      e = new MalformedRequestError(`the request body is not valid JSON${typeof h.message === "string" ? `: ${h.message}` : ""}`);
    } else if (h.type === "UNABLE_DECODE_PARAM") {
      e = new MalformedRequestError("the request path holds a broken percent-escape");
    } else if (status === 400) {
      e = new MalformedRequestError(`malformed request${typeof h.message === "string" ? `: ${h.message}` : ""}`);
    } else if (isTransportFailure(err)) {
      // The request may have been acted on (a task committed before the reply was lost): retried with the same
      // Idempotency-Key, it is answered as the first one was.
      e = new UnavailableError("a required service is not available; retry shortly", { retryAfter: 5 });
    } else if (h.name === "NotFoundError" || status === 404) {
      e = new RouteNotFoundError("no such route");
    }
  }
  const status = httpStatusOf(e);
  const headers: Record<string, string> = {};
  // RFC 9110: a 401 names the scheme that would be accepted.
  if (status === 401) headers["WWW-Authenticate"] = 'Bearer realm="clawfleet"';
  if (status === 429 || status === 503) {
    const data = (e as ClawfleetError).data as { retryAfter?: unknown } | undefined;
    const ra = Number(data?.retryAfter ?? 5);
    headers["Retry-After"] = String(Math.max(1, Math.ceil(ra)));
  }
  return { status, body: errorBody(e), headers };
}
