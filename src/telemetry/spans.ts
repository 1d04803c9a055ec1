/**
 * Clawfleet's spans: their names and attributes (the OpenTelemetry GenAI semantic
 * conventions plus `clawfleet.*`), the W3C `traceparent` form in which a trace
 * context crosses what no OTel propagator sees (Moleculer meta, queue wake-ups,
 * the task row), and a helper that runs work inside a span.
 *
 * Only `@opentelemetry/api` is used here: without a registered SDK (tracing off)
 * every span is a no-op and a `traceparent` received is passed through unchanged.
 *
 * The trace of one task (see README, "Observability"):
 *
 *   invoke_agent {agent}          api: the submitting request; trace root, stored with the task
 *   ├─ invoke_agent {agent}       planner: one per attempt (clawfleet.attempt), resumed ones included
 *   │  ├─ rate_limit.wait         planner backoff on gateway backpressure, or the gateway's queue
 *   │  ├─ chat {model}            rate-gateway: one per LLM call
 *   │  │  └─ execute_tool {tool}  executor: a child of the model turn that asked for it
 *   …
 */
import {
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type SpanOptions,
  type Tracer,
} from "@opentelemetry/api";

export const TRACER_NAME = "clawfleet";

/** Attribute keys. GenAI ones follow the semantic conventions; the rest are Clawfleet's. */
export const Attr = {
  OPERATION: "gen_ai.operation.name",
  PROVIDER: "gen_ai.provider.name",
  AGENT_NAME: "gen_ai.agent.name",
  CONVERSATION_ID: "gen_ai.conversation.id",
  REQUEST_MODEL: "gen_ai.request.model",
  REQUEST_MAX_TOKENS: "gen_ai.request.max_tokens",
  RESPONSE_MODEL: "gen_ai.response.model",
  RESPONSE_ID: "gen_ai.response.id",
  FINISH_REASONS: "gen_ai.response.finish_reasons",
  INPUT_TOKENS: "gen_ai.usage.input_tokens",
  OUTPUT_TOKENS: "gen_ai.usage.output_tokens",
  CACHE_READ_TOKENS: "gen_ai.usage.cache_read.input_tokens",
  CACHE_CREATION_TOKENS: "gen_ai.usage.cache_creation.input_tokens",
  TOOL_NAME: "gen_ai.tool.name",
  TOOL_CALL_ID: "gen_ai.tool.call.id",
  TOOL_TYPE: "gen_ai.tool.type",
  ERROR_TYPE: "error.type",
  TASK_ID: "clawfleet.task.id",
  PROMPT_VERSION: "clawfleet.prompt_version",
  ATTEMPT: "clawfleet.attempt",
  STEP: "clawfleet.step",
  RESUMED_AT_STEP: "clawfleet.resumed_at_step",
  OUTCOME: "clawfleet.outcome",
  TIER: "clawfleet.tier",
  TOOL_INPUT_HASH: "clawfleet.tool.input_hash",
  TOOL_OUTPUT_BYTES: "clawfleet.tool.output_bytes",
  TOOL_IDEMPOTENCY_KEY: "clawfleet.tool.idempotency_key",
  RATE_LIMIT_STAGE: "clawfleet.rate_limit.stage",
  RATE_LIMIT_SOURCE: "clawfleet.rate_limit.source",
  RATE_LIMIT_SCOPE: "clawfleet.rate_limit.scope",
  TASK_CREATED: "clawfleet.task.created",
} as const;

export const PROVIDER_NAME = "anthropic";

export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

// version-traceid-spanid-flags; version ff is forbidden, later versions may append fields.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The `traceparent` of the span active in `ctx`; undefined when there is none (tracing off, no parent). */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** `base` with the remote parent a `traceparent` names; `base` itself for a missing or malformed one. */
export function contextFromTraceparent(traceparent: unknown, base: Context = ROOT_CONTEXT): Context {
  if (typeof traceparent !== "string") return base;
  const m = TRACEPARENT.exec(traceparent.trim().toLowerCase());
  if (!m || m[1] === "ff" || (m[1] === "00" && m[5] !== undefined)) return base;
  const spanContext = { traceId: m[2] as string, spanId: m[3] as string, traceFlags: parseInt(m[4] as string, 16) & 0xff, isRemote: true };
  return isSpanContextValid(spanContext) ? trace.setSpanContext(base, spanContext) : base;
}

/** The stable `type` of an error (Clawfleet's `errorType`, else its class name), for `error.type`. */
export function errorTypeOf(err: unknown): string {
  const t = (err as { errorType?: unknown } | null)?.errorType;
  if (typeof t === "string") return t;
  return err instanceof Error ? err.name : "_OTHER";
}

/**
 * Marks a span failed. Only the error's type and a cut message are recorded (no stack, no data):
 * error objects can carry request details, and spans leave the process.
 */
export function markFailed(span: Span, errorType: string, message?: string): void {
  span.setAttribute(Attr.ERROR_TYPE, errorType);
  span.setStatus({ code: SpanStatusCode.ERROR, ...(message !== undefined ? { message: message.slice(0, 200) } : {}) });
}

/**
 * Runs `fn` inside a new span (a child of `parent`, default the active context) and ends it.
 * A throw marks the span failed with the error's type and is rethrown.
 */
export async function inSpan<T>(name: string, options: SpanOptions, parent: Context | undefined, fn: (span: Span) => Promise<T>): Promise<T> {
  const base = parent ?? context.active();
  const span = tracer().startSpan(name, options, base);
  try {
    return await context.with(trace.setSpan(base, span), () => fn(span));
  } catch (err) {
    markFailed(span, errorTypeOf(err), err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    span.end();
  }
}
