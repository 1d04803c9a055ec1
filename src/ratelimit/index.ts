/** Public surface of the rate limiter (invariant 5, docs/invariants.md): buckets per model and tier, reserve then settle, priority backpressure. */

export { MemoryBuckets, NO_REMAINING, type Buckets, type ReserveOutcome } from "./buckets";
export { RedisBuckets } from "./redisBuckets";
export { RateLimiter, Permit, type LimitedCall, type ProviderLimitHeaders, type RateLimiterOptions } from "./limiter";
export { InputTokenEstimator, rawTokenEstimate } from "./estimator";
export { limitsReport, tierModels } from "./limitsReport";
export { bucketSpecs, requestBucket, tokenBucket, resolveScope, RateLimitTableSchema, type BucketSpec, type LimitSpec, type RateLimitTable, type Triple } from "./limits";

