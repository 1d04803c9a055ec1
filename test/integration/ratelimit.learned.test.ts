/**
 * ratelimit learned limits - the limits a gateway learns from the provider's
 * `anthropic-ratelimit-*-limit` headers live in Redis, shared by every gateway:
 * a gateway that just started (its own connection, nothing in memory) is held to
 * them at once; they expire when no answer renews them. Real Redis.
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { ProviderRequestError, RateLimitedError } from "../../src/errors";
import { RateLimiter, RedisBuckets, type LimitedCall } from "../../src/ratelimit";
import { hasService, REDIS_TEST_URL, uniqueId } from "../helpers/services";

const MODEL = "claude-sonnet-5-5";
const call = (maxTokens = 100): LimitedCall => ({ model: MODEL, tier: "reason", priority: "normal", maxTokens, system: "s", messages: [{ role: "user", content: "hi" }], tools: [] });
const usage = { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!hasService("redis"))("ratelimit learned limits - shared through Redis", () => {
  const prefix = uniqueId("rllearn");
  const connections: Redis[] = [];
  /** A gateway of its own: a fresh connection and a fresh limiter. */
  const gateway = (opts: { learnedTtlMs?: number } = {}) => {
    const redis = new Redis(REDIS_TEST_URL);
    connections.push(redis);
    const buckets = new RedisBuckets(redis, { prefix });
    return { buckets, limiter: new RateLimiter(buckets, { limits: {}, windowMs: 60_000, maxWaitMs: 10, horizonMs: 5, ...opts }) };
  };
  afterAll(async () => {
    const redis = connections[0] ?? new Redis(REDIS_TEST_URL);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await Promise.all(connections.map((c) => c.quit()));
  });

  it("a gateway that just started is held to the limits another one learned from the provider's headers", async () => {
    const a = gateway();
    const probe = await a.limiter.acquire(call());
    await probe.settle(usage, { requestsLimit: 60, requestsRemaining: 59, outputTokensLimit: 1000, outputTokensRemaining: 995 });
    const b = gateway();
    // More output than the learned limit: never admissible, so refused for good rather than sent.
    await expect(b.limiter.acquire(call(2000))).rejects.toBeInstanceOf(ProviderRequestError);
    // 60 requests a minute, paced: the probe's request was charged, the next one is ~2 s away.
    await expect(b.limiter.acquire(call())).rejects.toBeInstanceOf(RateLimitedError);
  });

  it("learned limits are renewed by each answer that reports them and forgotten once none has for their TTL", async () => {
    const model = uniqueId("model");
    const a = gateway({ learnedTtlMs: 400 });
    const learn = () => a.limiter.learned.report(model, { requestsLimit: 600 });
    await learn();
    expect(await a.buckets.learnedLimits(model)).toEqual({ rpm: 600 });
    await sleep(250);
    await learn(); // past a quarter of the TTL: written again
    await sleep(250);
    expect(await a.buckets.learnedLimits(model)).toEqual({ rpm: 600 });
    await sleep(300);
    expect(await a.buckets.learnedLimits(model)).toBeUndefined();
  });
});
