/**
 * Model calls that fail for a passing reason are retried inside the attempt, so
 * a task does not lose its slot (and its lease) to a hiccup: rate-limit
 * backpressure waits for the `retryAfter` the gateway named; provider errors back
 * off exponentially with jitter. Anything else ends the attempt.
 */
import { SpanKind } from "@opentelemetry/api";
import { isRetryable, RateLimitedError } from "../errors";
import type { CompleteRequest, CompleteResponse } from "../contracts";
import type { LlmClient } from "../llm/client";
import { Attr, inSpan } from "../telemetry/spans";

export interface RetryPolicy {
  /** Provider errors retried before the attempt gives up. @default 4 */
  maxProviderRetries: number;
  /** First backoff. @default 500 */
  baseDelayMs: number;
  /** Longest single backoff. @default 8000 */
  maxDelayMs: number;
  /**
   * Longest total wait on rate-limit backpressure before the attempt gives up: the back-offs after refusals and
   * the time each refused call spent queued at the gateway before it was refused. @default 300000
   */
  maxRateLimitWaitMs: number;
  /** Told each backpressure wait once it is over (the planner's rate-limit wait metric). */
  onRateLimitWait?(seconds: number, req: CompleteRequest): void;
}

const DEFAULTS: RetryPolicy = { maxProviderRetries: 4, baseDelayMs: 500, maxDelayMs: 8000, maxRateLimitWaitMs: 300_000 };

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export async function callModelWithRetry(
  llm: LlmClient,
  req: CompleteRequest,
  signal: AbortSignal,
  policy: Partial<RetryPolicy> = {},
  callSignal?: AbortSignal,
): Promise<CompleteResponse> {
  const p = { ...DEFAULTS, ...policy };
  let providerFailures = 0;
  let waitedMs = 0;
  for (;;) {
    const asked = performance.now();
    try {
      return await llm.complete(req, callSignal);
    } catch (err) {
      // A call cut short is not made again, whatever the reason it was cut with.
      if (signal.aborted || callSignal?.aborted) throw err;
      if (err instanceof RateLimitedError) {
        // A refusal may come after a long wait in the gateway's queue (CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS): that
        // time counts too, or a turn could wait many times the allowance, one gateway wait at a time.
        waitedMs += performance.now() - asked;
        const retryAfterS = Number((err.data as { retryAfter?: unknown } | undefined)?.retryAfter ?? 1);
        const wait = Math.max(50, Math.min(p.maxDelayMs * 4, retryAfterS * 1000));
        if (waitedMs + wait > p.maxRateLimitWaitMs) throw err;
        waitedMs += wait;
        const waitStarted = performance.now();
        await rateLimitWait(req, err, wait, signal);
        p.onRateLimitWait?.((performance.now() - waitStarted) / 1000, req);
        if (signal.aborted) throw signal.reason;
        continue;
      }
      if (!isRetryable(err) || providerFailures >= p.maxProviderRetries) throw err;
      const backoff = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** providerFailures);
      providerFailures++;
      await sleep(backoff / 2 + Math.random() * (backoff / 2), signal);
      if (signal.aborted) throw signal.reason;
    }
  }
}

/** The backoff after a refusal, as a `rate_limit.wait` span of the task's trace. */
function rateLimitWait(req: CompleteRequest, err: RateLimitedError, waitMs: number, signal: AbortSignal): Promise<void> {
  const source = (err.data as { source?: unknown } | undefined)?.source;
  return inSpan(
    "rate_limit.wait",
    {
      kind: SpanKind.INTERNAL,
      attributes: {
        [Attr.RATE_LIMIT_STAGE]: "planner_backoff",
        [Attr.RATE_LIMIT_SOURCE]: typeof source === "string" ? source : "gateway",
        [Attr.REQUEST_MODEL]: req.model,
        [Attr.TASK_ID]: req.taskId,
        [Attr.STEP]: req.step,
        [Attr.PROMPT_VERSION]: req.promptVersion,
        "clawfleet.rate_limit.wait_ms": waitMs,
      },
    },
    undefined,
    () => sleep(waitMs, signal),
  );
}
