/**
 * Mutual exclusion between live planners: a task is worked on only by the holder
 * of its lease. Fencing (rejecting a zombie's late writes) is the store's job: the
 * fencing token comes from `TaskStore.claimTask`, bumped in the same database that
 * checks it, so it stays monotonic even if Redis loses its keys.
 */
export interface LeaseManager {
  /** SET NX PX: true if `owner` now holds the lease. */
  acquire(taskId: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Extends the lease only if `owner` still holds it. False means the lease is lost. */
  renew(taskId: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Compare-and-delete: releases only if `owner` holds it. */
  release(taskId: string, owner: string): Promise<boolean>;
  /** For the reaper: whether each task currently has a live lease (any owner). */
  held(taskIds: readonly string[]): Promise<boolean[]>;
  close(): Promise<void>;
}
