/**
 * Mutual exclusion between live planners: a task is worked on only by the holder
 * of its lease. Fencing (rejecting a zombie's late writes) is the store's job: the
 * fencing token comes from `TaskStore.claimTask`, bumped in the same database that
 * checks it, so it stays monotonic even if Redis loses its keys.
 */
/** A lease as its holder knows it: the task, and the owner it was acquired as. */
export interface HeldLease {
  readonly taskId: string;
  readonly owner: string;
}

export interface LeaseManager {
  /**
   * SET NX PX: true if `owner` now holds the lease. False while anyone holds it,
   * `owner` included: a holder extends its lease with `renew`, so a second
   * acquisition by the same owner (a duplicate wake-up) cannot pass for a fresh claim.
   */
  acquire(taskId: string, owner: string, ttlMs: number): Promise<boolean>;
  /**
   * Extends the lease only if `owner` still holds it. False means the lease is lost;
   * an `UnavailableError` means the store could not be asked, and the lease may or
   * may not still be held: the caller decides whether to stop or to retry within its TTL.
   */
  renew(taskId: string, owner: string, ttlMs: number): Promise<boolean>;
  /**
   * `renew` of many leases in one round trip (a planner's every lease on one heartbeat): the i-th answer is
   * what `renew` would say of the i-th lease, each lease compared and extended on its own. An
   * `UnavailableError` means the store could not be asked, as for `renew`.
   */
  renewMany(leases: readonly HeldLease[], ttlMs: number): Promise<boolean[]>;
  /** Compare-and-delete: releases only if `owner` holds it. */
  release(taskId: string, owner: string): Promise<boolean>;
  /** For the reaper: whether each task currently has a live lease (any owner). */
  held(taskIds: readonly string[]): Promise<boolean[]>;
  /** Stops the manager; any later call rejects with `UnavailableError`. Leases still held simply expire. */
  close(): Promise<void>;
}
