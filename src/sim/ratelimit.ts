/**
 * The provider's per-model limits as continuously refilling token buckets:
 * capacity is the per-window limit, refilled at limit/window per millisecond.
 * Output tokens are charged from `max_tokens` on admission and refunded down to
 * the actual output afterwards, as the real API estimates them.
 */

export type LimitName = "requests" | "input-tokens" | "output-tokens";

export interface LimitSettings {
  requests?: number | undefined;
  inputTokens?: number | undefined;
  outputTokens?: number | undefined;
  windowMs: number;
}

class TokenBucket {
  private level: number;
  private at: number;

  constructor(
    readonly capacity: number,
    private readonly refillPerMs: number,
    now: number,
  ) {
    this.level = capacity;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) this.level = Math.min(this.capacity, this.level + (now - this.at) * this.refillPerMs);
    this.at = Math.max(this.at, now);
  }

  /** Milliseconds until `n` tokens are available; Infinity when `n` exceeds the capacity. */
  waitFor(n: number, now: number): number {
    this.refill(now);
    if (n > this.capacity) return Infinity;
    return n <= this.level ? 0 : (n - this.level) / this.refillPerMs;
  }

  take(n: number, now: number): void {
    this.refill(now);
    this.level -= n;
  }

  give(n: number, now: number): void {
    this.refill(now);
    this.level = Math.min(this.capacity, this.level + n);
  }

  remaining(now: number): number {
    this.refill(now);
    return Math.max(0, Math.floor(this.level));
  }

  msUntilFull(now: number): number {
    this.refill(now);
    return (this.capacity - this.level) / this.refillPerMs;
  }
}

export type Admission =
  | {
      ok: true;
      /** Refunds the unused part of the `max_tokens` charge; call once with the output actually produced. */
      settle(outputTokens: number): void;
    }
  | { ok: false; limit: LimitName; retryAfterMs: number; message: string };

export class SimRateLimiter {
  private readonly byModel = new Map<string, Map<LimitName, TokenBucket>>();

  constructor(
    private readonly settings: LimitSettings,
    private readonly clock: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.settings.requests !== undefined || this.settings.inputTokens !== undefined || this.settings.outputTokens !== undefined;
  }

  /** All-or-nothing: a refused request charges no bucket. */
  admit(model: string, inputTokens: number, maxTokens: number): Admission {
    const buckets = this.bucketsOf(model);
    const now = this.clock();
    const needs: Array<[LimitName, number]> = [
      ["requests", 1],
      ["input-tokens", inputTokens],
      ["output-tokens", maxTokens],
    ];
    let worst: { limit: LimitName; wait: number; need: number } | undefined;
    for (const [limit, need] of needs) {
      const wait = buckets.get(limit)?.waitFor(need, now) ?? 0;
      if (wait > 0 && (!worst || wait > worst.wait)) worst = { limit, wait, need };
    }
    if (worst) {
      const cap = buckets.get(worst.limit)?.capacity ?? 0;
      if (worst.wait === Infinity) {
        const full = buckets.get(worst.limit)?.msUntilFull(now) ?? 0;
        return {
          ok: false,
          limit: worst.limit,
          retryAfterMs: Math.max(full, 1),
          message: `This request needs ${worst.need} ${worst.limit.replace("-", " ")}, more than the rate limit of ${cap} per minute for ${model}; it cannot be admitted as sent.`,
        };
      }
      return {
        ok: false,
        limit: worst.limit,
        retryAfterMs: worst.wait,
        message: `This request would exceed the rate limit for your organization of ${cap} ${worst.limit.replace("-", " ")} per minute for ${model}. Please retry after the time in the retry-after header.`,
      };
    }
    for (const [limit, need] of needs) buckets.get(limit)?.take(need, now);
    let settled = false;
    return {
      ok: true,
      settle: (outputTokens) => {
        if (settled) return;
        settled = true;
        const unused = maxTokens - outputTokens;
        if (unused > 0) buckets.get("output-tokens")?.give(unused, this.clock());
      },
    };
  }

  /** `anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}` for the configured limits. */
  headers(model: string): Record<string, string> {
    const now = this.clock();
    const out: Record<string, string> = {};
    for (const [limit, bucket] of this.bucketsOf(model)) {
      out[`anthropic-ratelimit-${limit}-limit`] = String(bucket.capacity);
      out[`anthropic-ratelimit-${limit}-remaining`] = String(bucket.remaining(now));
      out[`anthropic-ratelimit-${limit}-reset`] = new Date(now + Math.ceil(bucket.msUntilFull(now))).toISOString();
    }
    return out;
  }

  reset(): void {
    this.byModel.clear();
  }

  private bucketsOf(model: string): Map<LimitName, TokenBucket> {
    let buckets = this.byModel.get(model);
    if (!buckets) {
      const now = this.clock();
      const { windowMs } = this.settings;
      buckets = new Map();
      const limits: Array<[LimitName, number | undefined]> = [
        ["requests", this.settings.requests],
        ["input-tokens", this.settings.inputTokens],
        ["output-tokens", this.settings.outputTokens],
      ];
      for (const [name, limit] of limits) if (limit !== undefined) buckets.set(name, new TokenBucket(limit, limit / windowMs, now));
      this.byModel.set(model, buckets);
    }
    return buckets;
  }
}
