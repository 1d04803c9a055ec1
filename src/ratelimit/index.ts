/** Public surface of the rate limiter (invariant 5): buckets per model and tier, reserve then settle, priority backpressure. */
import type { Redis } from "ioredis";
import type { Config } from "../config";
import { MemoryBuckets, type Buckets } from "./buckets";
import { RateLimiter, type RateLimiterOptions } from "./limiter";
import { RedisBuckets } from "./redisBuckets";

export { MemoryBuckets, NO_REMAINING, type Buckets, type ReserveOutcome } from "./buckets";
export { RedisBuckets } from "./redisBuckets";
export { RateLimiter, Permit, type LimitedCall, type ProviderLimitHeaders, type RateLimiterOptions } from "./limiter";
export { InputTokenEstimator, rawTokenEstimate } from "./estimator";
export { bucketSpecs, requestBucket, tokenBucket, resolveScope, RateLimitTableSchema, type BucketSpec, type LimitSpec, type RateLimitTable, type Triple } from "./limits";

/** The gateway's limiter: Redis buckets in a cluster (one truth for every gateway), in-process ones embedded. */
export function createRateLimiter(
  config: Pick<Config, "mode" | "namespace" | "rateLimits">,
  redis: () => Redis,
  logger?: RateLimiterOptions["logger"],
): RateLimiter {
  const buckets: Buckets = config.mode === "embedded" ? new MemoryBuckets() : new RedisBuckets(redis(), { prefix: config.namespace });
  return new RateLimiter(buckets, { ...config.rateLimits, ...(logger ? { logger } : {}) });
}
