/**
 * An agent's daily cost cap (`max_daily_cost_usd`): once the tasks of the agent
 * created today (UTC) have cost the cap, intake refuses new ones with a 429
 * until 00:00 UTC. A task's cost counts on the day it was created, whenever it
 * is spent: that is one indexed sum (migration 009), and a task admitted under
 * today's cap stays today's. Tasks already admitted run on under their own
 * budgets; the cap decides admission only.
 *
 * The sum is read at most about once a second per agent and intake process, and
 * only for agents with a cap, so submits of other agents cost nothing extra; the
 * price is that a burst of submits within that second may all be admitted.
 */
import { DailyBudgetExhaustedError } from "../errors";

/** How long one agent's sum is reused. */
export const DAILY_COST_TTL_MS = 1_000;
const DAY_MS = 86_400_000;

/** 00:00 UTC of the day `nowMs` falls in. */
export const utcDayStart = (nowMs: number): number => Math.floor(nowMs / DAY_MS) * DAY_MS;

/** Whole seconds until the next 00:00 UTC, at least 1. */
export const secondsUntilUtcMidnight = (nowMs: number): number => Math.max(1, Math.ceil((utcDayStart(nowMs) + DAY_MS - nowMs) / 1000));

/** The cost of `agent`'s tasks created at or after `since` (ISO 8601). */
export type AgentCostSince = (agent: string, since: string) => Promise<number>;

interface Cached {
  at: number;
  day: number;
  cost: Promise<number>;
}

export class DailyCostGate {
  private readonly cache = new Map<string, Cached>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly costSince: AgentCostSince,
    opts: { ttlMs?: number; now?: () => number } = {},
  ) {
    this.ttlMs = opts.ttlMs ?? DAILY_COST_TTL_MS;
    this.now = opts.now ?? Date.now;
  }

  /** Throws DailyBudgetExhaustedError (429, `retryAfter` until 00:00 UTC) once `agent` has spent `capUsd` today. */
  async admit(agent: string, capUsd: number): Promise<void> {
    const now = this.now();
    const spent = await this.spentToday(agent, now);
    if (spent < capUsd) return;
    throw new DailyBudgetExhaustedError(
      `agent ${agent} has spent $${Number(spent.toFixed(6))} today (UTC), its daily budget is $${capUsd}; new tasks are accepted again at 00:00 UTC`,
      { agent, spent_usd: spent, max_daily_cost_usd: capUsd, retryAfter: secondsUntilUtcMidnight(now) },
    );
  }

  private spentToday(agent: string, now: number): Promise<number> {
    const day = utcDayStart(now);
    const hit = this.cache.get(agent);
    if (hit && hit.day === day && now - hit.at < this.ttlMs) return hit.cost;
    const entry: Cached = { at: now, day, cost: this.costSince(agent, new Date(day).toISOString()) };
    this.cache.set(agent, entry);
    // A failed read is not reused: the next submit asks again.
    entry.cost.catch(() => {
      if (this.cache.get(agent) === entry) this.cache.delete(agent);
    });
    return entry.cost;
  }
}
