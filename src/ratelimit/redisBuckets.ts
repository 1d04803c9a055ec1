/**
 * Cluster-wide buckets in Redis: one hash per scope, updated only by the Lua
 * scripts in src/ratelimit/lua/ (read, refill, check and debit in one atomic
 * step, on Redis' clock).
 */
import type { Redis } from "ioredis";
import { awaitRedis } from "../redis/connection";
import { RedisScripts, luaDir } from "../redis/scripts";
import type { Buckets, ReserveOptions, ReserveOutcome, UsageTarget } from "./buckets";
import { NO_REMAINING } from "./buckets";
import { LimitSpecSchema, type BucketSpec, type LimitSpec, type Triple } from "./limits";

export interface RedisBucketsOptions {
  /** Namespaces the keys: `${prefix}:ratelimit:${scope}`. Usually the Moleculer namespace. */
  prefix: string;
}

const specArgs = (specs: Triple<BucketSpec>) => [...specs.map((s) => s.capacity), ...specs.map((s) => s.refillPerMs)];
/** A settle's arguments: the deltas, then the remaining counts (-1: not reported). */
const correctionArgs = (delta: Triple<number>, remaining: Triple<number | undefined>) => [...delta, ...remaining.map((r) => r ?? -1)];
/** The folded-settle arguments of a reserve that folds none. */
const NO_SETTLE = [0, 0, 0, -1, -1, -1, 0, 0, 0];

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

  async reserve(scope: string, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number, opts: ReserveOptions = {}): Promise<ReserveOutcome> {
    return (await this.reserveMany(scope, specs, [need], horizonMs, opts))[0] as ReserveOutcome;
  }

  async reserveMany(scope: string, specs: Triple<BucketSpec>, needs: readonly Triple<number>[], horizonMs: number, opts: ReserveOptions = {}): Promise<ReserveOutcome[]> {
    if (needs.length === 0) throw new RangeError("reserveMany needs at least one call");
    const { settleFirst, usage } = opts;
    const folded = settleFirst ? [1, ...correctionArgs(settleFirst.delta, settleFirst.remaining), ...settleFirst.used] : [0, ...NO_SETTLE];
    const keys = [this.key(scope), this.usageKeyOf(scope, usage)];
    const reply = (await this.call("reserve", this.scripts.run("reserveRate", keys, [horizonMs, ...specArgs(specs), usage?.windowMs ?? 0, ...folded, ...needs.flat()]))) as Array<string | number>;
    const nowMs = Number(reply[0]);
    const outcomes: ReserveOutcome[] = [];
    for (let i = 1; i + 1 < reply.length; i += 2) outcomes.push({ admitted: reply[i] === 1, waitMs: Number(reply[i + 1]), nowMs });
    return outcomes;
  }

  async settle(scope: string, specs: Triple<BucketSpec>, delta: Triple<number>, remaining: Triple<number | undefined> = NO_REMAINING, usage?: UsageTarget & { used: Triple<number> }): Promise<void> {
    const keys = [this.key(scope), this.usageKeyOf(scope, usage)];
    await this.call("settle", this.scripts.run("settleRate", keys, [...specArgs(specs), ...correctionArgs(delta, remaining), usage?.windowMs ?? 0, ...(usage?.used ?? [0, 0, 0])]));
  }

  /** The usage hash a reserve or settle adds to; without one, the scope's own key stands in (the script leaves it). */
  private usageKeyOf(scope: string, usage: UsageTarget | undefined): string {
    return usage ? this.usageKey(usage.model) : this.key(scope);
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

  /** The models with learned limits, each scored with when its limits expire (ms): `GET /v1/limits` lists them. */
  learnedModelsKey(): string {
    return `${this.opts.prefix}:ratelimit-learned-models`;
  }

  async learnLimits(model: string, limits: LimitSpec, ttlMs: number): Promise<void> {
    const ms = Math.max(1, Math.ceil(ttlMs));
    const written = this.redis
      .multi()
      .set(this.learnedKey(model), JSON.stringify(limits), "PX", ms)
      .zadd(this.learnedModelsKey(), Date.now() + ms, model)
      .exec();
    const failed = (await this.call("learn", written))?.find(([err]) => err !== null)?.[0];
    if (failed) throw failed;
  }

  async learnedModels(): Promise<string[]> {
    const key = this.learnedModelsKey();
    const reply = await this.call("learned models", this.redis.multi().zremrangebyscore(key, "-inf", Date.now()).zrange(key, 0, -1).exec());
    const members = reply?.[1]?.[1];
    return Array.isArray(members) ? members.map(String) : [];
  }

  /** Where a model's usage windows live (usageWindow.ts): beside the buckets, never a scope's key. */
  usageKey(model: string): string {
    return `${this.opts.prefix}:ratelimit-used:${model}`;
  }

  async addUsage(model: string, delta: Triple<number>, windowMs: number): Promise<void> {
    await this.call("add usage", this.scripts.run("addUsage", [this.usageKey(model)], [windowMs, ...delta]));
  }

  async usage(model: string, windowMs: number): Promise<Triple<number>> {
    const reply = (await this.call("usage", this.scripts.run("readUsage", [this.usageKey(model)], [windowMs]))) as [string, string, string];
    return [Number(reply[0]), Number(reply[1]), Number(reply[2])];
  }

  /** The connection is shared (leases, queue statistics); whoever opened it closes it. */
  async close(): Promise<void> {}

  private call<T>(operation: string, pending: Promise<T>): Promise<T> {
    return awaitRedis("rate-limit", operation, pending);
  }
}
