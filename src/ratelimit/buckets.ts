/**
 * Where the buckets live: `RedisBuckets` for a cluster (one truth for every
 * gateway process), `MemoryBuckets` for embedded mode. Same semantics (see
 * bucketMath.ts); one contract suite (test/integration/ratelimit.contract.test.ts).
 */
import * as math from "./bucketMath";
import type { ReserveOutcome } from "./bucketMath";
import type { BucketSpec, Triple } from "./limits";

export type { ReserveOutcome } from "./bucketMath";

export interface Buckets {
  /** Admits (possibly booked up to `horizonMs` ahead) or refuses with the wait until it could admit. */
  reserve(scope: string, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number): Promise<ReserveOutcome>;
  /** Applies actual − reserved; the provider's remaining counts, when known, cap the levels. */
  settle(scope: string, specs: Triple<BucketSpec>, delta: Triple<number>, remaining?: Triple<number | undefined>): Promise<void>;
  /** Nothing is admitted in `scope` for `delayMs` (a provider 429), then the buckets refill from empty. */
  penalize(scope: string, specs: Triple<BucketSpec>, delayMs: number): Promise<void>;
  close(): Promise<void>;
}

export const NO_REMAINING: Triple<undefined> = [undefined, undefined, undefined];

/** Wall-clock ms with sub-ms resolution (performance.now is monotonic; timeOrigin anchors it). */
const preciseNow = () => performance.timeOrigin + performance.now();

export class MemoryBuckets implements Buckets {
  private readonly states = new Map<string, { state: math.BucketState; expiresAt: number }>();

  constructor(private readonly clock: () => number = preciseNow) {}

  private stateOf(scope: string, specs: Triple<BucketSpec>, now: number): math.BucketState {
    const entry = this.states.get(scope);
    if (entry && entry.expiresAt > now) return entry.state;
    const state = math.fullState(specs, now);
    this.states.set(scope, { state, expiresAt: Infinity });
    return state;
  }

  private touch(scope: string, state: math.BucketState, specs: Triple<BucketSpec>, now: number): void {
    // Like the Redis key's PEXPIRE: once it would be full again, forgetting it changes nothing.
    this.states.set(scope, { state, expiresAt: now + math.msUntilFull(state, specs, now) + 1000 });
  }

  async reserve(scope: string, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number): Promise<ReserveOutcome> {
    const now = this.clock();
    const state = this.stateOf(scope, specs, now);
    const out = math.reserve(state, specs, need, horizonMs, now);
    if (out.admitted) this.touch(scope, state, specs, now);
    return out;
  }

  async settle(scope: string, specs: Triple<BucketSpec>, delta: Triple<number>, remaining: Triple<number | undefined> = NO_REMAINING): Promise<void> {
    const now = this.clock();
    const state = this.stateOf(scope, specs, now);
    math.settle(state, specs, delta, remaining, now);
    this.touch(scope, state, specs, now);
  }

  async penalize(scope: string, specs: Triple<BucketSpec>, delayMs: number): Promise<void> {
    const now = this.clock();
    const state = this.stateOf(scope, specs, now);
    math.penalize(state, specs, delayMs, now);
    this.touch(scope, state, specs, now);
  }

  async close(): Promise<void> {
    this.states.clear();
  }
}
