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
 * drains the scope, cluster-wide, until the time it names. The limits the
 * provider reports in its headers are shared by every gateway (learned.ts): they
 * tighten configured limits and stand in for absent ones.
 */
import type { Priority } from "../contracts";
import { ProviderRequestError, RateLimitedError, UnavailableError, messageOf } from "../errors";
import type { MessageParam, ToolSpec, LlmUsage } from "../contracts";
import { NO_REMAINING, type Buckets } from "./buckets";
import { InputTokenEstimator } from "./estimator";
import { LearnedLimits, type Learned } from "./learned";
import { bucketSpecs, limitOf, resolveScope, type BucketSpec, type LimitSpec, type RateLimitTable, type Scope, type Triple } from "./limits";
import { ScopeWaitQueue } from "./waitQueue";

export interface RateLimiterOptions {
  limits: RateLimitTable;
  /** Length of the limits' "minute". @default 60000 */
  windowMs: number;
  /** Longest a call waits for capacity before it gets `RateLimitedError`. @default 300000 (CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS) */
  maxWaitMs: number;
  /**
   * How far ahead a call's slot may be booked. Long enough to outlast timer lateness and a Redis round
   * trip (so a late wake-up loses no capacity), short enough that a stalled event loop cannot release
   * many booked calls at once. @default 10
   */
  horizonMs?: number;
  /**
   * Longest a settle that only gives capacity back waits to ride on the scope's next reserve (one Redis round
   * trip per call instead of two); a settle that charges is sent at once. 0 sends every settle at once. @default 500
   */
  settleFoldMs?: number;
  /** How long learned provider limits last after the last answer that reported them. @default 60 windows */
  learnedTtlMs?: number;
  /** How often each gateway re-reads the shared learned limits. @default 1000 */
  learnedRefreshMs?: number;
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
  /** Limits the provider reported, per model, shared with the other gateways. */
  readonly learned: LearnedLimits;
  /** Set by `close()`: what every call still waiting, or arriving, is refused with. */
  private closed: UnavailableError | undefined;

  constructor(
    private readonly buckets: Buckets,
    private readonly opts: RateLimiterOptions,
  ) {
    this.learned = new LearnedLimits(buckets, {
      ttlMs: opts.learnedTtlMs ?? 60 * opts.windowMs,
      refreshMs: opts.learnedRefreshMs ?? 1000,
      maxWaitMs: opts.maxWaitMs,
      logger: opts.logger,
    });
  }

  /**
   * Waits for capacity (by priority) and reserves it; `RateLimitedError` (retryable, `retryAfter` s) after `maxWaitMs`.
   * `signal`: the call was cancelled; a call still waiting leaves the queue, rejected with the signal's reason.
   */
  async acquire(call: LimitedCall, signal?: AbortSignal): Promise<Permit> {
    const scope = resolveScope(this.opts.limits, call.model, call.tier);
    // Nothing configured and nothing learned yet: one call at a time finds the limits out.
    const endTurn = scope.limits === undefined && (await this.learned.current(call.model)) === undefined ? await this.learned.turn(call.model) : undefined;
    try {
      return await this.admit(call, scope, await this.learned.current(call.model), endTurn, signal);
    } catch (err) {
      endTurn?.();
      throw err;
    }
  }

  private async admit(call: LimitedCall, scope: Scope, learned: Learned, endTurn: (() => void) | undefined, signal: AbortSignal | undefined): Promise<Permit> {
    const specs = this.specsFor(scope.limits, learned);
    const estimate = this.estimator.estimate(call.model, call);
    const need: Triple<number> = [1, estimate.tokens, call.maxTokens];
    const limits = tighten(scope.limits, learned === "none" ? undefined : learned);
    for (const i of [0, 1, 2] as const) {
      const limit = limitOf(limits, i);
      if (limit !== undefined && need[i] > limit) {
        throw new ProviderRequestError(
          `this call needs ${need[i]} ${LIMIT_NAMES[i]}, more than the limit of ${limit} per window for ${scope.key}; it can never be admitted`,
          { scope: scope.key, need: need[i], limit },
        );
      }
    }
    if (this.closed) throw this.closed;
    // The queue's reserve records the call's need in the model's usage window, in the same round trip.
    await this.queueOf(scope.key, call.model).enter(specs, need, call.priority, signal);
    return new Permit(this, scope, call.model, specs, need, estimate.raw, endTurn);
  }

  /**
   * The gateway is shutting down: every call still waiting is refused at once with a retryable
   * UnavailableError, so its planner asks again (through another gateway) rather than wait out the
   * queue's max wait for an answer this gateway will not give; calls arriving later are refused the same.
   */
  close(): void {
    this.closed ??= new UnavailableError("this rate gateway is shutting down; the call is to be asked again, through another gateway", { source: "gateway" });
    for (const q of this.queues.values()) q.close(this.closed);
  }

  /** Callers waiting in this process, per scope (for metrics and tests). */
  waiting(): Record<string, number> {
    return Object.fromEntries([...this.queues].map(([k, q]) => [k, q.length]));
  }

  /** A scope's queue; a scope is one model's (or one tier of it), `model` names it. */
  private queueOf(scope: string, model: string): ScopeWaitQueue {
    let q = this.queues.get(scope);
    if (!q) {
      q = new ScopeWaitQueue(scope, this.buckets, {
        maxWaitMs: this.opts.maxWaitMs,
        horizonMs: this.opts.horizonMs ?? 10,
        foldMs: this.opts.settleFoldMs ?? 500,
        onSettleFailed: (err) => this.settleFailed(scope, err),
        usage: { model, windowMs: this.opts.windowMs },
        ...(this.opts.random ? { random: this.opts.random } : {}),
      });
      this.queues.set(scope, q);
    }
    return q;
  }

  /** @internal The buckets of a scope with its configured limits, tightened by what was learned. */
  specsFor(configured: LimitSpec | undefined, learned: Learned): Triple<BucketSpec> {
    return bucketSpecs(tighten(configured, learned === "none" ? undefined : learned), this.opts.windowMs);
  }

  /** @internal Permit's way back in. */
  async apply(
    scope: string,
    model: string,
    specs: Triple<BucketSpec>,
    op: { delta: Triple<number>; remaining?: Triple<number | undefined>; used: Triple<number> } | { penaltyMs: number; used: Triple<number> },
  ): Promise<void> {
    const queue = this.queueOf(scope, model);
    try {
      if ("penaltyMs" in op) await queue.penalize(specs, op.penaltyMs, op.used);
      else await queue.settle(specs, { delta: op.delta, remaining: op.remaining ?? NO_REMAINING, used: op.used });
    } catch (err) {
      this.settleFailed(scope, err);
    }
  }

  private settleFailed(scope: string, err: unknown): void {
    // A lost correction leaves the bucket off by one call's estimate; the next header or 429 corrects it.
    this.opts.logger?.warn({ event: "ratelimit.settle_failed", scope, err: messageOf(err) }, "could not settle a rate-limit reservation");
  }

}

/** Configured limits with each one the provider reported lower (or configured not at all) put in its place. */
export function tighten(configured: LimitSpec | undefined, reported: LimitSpec | undefined): LimitSpec | undefined {
  if (!reported) return configured;
  if (!configured) return reported;
  const min = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
  return { rpm: min(configured.rpm, reported.rpm), itpm: min(configured.itpm, reported.itpm), otpm: min(configured.otpm, reported.otpm) };
}

/** One admitted call's reservation, to be settled exactly once. */
export class Permit {
  private done = false;
  readonly scope: string;

  constructor(
    private readonly limiter: RateLimiter,
    private readonly scoped: Scope,
    readonly model: string,
    private readonly specs: Triple<BucketSpec>,
    /** What was reserved: 1 request, estimated input tokens, `max_tokens`. */
    readonly reserved: Triple<number>,
    private readonly rawEstimate: number,
    /** Ends this call's turn as the one finding out the model's limits, if it was that call. */
    private readonly endTurn: (() => void) | undefined = undefined,
  ) {
    this.scope = scoped.key;
  }

  /** Charges or refunds the difference to actual usage; the provider's headers cap the local view. */
  async settle(usage: LlmUsage, headers: ProviderLimitHeaders = {}): Promise<void> {
    if (this.done) return;
    this.done = true;
    // The provider counts uncached input and cache writes against the input limit; cache reads are free of it.
    const input = usage.input_tokens + usage.cache_creation_input_tokens;
    this.limiter.estimator.observe(this.model, this.rawEstimate, input);
    const shared = this.limiter.learned.report(this.model, headers);
    this.endTurn?.();
    // Limits learned from this very answer apply now: a bucket that was unlimited at reserve time is charged the whole usage.
    const specs = this.limiter.specsFor(this.scoped.limits, this.limiter.learned.known(this.model));
    const actual: Triple<number> = [1, input, usage.output_tokens];
    const d = (j: 0 | 1 | 2) => (this.specs[j].capacity > 0 || specs[j].capacity <= 0 ? actual[j] - this.reserved[j] : actual[j]);
    const delta: Triple<number> = [d(0), d(1), d(2)];
    // The model's usage window (GET /v1/limits) gets actual − reserved, in the same round trip.
    const used: Triple<number> = [actual[0] - this.reserved[0], actual[1] - this.reserved[1], actual[2] - this.reserved[2]];
    await shared;
    await this.limiter.apply(this.scope, this.model, specs, {
      delta,
      used,
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
    this.endTurn?.();
    const refundAll = err instanceof ProviderRequestError;
    // A refused request counted nothing; any other failure produced no output.
    const refund: Triple<number> = [refundAll ? -1 : 0, refundAll ? -this.reserved[1] : 0, -this.reserved[2]];
    if (err instanceof RateLimitedError) {
      const data = (err.data ?? {}) as { retryAfter?: unknown; retryAfterMs?: unknown };
      const ms = typeof data.retryAfterMs === "number" ? data.retryAfterMs : Number(data.retryAfter ?? 1) * 1000;
      await this.limiter.apply(this.scope, this.model, this.specs, { penaltyMs: Math.max(1, ms), used: refund });
      return;
    }
    await this.limiter.apply(this.scope, this.model, this.specs, { delta: refund, used: refund });
  }
}
