/**
 * Keeps one task's lease for one attempt: takes it, renews it on a heartbeat,
 * and knows until when it is surely still ours on this process's monotonic
 * clock. Fencing refuses a zombie's writes but not its calls, so the keeper is
 * also the interceptor that stops any model or tool call once the lease may
 * have lapsed.
 */
import type { LoopLogger } from "./attempt";
import type { AttemptInterceptor } from "./interceptors";
import { LeaseLostError, messageOf } from "../errors";
import type { LeaseManager } from "../lease/types";
import type { Metrics, TaskLabels } from "../telemetry/metrics";

export interface LeaseKeeperDeps {
  leases: LeaseManager;
  logger: LoopLogger;
  metrics?: Pick<Metrics, "leaseLost"> | undefined;
  /** Told once when the heartbeat finds the lease taken by someone else. */
  onLeaseLost?: ((taskId: string, labels: TaskLabels) => void) | undefined;
}

export interface LeaseTerms {
  taskId: string;
  owner: string;
  ttlMs: number;
  renewMs: number;
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
  private heartbeat: NodeJS.Timeout | undefined;

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

  /** Starts the heartbeat that renews the lease until `release()`. */
  keep(): void {
    const { taskId, owner, ttlMs, renewMs, now, labels } = this.terms;
    this.heartbeat = setInterval(() => {
      const sent = now();
      this.deps.leases.renew(taskId, owner, ttlMs).then(
        (held) => {
          if (held) this.sureUntil = Math.max(this.sureUntil, sent + ttlMs);
          if (!held && !this.controller.signal.aborted) {
            this.deps.metrics?.leaseLost(labels);
            this.deps.onLeaseLost?.(taskId, labels);
            this.controller.abort(new LeaseLostError(`lease on task ${taskId} lost`, { taskId }));
          }
        },
        (err: unknown) => {
          // Redis unreachable: keep working while the lease is surely ours (see sureUntil); the fence guards writes.
          this.deps.logger.warn({ taskId, event: "lease.renew_failed", err: messageOf(err) }, "lease renewal failed");
        },
      );
    }, renewMs);
    this.heartbeat.unref();
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

  /** Stops the heartbeat and gives the lease up; a failure is logged, the lease then lapses on its own. */
  async release(): Promise<void> {
    clearInterval(this.heartbeat);
    const { taskId, owner } = this.terms;
    await this.deps.leases.release(taskId, owner).catch((err: unknown) => {
      this.deps.logger.warn({ taskId, event: "lease.release_failed", err: messageOf(err) }, "lease release failed; it will lapse");
    });
  }
}
