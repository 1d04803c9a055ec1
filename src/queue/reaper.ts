/**
 * Postgres is the truth and queue messages are only wake-ups, so a task can be
 * orphaned two ways: `queued` with its wake-up lost (a crash between the commit
 * and the publish, a queue that lost data), or `running` with nobody holding its
 * lease (the planner died). The reaper finds both and publishes a new wake-up;
 * a duplicate wake-up is harmless (the lease decides who runs the task).
 *
 * It also keeps the idempotency keys bounded: keys past their 24 h window answer
 * nothing any more, and a sweep deletes them a batch at a time.
 */
import type { LeaseManager } from "../lease/types";
import type { TaskStore } from "../store/types";
import type { WakeUp } from "../contracts";

export interface ReaperDeps {
  store: Pick<TaskStore, "listStaleQueued" | "listRunning" | "touchWakeup" | "purgeIdempotencyKeys">;
  leases: Pick<LeaseManager, "held">;
  publish(wakeUp: WakeUp): Promise<void>;
  /** Wake-ups waiting in the queue, not yet delivered; undefined when unknown. */
  waiting(): Promise<number | undefined>;
}

export interface ReaperOptions {
  /** A queued task is re-published when its last wake-up is older than this and the queue is drained. */
  queuedAfterMs: number;
  /** A running task without a live lease is re-published after this many consecutive sweeps find it so. */
  unleasedSweeps: number;
  batch: number;
  /** Expired idempotency keys are purged at most this often (sooner while a full batch comes back). @default 60000 */
  purgeEveryMs?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

export interface SweepResult {
  requeuedQueued: number;
  requeuedRunning: number;
  /** Expired idempotency keys deleted by this sweep. */
  purgedKeys: number;
}

export class Reaper {
  /** Running tasks seen without a lease, by id → consecutive sweeps. Guards the instant between claim and first renew. */
  private readonly unleased = new Map<string, number>();
  private lastPurgeAt = -Infinity;

  constructor(
    private readonly deps: ReaperDeps,
    private readonly opts: ReaperOptions,
  ) {}

  async sweep(): Promise<SweepResult> {
    const result: SweepResult = { requeuedQueued: 0, requeuedRunning: 0, purgedKeys: 0 };
    const running = await this.deps.store.listRunning(this.opts.batch);
    if (running.length > 0) {
      const held = await this.deps.leases.held(running.map((r) => r.id));
      const seen = new Set<string>();
      const orphans: string[] = [];
      running.forEach((r, i) => {
        if (held[i]) return;
        seen.add(r.id);
        const n = (this.unleased.get(r.id) ?? 0) + 1;
        this.unleased.set(r.id, n);
        if (n >= this.opts.unleasedSweeps) orphans.push(r.id);
      });
      for (const id of this.unleased.keys()) if (!seen.has(id)) this.unleased.delete(id);
      for (const id of orphans) {
        this.unleased.delete(id);
        await this.deps.publish({ taskId: id, reason: "reaped" });
      }
      if (orphans.length > 0) await this.deps.store.touchWakeup(orphans);
      result.requeuedRunning = orphans.length;
    } else {
      this.unleased.clear();
    }

    // A backlog of legitimately waiting wake-ups must not be duplicated: only re-publish when the queue is drained.
    const waiting = await this.deps.waiting();
    if (waiting === undefined || waiting === 0) {
      const stale = await this.deps.store.listStaleQueued(this.opts.queuedAfterMs, this.opts.batch);
      for (const id of stale) await this.deps.publish({ taskId: id, reason: "reaped" });
      if (stale.length > 0) await this.deps.store.touchWakeup(stale);
      result.requeuedQueued = stale.length;
    }
    result.purgedKeys = await this.purgeKeys();
    return result;
  }

  private async purgeKeys(): Promise<number> {
    const now = (this.opts.now ?? Date.now)();
    if (now - this.lastPurgeAt < (this.opts.purgeEveryMs ?? 60_000)) return 0;
    const purged = await this.deps.store.purgeIdempotencyKeys(this.opts.batch);
    // A full batch means more are waiting: the next sweep goes on at once.
    if (purged < this.opts.batch) this.lastPurgeAt = now;
    return purged;
  }
}
