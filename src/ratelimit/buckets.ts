/**
 * Where the buckets live: `RedisBuckets` for a cluster (one truth for every
 * gateway process), `MemoryBuckets` for embedded mode. Same semantics (see
 * bucketMath.ts); one contract suite (test/integration/ratelimit.contract.test.ts).
 */
import * as math from "./bucketMath";
import type { ReserveOutcome } from "./bucketMath";
import type { BucketSpec, LimitSpec, Triple } from "./limits";
import { addUsage, freshUsage, usedOver, type UsageState } from "./usageWindow";

export type { ReserveOutcome } from "./bucketMath";

/** A settle not yet applied: actual − reserved, summed over calls, and the lowest remaining each header named. */
export interface Correction {
  /** What the buckets are charged (positive) or given back (negative). */
  delta: Triple<number>;
  remaining: Triple<number | undefined>;
  /** Actual − reserved, for the model's usage window; unlike `delta`, never the whole usage of a bucket limited late. */
  used: Triple<number>;
}

/** The usage window (usageWindow.ts) a reserve or settle also adds to, in its own round trip. */
export interface UsageTarget {
  model: string;
  windowMs: number;
}

/** What a reserve may carry: a settle folded into its round trip, and the usage window it adds to. */
export interface ReserveOptions {
  settleFirst?: Correction | undefined;
  usage?: UsageTarget | undefined;
}

export interface Buckets {
  /**
   * Admits (possibly booked up to `horizonMs` ahead) or refuses with the wait until it could admit.
   * `settleFirst`: a settle folded into the same round trip, applied before the check, admitted or not.
   * `usage`: the model's usage window gets the need of an admitted call and the folded settle's `used`.
   */
  reserve(scope: string, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number, opts?: ReserveOptions): Promise<ReserveOutcome>;
  /**
   * Several calls of the scope in one round trip, in queue order: each as `reserve` would answer it at the
   * same instant. The first refused ends the answer (its outcome is the last), so none behind it overtakes it.
   */
  reserveMany(scope: string, specs: Triple<BucketSpec>, needs: readonly Triple<number>[], horizonMs: number, opts?: ReserveOptions): Promise<ReserveOutcome[]>;
  /** Applies actual − reserved; the provider's remaining counts, when known, cap the levels; `usage` gets `used`. */
  settle(scope: string, specs: Triple<BucketSpec>, delta: Triple<number>, remaining?: Triple<number | undefined>, usage?: UsageTarget & { used: Triple<number> }): Promise<void>;
  /** Nothing is admitted in `scope` for `delayMs` (a provider 429), then the buckets refill from empty. */
  penalize(scope: string, specs: Triple<BucketSpec>, delayMs: number): Promise<void>;
  /** The limits the provider last reported for `model`, shared by every gateway; undefined when none (or expired). */
  learnedLimits(model: string): Promise<LimitSpec | undefined>;
  /** Records the limits the provider reported for `model`; they are forgotten `ttlMs` after the last report. */
  learnLimits(model: string, limits: LimitSpec, ttlMs: number): Promise<void>;
  /** The models whose learned limits have not expired. */
  learnedModels(): Promise<string[]>;
  /** Adds requests, input and output tokens to what `model`'s calls used (usageWindow.ts); negative: a refund. */
  addUsage(model: string, delta: Triple<number>, windowMs: number): Promise<void>;
  /** What `model`'s calls used over the last `windowMs`, every gateway's. */
  usage(model: string, windowMs: number): Promise<Triple<number>>;
  close(): Promise<void>;
}

export const NO_REMAINING: Triple<undefined> = [undefined, undefined, undefined];

/** Wall-clock ms with sub-ms resolution (performance.now is monotonic; timeOrigin anchors it). */
const preciseNow = () => performance.timeOrigin + performance.now();

export class MemoryBuckets implements Buckets {
  private readonly states = new Map<string, { state: math.BucketState; expiresAt: number }>();
  private readonly learned = new Map<string, { limits: LimitSpec; expiresAt: number }>();
  private readonly used = new Map<string, UsageState>();

  constructor(private readonly clock: () => number = preciseNow) {}

  private stateOf(scope: string, now: number): math.BucketState {
    const entry = this.states.get(scope);
    if (entry && entry.expiresAt > now) return entry.state;
    const state = math.freshState(now);
    this.states.set(scope, { state, expiresAt: Infinity });
    return state;
  }

  private touch(scope: string, state: math.BucketState, now: number): void {
    // Like the Redis key's PEXPIRE: once it would be full again, forgetting it changes nothing.
    this.states.set(scope, { state, expiresAt: now + math.msUntilFull(state, now) + 1000 });
  }

  async reserve(scope: string, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number, opts: ReserveOptions = {}): Promise<ReserveOutcome> {
    return (await this.reserveMany(scope, specs, [need], horizonMs, opts))[0] as ReserveOutcome;
  }

  async reserveMany(scope: string, specs: Triple<BucketSpec>, needs: readonly Triple<number>[], horizonMs: number, opts: ReserveOptions = {}): Promise<ReserveOutcome[]> {
    if (needs.length === 0) throw new RangeError("reserveMany needs at least one call");
    const { settleFirst, usage } = opts;
    const now = this.clock();
    const state = this.stateOf(scope, now);
    if (settleFirst) math.settle(state, specs, settleFirst.delta, settleFirst.remaining, now);
    const outcomes: ReserveOutcome[] = [];
    const used: [number, number, number] = settleFirst ? [...settleFirst.used] : [0, 0, 0];
    for (const need of needs) {
      const out = math.reserve(state, specs, need, horizonMs, now);
      outcomes.push(out);
      if (!out.admitted) break;
      for (const j of [0, 1, 2] as const) used[j] += need[j];
    }
    if (outcomes[0]?.admitted || settleFirst) this.touch(scope, state, now);
    if (usage) this.record(usage, used);
    return outcomes;
  }

  async settle(scope: string, specs: Triple<BucketSpec>, delta: Triple<number>, remaining: Triple<number | undefined> = NO_REMAINING, usage?: UsageTarget & { used: Triple<number> }): Promise<void> {
    const now = this.clock();
    const state = this.stateOf(scope, now);
    math.settle(state, specs, delta, remaining, now);
    this.touch(scope, state, now);
    if (usage) this.record(usage, usage.used);
  }

  async penalize(scope: string, specs: Triple<BucketSpec>, delayMs: number): Promise<void> {
    const now = this.clock();
    const state = this.stateOf(scope, now);
    math.penalize(state, specs, delayMs, now);
    this.touch(scope, state, now);
  }

  async learnedLimits(model: string): Promise<LimitSpec | undefined> {
    const entry = this.learned.get(model);
    return entry && entry.expiresAt > this.clock() ? entry.limits : undefined;
  }

  async learnLimits(model: string, limits: LimitSpec, ttlMs: number): Promise<void> {
    this.learned.set(model, { limits, expiresAt: this.clock() + ttlMs });
  }

  async learnedModels(): Promise<string[]> {
    const now = this.clock();
    return [...this.learned].filter(([, e]) => e.expiresAt > now).map(([model]) => model);
  }

  async addUsage(model: string, delta: Triple<number>, windowMs: number): Promise<void> {
    this.record({ model, windowMs }, delta);
  }

  private record({ model, windowMs }: UsageTarget, delta: Triple<number>): void {
    let state = this.used.get(model);
    if (!state) this.used.set(model, (state = freshUsage()));
    addUsage(state, delta, this.clock(), windowMs);
  }

  async usage(model: string, windowMs: number): Promise<Triple<number>> {
    const state = this.used.get(model);
    return state ? usedOver(state, this.clock(), windowMs) : [0, 0, 0];
  }

  async close(): Promise<void> {
    this.states.clear();
    this.learned.clear();
    this.used.clear();
  }
}
