/**
 * Keeps one task's lease for one attempt: takes it, has the planner's one
 * heartbeat (src/lease/renewer.ts) renew it along with every other lease the
 * planner holds, and knows until when it is surely still ours on this process's
 * monotonic clock. Fencing refuses a zombie's writes but not its calls, so the keeper is
 * also the interceptor that stops any model or tool call once the lease may
 * have lapsed.
 */
import type { LoopLogger } from "./attempt";
import type { AttemptInterceptor } from "./interceptors";
import { LeaseLostError, messageOf } from "../errors";
import type { LeaseRenewer } from "../lease/renewer";
import type { HeldLease, LeaseManager } from "../lease/types";
import type { Metrics, TaskLabels } from "../telemetry/metrics";

export interface LeaseKeeperDeps {
  leases: LeaseManager;
  /** The planner's heartbeat; it renews this lease with all the others, in one round trip. */
  renewer: LeaseRenewer;
  logger: LoopLogger;
  metrics?: Pick<Metrics, "leaseLost"> | undefined;
  /** Told once when the heartbeat finds the lease taken by someone else. */
  onLeaseLost?: ((taskId: string, labels: TaskLabels) => void) | undefined;
}

export interface LeaseTerms {
  taskId: string;
  owner: string;
  ttlMs: number;
  /** Monotonic clock (ms) the sure-until deadline is kept on. */
  now: () => number;
  labels: TaskLabels;
}

export class LeaseKeeper {
  /**
   * Until when the lease is surely ours: TTL after the last acquire or renew that
   * succeeded was *sent* (Redis counts the TTL from a later moment).
   */
  private sureUntil = Number.NEGATIVE_INFINITY;
  /** Takes the lease off the heartbeat; set while it is on. */
  private unhold: (() => void) | undefined;

  /** `controller`: the attempt's; a lost lease aborts it, so the loop stops at its next step boundary. */
  constructor(
    private readonly deps: LeaseKeeperDeps,
    private readonly terms: LeaseTerms,
    private readonly controller: AbortController,
  ) {}

  /** True if the lease is now ours; false while anyone (this owner included) holds it. */
  async acquire(): Promise<boolean> {
    const { taskId, owner, ttlMs, now } = this.terms;
    this.sureUntil = now() + ttlMs;
    return this.deps.leases.acquire(taskId, owner, ttlMs);
  }

  /** Puts the lease on the planner's heartbeat until `release()`; a renewal that finds it lost aborts the attempt. */
  keep(): void {
    const { taskId, owner, labels } = this.terms;
    const lease: HeldLease = { taskId, owner };
    this.unhold = this.deps.renewer.hold(lease, {
      renewed: (until) => {
        this.sureUntil = Math.max(this.sureUntil, until);
      },
      lost: () => {
        if (this.controller.signal.aborted) return;
        this.deps.metrics?.leaseLost(labels);
        this.deps.onLeaseLost?.(taskId, labels);
        this.controller.abort(new LeaseLostError(`lease on task ${taskId} lost`, { taskId }));
      },
    });
  }

  /**
   * Throws LeaseLostError (and aborts the attempt) once the lease may have lapsed.
   * A process paused past its lease (SIGSTOP, a VM freeze, a GC storm) resumes where
   * it was, possibly about to call the model or run a tool that its successor has
   * already made and checkpointed, before its overdue heartbeat can tell it the
   * lease is gone. So no call starts after that: the attempt is abandoned.
   */
  check(): void {
    if (this.terms.now() < this.sureUntil) return;
    const { taskId, ttlMs } = this.terms;
    const lost = new LeaseLostError(`lease on task ${taskId} not renewed for ${ttlMs} ms; it may have lapsed`, { taskId });
    if (!this.controller.signal.aborted) this.controller.abort(lost);
    throw lost;
  }

  /** `check()` before every model and tool call of the attempt. */
  get interceptor(): AttemptInterceptor {
    return {
      name: "lease",
      modelCall: (req, next) => {
        this.check();
        return next(req);
      },
      toolCall: (call, next) => {
        this.check();
        return next(call);
      },
    };
  }

  /** Takes the lease off the heartbeat and gives it up; a failure is logged, the lease then lapses on its own. */
  async release(): Promise<void> {
    this.unhold?.();
    const { taskId, owner } = this.terms;
    await this.deps.leases.release(taskId, owner).catch((err: unknown) => {
      this.deps.logger.warn({ taskId, event: "lease.release_failed", err: messageOf(err) }, "lease release failed; it will lapse");
    });
  }
}
