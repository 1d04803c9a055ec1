/**
 * When the reaper sweeps: once per interval, on the one process in the cluster
 * that holds the `__reaper__` lease, never two sweeps at once. Every intake
 * replica runs a loop; the lease makes one of them the reaper, and a new one
 * takes over within a few intervals when it dies.
 */
import { messageOf } from "../errors";
import type { LeaseManager } from "../lease/types";
import { Reaper, type ReaperDeps } from "./reaper";
import type { Logger } from "../logging";
import type { WakeUps } from "./wakeups";

/** The lease that elects the cluster's one reaper. */
export const REAPER_LEASE = "__reaper__";

export interface ReaperLoopDeps {
  /**
   * The store the sweep reads, its calls bounded by `callTimeoutMs`: a lost message
   * (a NATS restart) must cost a sweep, never stop the reaper for good.
   */
  store(callTimeoutMs: number): ReaperDeps["store"];
  leases: Pick<LeaseManager, "acquire" | "renew" | "held">;
  wakeUps: Pick<WakeUps, "publish">;
  /** Backlog of `tasks.ready`; a rejection counts as "unknown". */
  queueDepth(): Promise<{ waiting: number }>;
  logger: Pick<Logger, "info" | "warn">;
  /**
   * Approval timeouts (src/approvals), its calls bounded like the store's: `expire` fails the tasks whose
   * gated call waited past its deadline, and answers how many. @default none
   */
  approvals?(callTimeoutMs: number): { expire(): Promise<number> };
}

export interface ReaperLoopOptions {
  /** Who holds the reaper lease, e.g. `${nodeID}:reaper`. */
  owner: string;
  /** Time between sweeps. */
  intervalMs: number;
  /** A queued task is re-published when its last wake-up is older than this and the queue is drained. */
  queuedAfterMs: number;
}

export class ReaperLoop {
  /** Deadline of each store call a sweep makes. */
  readonly callTimeoutMs: number;
  /** Outlives two missed renewals, so a busy reaper keeps its role. */
  private readonly leaseTtlMs: number;
  private readonly reaper: Reaper;
  private readonly approvals: { expire(): Promise<number> } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    private readonly deps: ReaperLoopDeps,
    private readonly opts: ReaperLoopOptions,
  ) {
    this.callTimeoutMs = Math.max(10_000, opts.intervalMs * 10);
    this.leaseTtlMs = Math.max(opts.intervalMs * 3, 3000);
    this.reaper = new Reaper(
      {
        store: deps.store(this.callTimeoutMs),
        leases: deps.leases,
        publish: (w) => deps.wakeUps.publish(w),
        waiting: async () => (await deps.queueDepth().catch(() => undefined))?.waiting,
      },
      { queuedAfterMs: opts.queuedAfterMs, unleasedSweeps: 2, batch: 500 },
    );
    this.approvals = deps.approvals?.(this.callTimeoutMs);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** Stops scheduling sweeps; one already running finishes on its own. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One turn: sweeps if this process holds (or wins) the reaper lease; logs, never throws. */
  private async tick(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    const { leases, logger } = this.deps;
    const { owner } = this.opts;
    try {
      const mine = (await leases.renew(REAPER_LEASE, owner, this.leaseTtlMs)) || (await leases.acquire(REAPER_LEASE, owner, this.leaseTtlMs));
      if (!mine) return;
      await this.expireApprovals();
      const r = await this.reaper.sweep();
      if (r.requeuedQueued + r.requeuedRunning > 0) {
        logger.info({ event: "reaper.requeued", requeuedQueued: r.requeuedQueued, requeuedRunning: r.requeuedRunning }, "reaper re-published orphaned tasks");
      }
      if (r.purgedKeys > 0) logger.info({ event: "reaper.purged_keys", purged: r.purgedKeys }, "reaper deleted expired idempotency keys");
    } catch (err) {
      logger.warn({ event: "reaper.failed", err: messageOf(err) }, "reaper sweep failed");
    } finally {
      this.sweeping = false;
    }
  }

  /** Apart from the sweep: a sweep that fails (Redis down, say) must not hold a timed-out call open. */
  private async expireApprovals(): Promise<void> {
    if (!this.approvals) return;
    try {
      const expired = await this.approvals.expire();
      if (expired > 0) this.deps.logger.info({ event: "reaper.approvals_expired", expired }, "reaper failed tasks whose approval timed out");
    } catch (err) {
      this.deps.logger.warn({ event: "reaper.approvals_failed", err: messageOf(err) }, "approval timeouts not applied; the next sweep tries again");
    }
  }
}
