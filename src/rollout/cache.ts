/**
 * Intake's view of the rollout rows, so that routing a new task costs no read:
 * reloaded every second, and at once when a `clawfleet.control.canary_*` event
 * says a row changed (a canary started, stepped, promoted, rolled back or
 * aborted on any node). A change is thus seen by every intake within a second
 * at worst, and at once normally. Rows are never deleted and every change bumps
 * `revision`, so a reload that raced a newer write never takes a row back.
 */
import type { Rollout } from "../contracts";
import { messageOf } from "../errors";
import type { Logger } from "../logging";

/** The longest a cached row may be older than the database's. */
export const ROLLOUT_REFRESH_MS = 1000;

export class RolloutCache {
  private readonly rows = new Map<string, Rollout>();
  private loaded = false;
  private inflight: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly load: () => Promise<Rollout[]>,
    private readonly logger: Pick<Logger, "warn" | "info">,
    private readonly refreshMs = ROLLOUT_REFRESH_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
    void this.refresh();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  get(agent: string): Rollout | undefined {
    return this.rows.get(agent);
  }

  /** Whether a load ever succeeded. */
  get ready(): boolean {
    return this.loaded;
  }

  /** A row this process just wrote (or read): kept unless the cache already has a newer revision of it. */
  put(rollout: Rollout): void {
    const held = this.rows.get(rollout.agent);
    if (!held || held.revision <= rollout.revision) this.rows.set(rollout.agent, rollout);
  }

  /**
   * Reloads every row. A call during a load queues one more load after it (that load may have read before the
   * change being announced), and calls meanwhile share it. Never rejects: a failed load keeps the rows held.
   */
  refresh(): Promise<void> {
    if (!this.inflight) {
      this.inflight = this.loadOnce().finally(() => (this.inflight = undefined));
      return this.inflight;
    }
    this.queued ??= this.inflight.then(() => {
      this.queued = undefined;
      return this.refresh();
    });
    return this.queued;
  }

  /** Until the first load has succeeded: tries one now. */
  async ensureLoaded(): Promise<void> {
    if (!this.loaded) await this.refresh();
  }

  private async loadOnce(): Promise<void> {
    try {
      const rows = await this.load();
      for (const r of rows) this.put(r);
      this.loaded = true;
      if (this.failing) this.logger.info({ event: "rollouts.refreshed" }, "rollout rows readable again");
      this.failing = false;
    } catch (err) {
      // Once per outage: new tasks keep the routing last read meanwhile.
      if (!this.failing) this.logger.warn({ event: "rollouts.refresh_failed", err: messageOf(err) }, "could not reload the rollout rows; routing as last read");
      this.failing = true;
    }
  }
}
