/**
 * Model calls that fail for a passing reason are retried inside the attempt, so
 * a task does not lose its slot (and its lease) to a hiccup: rate-limit
 * backpressure waits for the `retryAfter` the gateway named; provider errors back
 * off exponentially with jitter. Anything else ends the attempt.
 */
import { isRetryable, RateLimitedError } from "../errors";
import type { CompleteRequest, CompleteResponse, LlmClient } from "../llm/types";

export interface RetryPolicy {
  /** Provider errors retried before the attempt gives up. @default 4 */
  maxProviderRetries: number;
  /** First backoff. @default 500 */
  baseDelayMs: number;
  /** Longest single backoff. @default 8000 */
  maxDelayMs: number;
  /** Longest total wait on rate-limit backpressure before the attempt gives up. @default 300000 */
  maxRateLimitWaitMs: number;
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
): Promise<CompleteResponse> {
  const p = { ...DEFAULTS, ...policy };
  let providerFailures = 0;
  let waitedMs = 0;
  for (;;) {
    try {
      return await llm.complete(req);
    } catch (err) {
      if (signal.aborted) throw err;
      if (err instanceof RateLimitedError) {
        const retryAfterS = Number((err.data as { retryAfter?: unknown } | undefined)?.retryAfter ?? 1);
        const wait = Math.max(50, Math.min(p.maxDelayMs * 4, retryAfterS * 1000));
        if (waitedMs + wait > p.maxRateLimitWaitMs) throw err;
        waitedMs += wait;
        await sleep(wait, signal);
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
