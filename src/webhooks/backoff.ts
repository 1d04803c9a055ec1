/**
 * When a failed delivery is tried again, and when it stops being tried: the
 * wait doubles from `baseMs` up to `maxMs` (1 s, 2 s, 4 s … 10 min by
 * default), stretched by up to a quarter at random so that deliveries failed
 * by one outage do not all come back at once; the delivery gives up after
 * `maxAttempts` attempts, or when the next one would fall past `maxAgeMs`
 * from the event (24 h by default).
 */
export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
  maxAttempts: number;
  maxAgeMs: number;
}

/** The wait after failed attempt `attempt` (counted from 1): never less than the doubling, never more than `maxMs`. */
export function webhookRetryDelayMs(attempt: number, policy: Pick<RetryPolicy, "baseMs" | "maxMs">, random: () => number = Math.random): number {
  const doubling = policy.baseMs * 2 ** Math.min(40, Math.max(0, attempt - 1));
  return Math.round(Math.min(policy.maxMs, doubling * (1 + random() / 4)));
}

export type NextStep = { state: "pending"; retry_in_ms: number } | { state: "failed" };

/**
 * After failed attempt `attempt` of an event created at `createdAtMs`: the next attempt's wait, or
 * `failed` when the attempts are spent or the next one would come too late.
 */
export function afterFailure(attempt: number, createdAtMs: number, nowMs: number, policy: RetryPolicy, random: () => number = Math.random): NextStep {
  if (attempt >= policy.maxAttempts) return { state: "failed" };
  const delay = webhookRetryDelayMs(attempt, policy, random);
  if (nowMs + delay > createdAtMs + policy.maxAgeMs) return { state: "failed" };
  return { state: "pending", retry_in_ms: delay };
}
