/**
 * The per-tenant submit rate: a token bucket per tenant, taken from before a
 * submission is stored. In distributed mode the bucket lives in Redis, shared by
 * every intake process (lua/takeSubmit-1.lua); embedded, in memory. Over the rate,
 * intake answers 429 `rate_limited` with `Retry-After` and stores nothing.
 */
import type { Redis } from "ioredis";
import { RateLimitedError } from "../errors";
import { awaitRedis } from "../redis/connection";
import { luaDir, RedisScripts } from "../redis/scripts";
import type { SubmitLimit, TenantQuotas } from "./quotas";

export interface TakeOutcome {
  admitted: boolean;
  /** When refused: how long until the bucket holds a token again. */
  waitMs: number;
}

/** Where the tenants' submit buckets live. */
export interface SubmitBuckets {
  take(tenant: string, limit: SubmitLimit): Promise<TakeOutcome>;
}

/** One process's buckets (embedded mode), with the same arithmetic as the Lua script. */
export class MemorySubmitBuckets implements SubmitBuckets {
  private readonly buckets = new Map<string, { level: number; ts: number }>();

  /** `now`: a monotonic clock in ms. @default performance.now */
  constructor(private readonly now: () => number = () => performance.now()) {}

  async take(tenant: string, limit: SubmitLimit): Promise<TakeOutcome> {
    const now = this.now();
    const rate = limit.ratePerSec / 1000;
    const b = this.buckets.get(tenant) ?? { level: limit.burst, ts: now };
    const level = Math.min(limit.burst, b.level + Math.max(0, now - b.ts) * rate);
    const admitted = level >= 1;
    this.buckets.set(tenant, { level: admitted ? level - 1 : level, ts: now });
    return { admitted, waitMs: admitted ? 0 : (1 - level) / rate };
  }
}

/** Buckets in Redis, one hash per tenant under `${prefix}:tenant-submit:`, shared cluster-wide. */
export class RedisSubmitBuckets implements SubmitBuckets {
  private readonly scripts: RedisScripts;

  constructor(
    redis: Redis,
    private readonly opts: { prefix: string },
  ) {
    if (opts.prefix === "") throw new RangeError("RedisSubmitBuckets needs a non-empty key prefix");
    this.scripts = RedisScripts.load(redis, luaDir("tenancy", "lua"));
  }

  key(tenant: string): string {
    return `${this.opts.prefix}:tenant-submit:${tenant}`;
  }

  async take(tenant: string, limit: SubmitLimit): Promise<TakeOutcome> {
    const reply = await awaitRedis("tenant submit rate", "take", this.scripts.run("takeSubmit", [this.key(tenant)], [limit.burst, limit.ratePerSec / 1000]));
    const [admitted, wait] = reply as [number, string];
    return { admitted: admitted === 1, waitMs: Number(wait) };
  }
}

/** Intake's gate: admits a tenant's submission or throws the 429. */
export class SubmitQuota {
  constructor(
    private readonly quotas: TenantQuotas,
    private readonly buckets: SubmitBuckets,
  ) {}

  /** Throws RateLimitedError (429, `retryAfter` in seconds) when `tenant` is over its submit rate. */
  async admit(tenant: string): Promise<void> {
    const limit = this.quotas.submitLimit(tenant);
    if (limit === null) return;
    const { admitted, waitMs } = await this.buckets.take(tenant, limit);
    if (admitted) return;
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
    throw new RateLimitedError(`tenant ${tenant} is over its submit rate of ${limit.ratePerSec}/s (burst ${limit.burst}); retry after ${retryAfter} s`, {
      tenant,
      limit: "submit_rate",
      retryAfter,
    });
  }
}
