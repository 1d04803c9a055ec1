/**
 * Readiness of a queue consumer (the planner): is its consume loop alive, and is
 * it making progress?
 *
 * Definitions (also in README, "Health"):
 * - **subscribed**: the channel consumer of `tasks.ready` is registered with the
 *   queue adapter and its connection is up (Redis: the subscription's own client
 *   is `ready`). Reported by the caller through `subscription()`.
 * - **progress**: a wake-up handler starting or finishing, or a step of a running
 *   task being checkpointed.
 * - **stalled**: at least one handler is in flight and there has been no progress
 *   for longer than `stallAfterMs`. An idle consumer (nothing in flight) is never
 *   stalled, however long the queue has been empty.
 *
 * Ready = subscribed, not draining and not stalled. A background check
 * (`start()`) logs each change between stalled and not, so an operator sees a
 * stall when it begins, not only when a probe asks.
 */
import type { CheckResult } from "./health";

export interface SubscriptionState {
  active: boolean;
  /** Why not, when not active (e.g. "redis connection reconnecting"). */
  detail?: string;
}

export interface WatchdogOptions {
  /** No progress for this long with work in flight is a stall. */
  stallAfterMs: number;
  /** Whether the consumer's subscription is live; checked on every readiness question. */
  subscription: () => SubscriptionState;
  /** @default Date.now */
  now?: () => number;
  onStall?: (info: { inFlight: number; idleMs: number }) => void;
  onRecover?: (info: { stalledMs: number }) => void;
}

export class ConsumeWatchdog {
  private inFlight = 0;
  private lastProgress: number;
  private draining = false;
  private stalledSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: WatchdogOptions) {
    this.now = opts.now ?? Date.now;
    this.lastProgress = this.now();
  }

  /** A wake-up handler started. */
  begin(): void {
    this.inFlight++;
    this.lastProgress = this.now();
  }

  /** A wake-up handler finished (whatever its outcome). */
  end(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.lastProgress = this.now();
  }

  /** A running task made progress (a step was checkpointed). */
  progress(): void {
    this.lastProgress = this.now();
  }

  /** The consumer stopped taking work on purpose (shutdown): not ready, and not a stall. */
  drain(): void {
    this.draining = true;
  }

  get activeHandlers(): number {
    return this.inFlight;
  }

  /** The readiness verdict, with a reason an operator can act on. */
  check(): CheckResult {
    if (this.draining) return { ok: false, reason: "draining: stopped taking work for shutdown" };
    const sub = this.opts.subscription();
    if (!sub.active) return { ok: false, reason: `consume loop not subscribed${sub.detail !== undefined ? `: ${sub.detail}` : ""}` };
    const idleMs = this.now() - this.lastProgress;
    if (this.inFlight > 0 && idleMs > this.opts.stallAfterMs) {
      return {
        ok: false,
        reason: `stalled: ${this.inFlight} task(s) in flight and no progress for ${Math.round(idleMs / 1000)} s (limit ${Math.round(this.opts.stallAfterMs / 1000)} s)`,
      };
    }
    return { ok: true };
  }

  /** Starts the background check that logs stalls as they begin and end. */
  start(intervalMs = Math.max(50, Math.min(5_000, Math.floor(this.opts.stallAfterMs / 4)))): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = this.now();
    const idleMs = now - this.lastProgress;
    const stalled = !this.draining && this.inFlight > 0 && idleMs > this.opts.stallAfterMs;
    if (stalled && this.stalledSince === undefined) {
      this.stalledSince = now;
      this.opts.onStall?.({ inFlight: this.inFlight, idleMs });
    } else if (!stalled && this.stalledSince !== undefined) {
      this.opts.onRecover?.({ stalledMs: now - this.stalledSince });
      this.stalledSince = undefined;
    }
  }
}
