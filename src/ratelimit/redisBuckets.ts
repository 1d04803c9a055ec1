/**
 * Cluster-wide buckets in Redis: one hash per scope, updated only by the Lua
 * scripts in src/ratelimit/lua/ (read, refill, check and debit in one atomic
 * step, on Redis' clock).
 */
import type { Redis } from "ioredis";
import { awaitRedis } from "../redis/connection";
import { RedisScripts, luaDir } from "../redis/scripts";
import type { Buckets, ReserveOutcome } from "./buckets";
import { NO_REMAINING } from "./buckets";
import { LimitSpecSchema, type BucketSpec, type LimitSpec, type Triple } from "./limits";

export interface RedisBucketsOptions {
  /** Namespaces the keys: `${prefix}:ratelimit:${scope}`. Usually the Moleculer namespace. */
  prefix: string;
}

const specArgs = (specs: Triple<BucketSpec>) => [...specs.map((s) => s.capacity), ...specs.map((s) => s.refillPerMs)];

export class RedisBuckets implements Buckets {
  private readonly scripts: RedisScripts;

  constructor(
    private readonly redis: Redis,
    private readonly opts: RedisBucketsOptions,
  ) {
    if (opts.prefix === "") throw new RangeError("RedisBuckets needs a non-empty key prefix");
    this.scripts = RedisScripts.load(redis, luaDir("ratelimit", "lua"));
  }

  /** The Redis key of a scope's buckets; exposed for tests and operators' tooling. */
  key(scope: string): string {
    return `${this.opts.prefix}:ratelimit:${scope}`;
  }

  async reserve(scope: string, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number): Promise<ReserveOutcome> {
    const reply = await this.call("reserve", this.scripts.run("reserveRate", [this.key(scope)], [horizonMs, ...specArgs(specs), ...need]));
    const [admitted, wait, now] = reply as [number, string, string];
    return { admitted: admitted === 1, waitMs: Number(wait), nowMs: Number(now) };
  }

  async settle(scope: string, specs: Triple<BucketSpec>, delta: Triple<number>, remaining: Triple<number | undefined> = NO_REMAINING): Promise<void> {
    await this.call("settle", this.scripts.run("settleRate", [this.key(scope)], [...specArgs(specs), ...delta, ...remaining.map((r) => r ?? -1)]));
  }

  async penalize(scope: string, specs: Triple<BucketSpec>, delayMs: number): Promise<void> {
    await this.call("penalize", this.scripts.run("penalizeRate", [this.key(scope)], [delayMs, ...specArgs(specs)]));
  }

  /** Where a model's learned limits live (JSON, with a TTL): beside the buckets, never a scope's key. */
  learnedKey(model: string): string {
    return `${this.opts.prefix}:ratelimit-learned:${model}`;
  }

  async learnedLimits(model: string): Promise<LimitSpec | undefined> {
    const raw = await this.call("learned", this.redis.get(this.learnedKey(model)));
    if (raw === null) return undefined;
    try {
      const parsed = LimitSpecSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : undefined;
    } catch {
      // Not ours to trust: no learned limits, the next provider answer writes good ones.
      return undefined;
    }
  }

  async learnLimits(model: string, limits: LimitSpec, ttlMs: number): Promise<void> {
    await this.call("learn", this.redis.set(this.learnedKey(model), JSON.stringify(limits), "PX", Math.max(1, Math.ceil(ttlMs))));
  }

  /** The connection is shared (leases, queue statistics); whoever opened it closes it. */
  async close(): Promise<void> {}

  private call<T>(operation: string, pending: Promise<T>): Promise<T> {
    return awaitRedis("rate-limit", operation, pending);
  }
}
