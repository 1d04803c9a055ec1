/**
 * Backpressure for one bucket scope in one gateway process: callers wait in
 * priority order (high, normal, low; first come first served within one), and
 * only the head of the queue asks the buckets. When capacity returns, waiters
 * are admitted one by one as the buckets allow (each booked at its own slot), so
 * a refilled bucket never releases a herd. A waiter that would wait past its
 * deadline is refused with a `retryAfter` that counts its place in the queue,
 * so refused callers come back staggered rather than together.
 *
 * With several gateway processes each has its own queue; the buckets (Redis)
 * stay the single truth.
 */
import type { Priority } from "../contracts";
import { RateLimitedError } from "../errors";
import type { Buckets } from "./buckets";
import type { BucketSpec, Triple } from "./limits";

const RANK: Record<Priority, number> = { high: 0, normal: 1, low: 2 };

export interface WaitQueueOptions {
  /** Longest a caller waits before it is refused with `retryAfter`. */
  maxWaitMs: number;
  /** How far ahead of its slot a caller is booked (then sleeps until the slot). */
  horizonMs: number;
  /** Spread of refused callers' `retryAfter`, as a fraction of it. @default 0.1 */
  jitter?: number;
  random?: () => number;
  now?: () => number;
}

interface Waiter {
  rank: number;
  specs: Triple<BucketSpec>;
  need: Triple<number>;
  deadline: number;
  resolve(): void;
  reject(err: Error): void;
}

/** Time the buckets take to refill one waiter's need: its share of the queue ahead of the next. */
function intervalOf(w: Pick<Waiter, "specs" | "need">): number {
  let ms = 0;
  for (let j = 0; j < 3; j++) {
    const spec = w.specs[j as 0 | 1 | 2];
    if (spec.capacity > 0 && spec.refillPerMs > 0) ms = Math.max(ms, w.need[j as 0 | 1 | 2] / spec.refillPerMs);
  }
  return ms;
}

export class ScopeWaitQueue {
  private waiters: Waiter[] = [];
  private pumping = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(
    readonly scope: string,
    private readonly buckets: Buckets,
    private readonly opts: WaitQueueOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  get length(): number {
    return this.waiters.length;
  }

  /** Resolves once the call is admitted and its slot has come; rejects with `RateLimitedError` past the deadline. */
  enter(specs: Triple<BucketSpec>, need: Triple<number>, priority: Priority): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { rank: RANK[priority], specs, need, deadline: this.now() + this.opts.maxWaitMs, resolve, reject };
      const at = this.waiters.findIndex((x) => x.rank > w.rank);
      if (at === -1) this.waiters.push(w);
      else this.waiters.splice(at, 0, w);
      if (!this.pumping && this.timer === undefined) void this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    while (this.waiters.length > 0) {
      const head = this.waiters[0] as Waiter;
      let out;
      try {
        out = await this.buckets.reserve(this.scope, head.specs, head.need, this.opts.horizonMs);
      } catch (err) {
        // The buckets are unreachable: this caller learns it now; the next one asks again.
        this.remove(head);
        head.reject(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      if (out.admitted) {
        this.remove(head);
        if (out.waitMs >= 1) setTimeout(() => head.resolve(), out.waitMs);
        else head.resolve();
        continue;
      }
      this.refuseLate(out.waitMs);
      if (this.waiters.length > 0) {
        this.timer = setTimeout(
          () => {
            this.timer = undefined;
            if (!this.pumping) void this.pump();
          },
          Math.max(1, out.waitMs - this.opts.horizonMs),
        );
      }
      break;
    }
    // No await between the last look at the queue and here: an arrival either saw `pumping` or is in the loop.
    this.pumping = false;
  }

  /** The head waits `headWaitMs`; each later waiter also waits for those ahead of it. Refuse whoever would miss its deadline. */
  private refuseLate(headWaitMs: number): void {
    const now = this.now();
    let wait = headWaitMs;
    const keep: Waiter[] = [];
    this.waiters.forEach((w, i) => {
      if (i > 0) wait += intervalOf(w);
      if (now + wait <= w.deadline) return void keep.push(w);
      const retryAfterMs = wait * (1 + (this.opts.jitter ?? 0.1) * this.random());
      w.reject(
        new RateLimitedError(`rate limit of ${this.scope} reached; retry in ${Math.ceil(retryAfterMs)} ms`, {
          retryAfter: Math.max(0.001, Math.round(retryAfterMs) / 1000),
          scope: this.scope,
          source: "gateway",
        }),
      );
    });
    this.waiters = keep;
  }

  private remove(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i !== -1) this.waiters.splice(i, 1);
  }
}
