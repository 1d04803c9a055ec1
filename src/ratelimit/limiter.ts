/**
 * The gateway's rate limiter: reserve an estimate before a provider call, settle
 * to actual usage after it (invariant 5, docs/invariants.md).
 *
 *   const permit = await limiter.acquire(call);   // waits by priority, or RateLimitedError with retryAfter
 *   … provider call …
 *   await permit.settle(usage, headers);          // or permit.failed(err)
 *
 * A call reserves 1 request, its estimated input tokens and `max_tokens` of
 * output. Settling charges or refunds the difference; the provider's
 * `anthropic-ratelimit-*-remaining` headers cap the local view and a provider 429
 * drains the scope, cluster-wide, until the time it names. Models without
 * configured limits take the limits the provider reports in its headers.
 */
import type { Priority } from "../contracts";
import { ProviderRequestError, RateLimitedError, messageOf } from "../errors";
import type { MessageParam, ToolSpec, LlmUsage } from "../contracts";
import type { Buckets } from "./buckets";
import { InputTokenEstimator } from "./estimator";
import { bucketSpecs, limitOf, resolveScope, type BucketSpec, type LimitSpec, type RateLimitTable, type Triple } from "./limits";
import { ScopeWaitQueue } from "./waitQueue";

export interface RateLimiterOptions {
  limits: RateLimitTable;
  /** Length of the limits' "minute". @default 60000 */
  windowMs: number;
  /** Longest a call waits for capacity before it gets `RateLimitedError`. @default 2000 */
  maxWaitMs: number;
  /**
   * How far ahead a call's slot may be booked. Long enough to outlast timer lateness and a Redis round
   * trip (so a late wake-up loses no capacity), short enough that a stalled event loop cannot release
   * many booked calls at once. @default 10
   */
  horizonMs?: number;
  logger?: { warn(obj: Record<string, unknown>, msg: string): void };
  random?: () => number;
}

/** What the limiter needs to know of a call (a `CompleteRequest` fits). */
export interface LimitedCall {
  model: string;
  tier: string;
  priority: Priority;
  maxTokens: number;
  system: string;
  messages: MessageParam[];
  tools: ToolSpec[];
}

/** The provider's rate-limit headers, as far as they were sent. */
export interface ProviderLimitHeaders {
  retryAfterMs?: number | undefined;
  requestsRemaining?: number | undefined;
  inputTokensRemaining?: number | undefined;
  outputTokensRemaining?: number | undefined;
  requestsLimit?: number | undefined;
  inputTokensLimit?: number | undefined;
  outputTokensLimit?: number | undefined;
}

const LIMIT_NAMES = ["requests", "input tokens", "output tokens"] as const;

export class RateLimiter {
  readonly estimator = new InputTokenEstimator();
  private readonly queues = new Map<string, ScopeWaitQueue>();
  /** Limits the provider reported, per model; they tighten configured ones and stand in for absent ones. */
  private readonly learned = new Map<string, LimitSpec>();

  constructor(
    private readonly buckets: Buckets,
    private readonly opts: RateLimiterOptions,
  ) {}

  /** Waits for capacity (by priority) and reserves it; `RateLimitedError` (retryable, `retryAfter` s) after `maxWaitMs`. */
  async acquire(call: LimitedCall): Promise<Permit> {
    const scope = resolveScope(this.opts.limits, call.model, call.tier);
    const limits = tighten(scope.limits, this.learned.get(call.model));
    const specs = bucketSpecs(limits, this.opts.windowMs);
    const estimate = this.estimator.estimate(call.model, call);
    const need: Triple<number> = [1, estimate.tokens, call.maxTokens];
    for (const i of [0, 1, 2] as const) {
      const limit = limitOf(limits, i);
      if (limit !== undefined && need[i] > limit) {
        throw new ProviderRequestError(
          `this call needs ${need[i]} ${LIMIT_NAMES[i]}, more than the limit of ${limit} per window for ${scope.key}; it can never be admitted`,
          { scope: scope.key, need: need[i], limit },
        );
      }
    }
    await this.queueOf(scope.key).enter(specs, need, call.priority);
    return new Permit(this, scope.key, call.model, specs, need, estimate.raw);
  }

  /** Callers waiting in this process, per scope (for metrics and tests). */
  waiting(): Record<string, number> {
    return Object.fromEntries([...this.queues].map(([k, q]) => [k, q.length]));
  }

  private queueOf(scope: string): ScopeWaitQueue {
    let q = this.queues.get(scope);
    if (!q) {
      q = new ScopeWaitQueue(scope, this.buckets, {
        maxWaitMs: this.opts.maxWaitMs,
        horizonMs: this.opts.horizonMs ?? 10,
        ...(this.opts.random ? { random: this.opts.random } : {}),
      });
      this.queues.set(scope, q);
    }
    return q;
  }

  /** @internal Permit's way back in. */
  async apply(scope: string, specs: Triple<BucketSpec>, op: { delta: Triple<number>; remaining?: Triple<number | undefined> } | { penaltyMs: number }): Promise<void> {
    try {
      if ("penaltyMs" in op) await this.buckets.penalize(scope, specs, op.penaltyMs);
      else await this.buckets.settle(scope, specs, op.delta, op.remaining);
    } catch (err) {
      // A lost correction leaves the bucket off by one call's estimate; the next header or 429 corrects it.
      this.opts.logger?.warn({ event: "ratelimit.settle_failed", scope, err: messageOf(err) }, "could not settle a rate-limit reservation");
    }
  }

  /** @internal */
  learn(model: string, h: ProviderLimitHeaders): void {
    if (h.requestsLimit === undefined && h.inputTokensLimit === undefined && h.outputTokensLimit === undefined) return;
    this.learned.set(model, { rpm: h.requestsLimit, itpm: h.inputTokensLimit, otpm: h.outputTokensLimit });
  }
}

function tighten(configured: LimitSpec | undefined, reported: LimitSpec | undefined): LimitSpec | undefined {
  if (!reported) return configured;
  if (!configured) return reported;
  const min = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
  return { rpm: min(configured.rpm, reported.rpm), itpm: min(configured.itpm, reported.itpm), otpm: min(configured.otpm, reported.otpm) };
}

/** One admitted call's reservation, to be settled exactly once. */
export class Permit {
  private done = false;

  constructor(
    private readonly limiter: RateLimiter,
    readonly scope: string,
    readonly model: string,
    private readonly specs: Triple<BucketSpec>,
    /** What was reserved: 1 request, estimated input tokens, `max_tokens`. */
    readonly reserved: Triple<number>,
    private readonly rawEstimate: number,
  ) {}

  /** Charges or refunds the difference to actual usage; the provider's headers cap the local view. */
  async settle(usage: LlmUsage, headers: ProviderLimitHeaders = {}): Promise<void> {
    if (this.done) return;
    this.done = true;
    // The provider counts uncached input and cache writes against the input limit; cache reads are free of it.
    const input = usage.input_tokens + usage.cache_creation_input_tokens;
    this.limiter.estimator.observe(this.model, this.rawEstimate, input);
    this.limiter.learn(this.model, headers);
    await this.limiter.apply(this.scope, this.specs, {
      delta: [0, input - this.reserved[1], usage.output_tokens - this.reserved[2]],
      remaining: [headers.requestsRemaining, headers.inputTokensRemaining, headers.outputTokensRemaining],
    });
  }

  /**
   * The call failed. A provider 429 drains the scope until its retry-after; a
   * refused request (4xx) counted nothing; any other failure produced no output.
   */
  async failed(err: unknown): Promise<void> {
    if (this.done) return;
    this.done = true;
    if (err instanceof RateLimitedError) {
      const data = (err.data ?? {}) as { retryAfter?: unknown; retryAfterMs?: unknown };
      const ms = typeof data.retryAfterMs === "number" ? data.retryAfterMs : Number(data.retryAfter ?? 1) * 1000;
      await this.limiter.apply(this.scope, this.specs, { penaltyMs: Math.max(1, ms) });
      return;
    }
    const refundAll = err instanceof ProviderRequestError;
    await this.limiter.apply(this.scope, this.specs, {
      delta: [refundAll ? -1 : 0, refundAll ? -this.reserved[1] : 0, -this.reserved[2]],
    });
  }
}
