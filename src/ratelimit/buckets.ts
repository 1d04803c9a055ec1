/**
 * Where the buckets live: `RedisBuckets` for a cluster (one truth for every
 * gateway process), `MemoryBuckets` for embedded mode. Same semantics (see
 * bucketMath.ts); one contract suite (test/integration/ratelimit.contract.test.ts).
 */
import * as math from "./bucketMath";
import type { ReserveOutcome } from "./bucketMath";
import type { BucketSpec, LimitSpec, Triple } from "./limits";

export type { ReserveOutcome } from "./bucketMath";

export interface Buckets {
  /** Admits (possibly booked up to `horizonMs` ahead) or refuses with the wait until it could admit. */
  reserve(scope: string, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number): Promise<ReserveOutcome>;
  /** Applies actual − reserved; the provider's remaining counts, when known, cap the levels. */
  settle(scope: string, specs: Triple<BucketSpec>, delta: Triple<number>, remaining?: Triple<number | undefined>): Promise<void>;
  /** Nothing is admitted in `scope` for `delayMs` (a provider 429), then the buckets refill from empty. */
  penalize(scope: string, specs: Triple<BucketSpec>, delayMs: number): Promise<void>;
  /** The limits the provider last reported for `model`, shared by every gateway; undefined when none (or expired). */
  learnedLimits(model: string): Promise<LimitSpec | undefined>;
  /** Records the limits the provider reported for `model`; they are forgotten `ttlMs` after the last report. */
  learnLimits(model: string, limits: LimitSpec, ttlMs: number): Promise<void>;
  close(): Promise<void>;
}

export const NO_REMAINING: Triple<undefined> = [undefined, undefined, undefined];

/** Wall-clock ms with sub-ms resolution (performance.now is monotonic; timeOrigin anchors it). */
const preciseNow = () => performance.timeOrigin + performance.now();

export class MemoryBuckets implements Buckets {
  private readonly states = new Map<string, { state: math.BucketState; expiresAt: number }>();
  private readonly learned = new Map<string, { limits: LimitSpec; expiresAt: number }>();

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

  async reserve(scope: string, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number): Promise<ReserveOutcome> {
    const now = this.clock();
    const state = this.stateOf(scope, now);
    const out = math.reserve(state, specs, need, horizonMs, now);
    if (out.admitted) this.touch(scope, state, now);
    return out;
  }

  async settle(scope: string, specs: Triple<BucketSpec>, delta: Triple<number>, remaining: Triple<number | undefined> = NO_REMAINING): Promise<void> {
    const now = this.clock();
    const state = this.stateOf(scope, now);
    math.settle(state, specs, delta, remaining, now);
    this.touch(scope, state, now);
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

  async close(): Promise<void> {
    this.states.clear();
    this.learned.clear();
  }
}
