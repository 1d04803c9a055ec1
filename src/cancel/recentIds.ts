/**
 * Task ids cancelled a short while ago, remembered for as long as a call of
 * theirs may still be on its way: a planner that hears of a cancel before its
 * attempt of that task is registered, or an executor reached by a tool call that
 * was sent before the cancel but arrives after it, refuses the work. Bounded in
 * time and in size: past either, an id is forgotten (the fence still refuses
 * every write of the attempt; this only spares the calls).
 */
export interface RecentIdsOptions {
  /** How long an id is remembered. @default 2 minutes */
  ttlMs?: number;
  /** At most this many ids; the oldest go first. @default 100_000 */
  max?: number;
  /** @default Date.now */
  now?: () => number;
}

export class RecentIds {
  /** Insertion order is expiry order: every id gets the same TTL. */
  private readonly until = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(opts: RecentIdsOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 120_000;
    this.max = opts.max ?? 100_000;
    this.now = opts.now ?? Date.now;
  }

  add(id: string): void {
    this.until.delete(id);
    this.until.set(id, this.now() + this.ttlMs);
    this.prune();
  }

  has(id: string): boolean {
    const until = this.until.get(id);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.until.delete(id);
    return false;
  }

  get size(): number {
    return this.until.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [id, until] of this.until) {
      if (until > now && this.until.size <= this.max) break;
      this.until.delete(id);
    }
  }
}
