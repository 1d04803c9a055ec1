/**
 * One heartbeat for every lease a planner holds. Each attempt hands its lease
 * over while it runs; every `renewMs` the renewer extends all of them in one
 * round trip (`LeaseManager.renewMany`) and tells each holder what became of its
 * own: renewed (with the moment until which it is surely held: a TTL after
 * the renewal was sent) or lost. With 2,000 tasks in flight that is one round
 * trip per period, of two script calls (one per thousand leases), instead of
 * 2,000 timers and 2,000 calls.
 */
import { messageOf } from "../errors";
import type { Logger } from "../logging";
import type { HeldLease, LeaseManager } from "./types";

/** What a holder hears about its lease after each heartbeat. */
export interface RenewalListener {
  /** The lease was extended by a renewal sent a TTL before `sureUntil` (the renewer's monotonic clock). */
  renewed(sureUntil: number): void;
  /** The lease is no longer this owner's: expired, released, or taken over. Said once; the lease is then dropped. */
  lost(): void;
}

export interface LeaseRenewerOptions {
  leases: Pick<LeaseManager, "renewMany">;
  ttlMs: number;
  renewMs: number;
  /** Monotonic clock (ms), the one the holders keep their deadlines on. */
  now: () => number;
  logger: Pick<Logger, "warn">;
}

export class LeaseRenewer {
  /** Keyed by the holder's own lease object: two attempts at one task (a take-over) stay apart. */
  private readonly holders = new Map<HeldLease, RenewalListener>();
  private timer: NodeJS.Timeout | undefined;
  /** A heartbeat whose round trip is not back yet; the next one waits for it rather than piling on a slow store. */
  private pending = false;

  /** `renewMs` below `ttlMs`, as the configuration checks (CLAWFLEET_LEASE_RENEW_MS). */
  constructor(private readonly opts: LeaseRenewerOptions) {}

  /** Leases renewed on the next heartbeat. */
  get size(): number {
    return this.holders.size;
  }

  /** Renews `lease` from the next heartbeat on, until the returned function is called (or the lease is lost). */
  hold(lease: HeldLease, listener: RenewalListener): () => void {
    this.holders.set(lease, listener);
    this.timer ??= setInterval(() => this.beat(), this.opts.renewMs).unref();
    return () => this.drop(lease, listener);
  }

  /** One round trip for every lease held when it starts; answers for leases dropped meanwhile are ignored. */
  beat(): void {
    if (this.pending || this.holders.size === 0) return;
    const batch = [...this.holders];
    // Counted from the send: the store counts its TTL from a later moment, so the lease lasts at least this long.
    const sureUntil = this.opts.now() + this.opts.ttlMs;
    this.pending = true;
    void this.opts.leases
      .renewMany(
        batch.map(([lease]) => lease),
        this.opts.ttlMs,
      )
      .then(
        (answers) => {
          batch.forEach(([lease, listener], i) => {
            if (this.holders.get(lease) !== listener) return;
            if (answers[i] === true) return listener.renewed(sureUntil);
            this.drop(lease, listener);
            listener.lost();
          });
        },
        (err: unknown) => {
          // The store could not be asked: each holder keeps working while its lease is surely its own (its
          // sure-until deadline), and the fence guards the writes. One line for the heartbeat, not one per lease.
          this.opts.logger.warn({ event: "lease.renew_failed", leases: batch.length, err: messageOf(err) }, "lease renewal failed");
        },
      )
      .finally(() => {
        this.pending = false;
      });
  }

  private drop(lease: HeldLease, listener: RenewalListener): void {
    if (this.holders.get(lease) !== listener) return;
    this.holders.delete(lease);
    if (this.holders.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
