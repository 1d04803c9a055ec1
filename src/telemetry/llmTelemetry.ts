/**
 * The rate-gateway's view of one LLM call: the `chat {model}` span around the
 * provider call (one LLM call = one span; the SDK's own span is off) and the LLM
 * series (calls, tokens, cost, latency), plus the gateway's rate-limit admission
 * as `rate_limit.wait` (a span only when the call actually waited or was refused).
 */
import { context, SpanKind, trace } from "@opentelemetry/api";
import { RateLimitedError } from "../errors";
import type { PriceTable } from "../llm/pricing";
import type { CompleteRequest, CompleteResponse } from "../contracts";
import type { LlmLabels, Metrics } from "./metrics";
import { Attr, errorTypeOf, inSpan, markFailed, PROVIDER_NAME, tracer, traceparentOf } from "./spans";

/** Waits shorter than this are admissions (a bucket round trip), not waits: no span for them (the histogram still counts them). */
const MIN_WAIT_SPAN_MS = 5;

function labelsOf(req: CompleteRequest): LlmLabels {
  return { agent: req.agent, prompt_version: req.promptVersion, model: req.model };
}

function taskAttributes(req: CompleteRequest) {
  return {
    [Attr.AGENT_NAME]: req.agent,
    [Attr.CONVERSATION_ID]: req.taskId,
    [Attr.TASK_ID]: req.taskId,
    [Attr.STEP]: req.step,
    [Attr.PROMPT_VERSION]: req.promptVersion,
    [Attr.TIER]: req.tier,
  };
}

function refusalSource(err: RateLimitedError): "gateway" | "provider" {
  return (err.data as { source?: unknown } | undefined)?.source === "provider" ? "provider" : "gateway";
}

export class LlmTelemetry {
  constructor(
    private readonly metrics: Metrics,
    private readonly prices: PriceTable,
  ) {}

  /** Runs the gateway's rate-limit admission; records how long it waited, and a refusal. */
  async admission<T>(req: CompleteRequest, acquire: () => Promise<T>): Promise<T> {
    const labels = labelsOf(req);
    const startTime = Date.now();
    const started = performance.now();
    let refused: unknown;
    try {
      return await acquire();
    } catch (err) {
      refused = err;
      throw err;
    } finally {
      const waitedMs = performance.now() - started;
      this.metrics.rateLimitWait(labels, "gateway_queue", waitedMs / 1000);
      if (refused instanceof RateLimitedError) this.metrics.rateLimitRefused(labels, "gateway");
      if (waitedMs >= MIN_WAIT_SPAN_MS || refused !== undefined) {
        const span = tracer().startSpan(
          "rate_limit.wait",
          {
            kind: SpanKind.INTERNAL,
            startTime,
            attributes: { ...taskAttributes(req), [Attr.RATE_LIMIT_STAGE]: "gateway_queue", [Attr.REQUEST_MODEL]: req.model },
          },
          context.active(),
        );
        const scope = (refused as { data?: { scope?: unknown } } | undefined)?.data?.scope;
        if (typeof scope === "string") span.setAttribute(Attr.RATE_LIMIT_SCOPE, scope);
        if (refused !== undefined) markFailed(span, errorTypeOf(refused), refused instanceof Error ? refused.message : undefined);
        span.end(startTime + waitedMs);
      }
    }
  }

  /**
   * Runs the provider call inside `chat {model}` and records the call's series. The answer
   * carries the span's `traceparent`: the tools this turn asks for become its children.
   */
  call<R extends CompleteResponse>(req: CompleteRequest, provider: () => Promise<R>): Promise<R> {
    const labels = labelsOf(req);
    const attributes = {
      [Attr.OPERATION]: "chat",
      [Attr.PROVIDER]: PROVIDER_NAME,
      [Attr.REQUEST_MODEL]: req.model,
      [Attr.REQUEST_MAX_TOKENS]: req.maxTokens,
      ...taskAttributes(req),
    };
    return inSpan(`chat ${req.model}`, { kind: SpanKind.CLIENT, attributes }, undefined, async (span) => {
      const started = performance.now();
      let r: R;
      try {
        r = await provider();
      } catch (err) {
        const seconds = (performance.now() - started) / 1000;
        if (err instanceof RateLimitedError) {
          this.metrics.llmCall(labels, "rate_limited", seconds);
          this.metrics.rateLimitRefused(labels, refusalSource(err));
        } else {
          this.metrics.llmCall(labels, "error", seconds);
        }
        throw err;
      }
      const seconds = (performance.now() - started) / 1000;
      const u = r.usage;
      span.setAttributes({
        [Attr.RESPONSE_MODEL]: r.model,
        [Attr.RESPONSE_ID]: r.id,
        [Attr.FINISH_REASONS]: r.stop_reason === null ? [] : [r.stop_reason],
        [Attr.INPUT_TOKENS]: u.input_tokens,
        [Attr.OUTPUT_TOKENS]: u.output_tokens,
        [Attr.CACHE_READ_TOKENS]: u.cache_read_input_tokens,
        [Attr.CACHE_CREATION_TOKENS]: u.cache_creation_input_tokens,
      });
      this.metrics.llmCall(labels, "ok", seconds, { usage: u, costUsd: this.prices.cost(r.model, u) });
      const traceparent = traceparentOf(trace.setSpan(context.active(), span));
      return traceparent === undefined ? r : { ...r, traceparent };
    });
  }
}
