/**
 * Leases for embedded mode (one process). Mirrors Redis `SET NX PX` semantics,
 * expiry included: an expired lease is free even if nobody released it. Expiry is
 * checked lazily against a monotonic clock, so no timer runs and a wall-clock jump
 * (NTP, suspend) neither frees nor prolongs a lease.
 */
import { performance } from "node:perf_hooks";
import { UnavailableError } from "../errors";
import { checkOwner, checkTtl } from "./checks";
import type { HeldLease, LeaseManager } from "./types";

export interface MemoryLeaseManagerOptions {
  /** Monotonic milliseconds. @default performance.now */
  now?: () => number;
}

interface Lease {
  owner: string;
  expiresAt: number;
}

/** Expired leases nobody touches again are swept after this many acquisitions, keeping memory bounded without a timer. */
const SWEEP_EVERY = 1024;

export class MemoryLeaseManager implements LeaseManager {
  private readonly leases = new Map<string, Lease>();
  private readonly now: () => number;
  private acquisitions = 0;
  private closed = false;

  constructor(opts: MemoryLeaseManagerOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
  }

  async acquire(taskId: string, owner: string, ttlMs: number): Promise<boolean> {
    this.checkOpen();
    checkOwner(owner);
    checkTtl(ttlMs);
    if (++this.acquisitions % SWEEP_EVERY === 0) this.sweep();
    if (this.live(taskId)) return false;
    this.leases.set(taskId, { owner, expiresAt: this.now() + ttlMs });
    return true;
  }

  async renew(taskId: string, owner: string, ttlMs: number): Promise<boolean> {
    this.checkOpen();
    checkTtl(ttlMs);
    return this.extend(taskId, owner, ttlMs);
  }

  async renewMany(leases: readonly HeldLease[], ttlMs: number): Promise<boolean[]> {
    this.checkOpen();
    checkTtl(ttlMs);
    return leases.map((l) => this.extend(l.taskId, l.owner, ttlMs));
  }

  async release(taskId: string, owner: string): Promise<boolean> {
    this.checkOpen();
    if (this.live(taskId)?.owner !== owner) return false;
    this.leases.delete(taskId);
    return true;
  }

  async held(taskIds: readonly string[]): Promise<boolean[]> {
    this.checkOpen();
    return taskIds.map((id) => this.live(id) !== undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.leases.clear();
  }

  private extend(taskId: string, owner: string, ttlMs: number): boolean {
    const lease = this.live(taskId);
    if (lease?.owner !== owner) return false;
    lease.expiresAt = this.now() + ttlMs;
    return true;
  }

  /** The lease if it has not expired; an expired one is dropped on sight. */
  private live(taskId: string): Lease | undefined {
    const lease = this.leases.get(taskId);
    if (lease === undefined) return undefined;
    if (lease.expiresAt > this.now()) return lease;
    this.leases.delete(taskId);
    return undefined;
  }

  private sweep(): void {
    const now = this.now();
    for (const [taskId, lease] of this.leases) if (lease.expiresAt <= now) this.leases.delete(taskId);
  }

  private checkOpen(): void {
    if (this.closed) throw new UnavailableError("lease manager is closed");
  }
}
