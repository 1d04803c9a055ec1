/**
 * Backpressure for one bucket scope in one gateway process: callers wait in
 * priority order (high, normal, low; first come first served within one), and
 * only the head of the queue asks the buckets, with the waiters right behind it in
 * the same round trip (each answered as if it asked alone, in queue order; the
 * first refused ends it). When capacity returns, waiters are admitted one by one
 * as the buckets allow (each booked at its own slot), so a refilled bucket never
 * releases a herd. The queue asks no sooner than a call could be booked: after a
 * refusal, once the head's slot is within the horizon; after this gateway booked
 * the scope's one request of burst, once it has refilled. A waiter that would
 * wait past its deadline is refused with a `retryAfter` that counts its place in
 * the queue, so refused callers come back staggered rather than together.
 *
 * With several gateway processes each has its own queue; the buckets (Redis)
 * stay the single truth.
 *
 * The queue also settles its scope's calls. A settle that only gives back
 * (every delta ≤ 0: unused output, an overestimated prompt) waits for the
 * scope's next reserve and rides in its round trip, or is sent on its own after
 * `foldMs`: a give-back applied late only ever leaves the buckets holding less
 * than they could, never more. A settle that charges is sent at once, with
 * whatever waits, and so is one that carries the provider's remaining counts:
 * those cap a level as it was when the answer came, and applied late they would
 * also wipe out what other gateways reserved in between, handing it out twice.
 */
import type { Priority } from "../contracts";
import { abortReasonOf, RateLimitedError } from "../errors";
import { NO_REMAINING, type Buckets, type Correction, type UsageTarget } from "./buckets";
import type { BucketSpec, Triple } from "./limits";

const RANK: Record<Priority, number> = { high: 0, normal: 1, low: 2 };

/** Most waiters reserved in one round trip. */
const MAX_BATCH = 32;

const sameSpecs = (a: Triple<BucketSpec>, b: Triple<BucketSpec>): boolean =>
  a === b || a.every((s, j) => s.capacity === b[j as 0 | 1 | 2].capacity && s.refillPerMs === b[j as 0 | 1 | 2].refillPerMs);

export interface WaitQueueOptions {
  /** Longest a caller waits before it is refused with `retryAfter`. */
  maxWaitMs: number;
  /** How far ahead of its slot a caller is booked (then sleeps until the slot). */
  horizonMs: number;
  /** Spread of refused callers' `retryAfter`, as a fraction of it. @default 0.1 */
  jitter?: number;
  random?: () => number;
  now?: () => number;
  /** Longest a give-back settle waits to ride on the next reserve. @default 0 (sent at once) */
  foldMs?: number;
  /** Told when a settle that waited could not be applied (it is then lost, like any failed settle). */
  onSettleFailed?: (err: unknown) => void;
  /** The model's usage window (usageWindow.ts) the scope's reserves and settles add to, in their own round trips. */
  usage?: UsageTarget;
}

/** A settle waiting for the scope's next reserve, with the bucket shapes it was computed with. */
interface Pending {
  correction: Correction;
  specs: Triple<BucketSpec>;
}

const lower = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));

const plus = (a: Triple<number>, b: Triple<number>): Triple<number> => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];

/** Two settles as one: amounts add up; of two remaining counts, the lower holds (a stale one must not hand out capacity). */
function merge(p: Correction | undefined, c: Correction): Correction {
  if (!p) return c;
  return {
    delta: plus(p.delta, c.delta),
    remaining: [lower(p.remaining[0], c.remaining[0]), lower(p.remaining[1], c.remaining[1]), lower(p.remaining[2], c.remaining[2])],
    used: plus(p.used, c.used),
  };
}

interface Waiter {
  rank: number;
  specs: Triple<BucketSpec>;
  need: Triple<number>;
  deadline: number;
  resolve(): void;
  reject(err: Error): void;
  /** Its caller gave up (the call was cancelled): it is out of the queue, and is never admitted. */
  gone?: boolean;
}

/** The scope's request bucket when it has no burst (`requestBucket`: a capacity of one request), else undefined. */
function burstlessRequests(specs: Triple<BucketSpec>): BucketSpec | undefined {
  const requests = specs[0];
  return requests.capacity > 0 && requests.capacity <= 1 && requests.refillPerMs > 0 ? requests : undefined;
}

/**
 * Least time between two calls booked on a request bucket without burst, once a call took its request: every
 * model call needs one. 0 where the bucket holds more, or none.
 */
function burstlessGap(w: Pick<Waiter, "specs" | "need">): number {
  const requests = burstlessRequests(w.specs);
  return requests && w.need[0] >= 1 ? 1 / requests.refillPerMs : 0;
}

/**
 * Most calls one round trip can book on a request bucket without burst: it holds at most one request, and
 * refills `horizonMs` × its rate more by the last slot that is booked rather than refused. Infinity for a
 * bucket with burst, or none.
 */
function bookableAtOnce(specs: Triple<BucketSpec>, horizonMs: number): number {
  const requests = burstlessRequests(specs);
  return requests ? Math.floor(1 + horizonMs * requests.refillPerMs) : Infinity;
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
  /**
   * Before this (local ms) no call can be booked: the last one booked took the scope's one request of burst, and
   * the bucket refills it no sooner. Other gateways' calls only push the real moment later; a request given back
   * (a call cancelled once booked, or one that failed before the provider counted it) is not seen here, and costs
   * the next caller that wait.
   */
  private quietUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private pending: Pending | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
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

  /**
   * Resolves once the call is admitted and its slot has come; rejects with `RateLimitedError` past the deadline.
   * `signal`: the caller gave up (its planner is shutting down). The waiter leaves the queue at once, rejected
   * with the signal's reason: a call nobody waits for must not hold the place of those behind it, nor be
   * admitted later and spend a request of the limit.
   */
  enter(specs: Triple<BucketSpec>, need: Triple<number>, priority: Priority, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const done = () => signal?.removeEventListener("abort", abort);
      const w: Waiter = {
        rank: RANK[priority],
        specs,
        need,
        deadline: this.now() + this.opts.maxWaitMs,
        resolve: () => (done(), resolve()),
        reject: (err) => (done(), reject(err)),
      };
      const abort = () => {
        w.gone = true;
        this.remove(w);
        w.reject(abortReason(signal));
      };
      signal?.addEventListener("abort", abort, { once: true });
      const at = this.waiters.findIndex((x) => x.rank > w.rank);
      if (at === -1) this.waiters.push(w);
      else this.waiters.splice(at, 0, w);
      // The pump looks at the clock before it asks: while no call can be booked, it waits.
      if (!this.pumping && this.timer === undefined) void this.pump();
    });
  }

  /**
   * The gateway is shutting down: every waiter is rejected with `err` at once (retryable, so its caller asks
   * again, through another gateway) instead of being held up to its deadline. A waiter whose reserve is on its
   * way is marked gone, so what it reserved goes back; later arrivals are still served (none come once closed).
   */
  close(err: Error): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      w.gone = true;
      w.reject(err);
    }
  }

  /** Settles a call to its actual usage: at once when it charges or names remaining counts, else folded into the next reserve (see the top). */
  async settle(specs: Triple<BucketSpec>, c: Correction): Promise<void> {
    this.pending = { correction: merge(this.pending?.correction, c), specs };
    const foldMs = this.opts.foldMs ?? 0;
    if (foldMs <= 0 || c.delta.some((d) => d > 0) || c.remaining.some((r) => r !== undefined)) return this.flush();
    if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => void this.flush().catch((err: unknown) => this.opts.onSettleFailed?.(err)), foldMs);
      this.flushTimer.unref();
    }
  }

  /**
   * A provider 429 drains the scope (`used`: what the failed call gives back of the usage window). Settles still
   * waiting are dropped from the buckets: every one of them only gives back, and the drain leaves no level above
   * zero, so dropping them can only leave the buckets holding less. Their usage is still recorded.
   */
  async penalize(specs: Triple<BucketSpec>, delayMs: number, used: Triple<number>): Promise<void> {
    const owed = plus(this.takePending()?.correction.used ?? [0, 0, 0], used);
    await this.buckets.penalize(this.scope, specs, delayMs);
    const usage = this.opts.usage;
    if (usage && owed.some((n) => n !== 0)) await this.buckets.addUsage(usage.model, owed, usage.windowMs);
  }

  private async flush(): Promise<void> {
    const p = this.takePending();
    if (!p) return;
    const usage = this.opts.usage;
    await this.buckets.settle(this.scope, p.specs, p.correction.delta, p.correction.remaining, usage ? { ...usage, used: p.correction.used } : undefined);
  }

  private takePending(): Pending | undefined {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const p = this.pending;
    this.pending = undefined;
    return p;
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    while (this.waiters.length > 0) {
      if (this.now() < this.quietUntil) {
        this.waitUntilBookable();
        break;
      }
      // The head and the waiters right behind it held to the same limits ask in one round trip, in queue order.
      const batch = this.headBatch();
      const head = batch[0] as Waiter;
      // Sent once: a reserve that failed may have applied it, and a give-back applied twice would hand out capacity.
      const folded = this.takePending();
      let outcomes;
      try {
        outcomes = await this.buckets.reserveMany(this.scope, head.specs, batch.map((w) => w.need), this.opts.horizonMs, { settleFirst: folded?.correction, usage: this.opts.usage });
      } catch (err) {
        if (folded) this.opts.onSettleFailed?.(err);
        // The buckets are unreachable: these callers learn it now; the next ones ask again.
        for (const w of batch) {
          this.remove(w);
          w.reject(err instanceof Error ? err : new Error(String(err)));
        }
        continue;
      }
      let refused: number | undefined;
      const replied = this.now();
      for (const [i, out] of outcomes.entries()) {
        const w = batch[i] as Waiter;
        if (!out.admitted) {
          refused = out.waitMs;
          break;
        }
        this.remove(w);
        // Cancelled while its reserve was on its way: what it reserved goes back with the next round trip.
        if (w.gone) {
          this.giveBack(w);
          continue;
        }
        this.quietUntil = replied + out.waitMs + burstlessGap(w) - this.opts.horizonMs;
        if (out.waitMs >= 1) setTimeout(() => (w.gone ? this.giveBack(w) : w.resolve()), out.waitMs);
        else w.resolve();
      }
      if (refused === undefined) continue;
      this.refuseLate(refused);
      if (this.waiters.length > 0) this.askAgainAt(this.now() + refused - this.opts.horizonMs);
      break;
    }
    // No await between the last look at the queue and here: an arrival either saw `pumping` or is in the loop.
    this.pumping = false;
  }

  /**
   * Asks the buckets again once the head's slot is within the horizon, not before: a reserve sent early is
   * refused and costs a round trip of its own. A timer alone fires early (Node truncates its delay to the ms and
   * counts it from the event loop's clock, read when the loop's turn began), so the wake-up checks the clock and
   * sleeps on when it came too soon.
   */
  private askAgainAt(at: number): void {
    const left = Math.max(1, Math.ceil(at - this.now()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.now() < at) this.askAgainAt(at);
      else if (!this.pumping) void this.pump();
    }, left);
  }

  /**
   * While no call can be booked: whoever would miss its deadline even if the head were booked the moment the
   * request has refilled is refused now, as a refused reserve would have had them; the rest ask then.
   */
  private waitUntilBookable(): void {
    this.refuseLate(this.quietUntil + this.opts.horizonMs - this.now());
    if (this.waiters.length > 0) this.askAgainAt(this.quietUntil);
  }

  /**
   * The head, and the waiters right behind it with the same limits: up to `MAX_BATCH`, or as many as one round
   * trip can book and one more, whose refusal tells when to ask again.
   */
  private headBatch(): Waiter[] {
    const head = this.waiters[0] as Waiter;
    const batch = [head];
    const most = Math.min(MAX_BATCH, bookableAtOnce(head.specs, this.opts.horizonMs) + 1);
    for (let i = 1; i < this.waiters.length && batch.length < most; i++) {
      const w = this.waiters[i] as Waiter;
      if (!sameSpecs(w.specs, head.specs)) break;
      batch.push(w);
    }
    return batch;
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

  /** Undoes an admitted waiter's reservation, as a settle that only gives back (folded, like any other). */
  private giveBack(w: Waiter): void {
    const back: Triple<number> = [-w.need[0], -w.need[1], -w.need[2]];
    void this.settle(w.specs, { delta: back, remaining: NO_REMAINING, used: back }).catch((err: unknown) => this.opts.onSettleFailed?.(err));
  }

  private remove(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i !== -1) this.waiters.splice(i, 1);
  }
}

const abortReason = (signal: AbortSignal | undefined): Error =>
  abortReasonOf(signal, () => new Error("the model call was cancelled while it waited for the rate limit"));
