/**
 * From configured limits ("N per window") to bucket shapes, and from a model and
 * tier to the bucket scope that pays for the call.
 *
 * Every bucket is shaped so that capacity + refill × window <= limit: whatever the
 * order of calls, no window of the limit's length admits more than the limit (a
 * bucket holding a whole window AND refilling would admit up to twice it).
 * Requests are paced: the bucket holds one request and refills so that every
 * 1/60 of the window (the provider's "60 RPM may be enforced as 1 per second")
 * stays within the limit, which implies the whole window does too. Token
 * buckets hold 1/60 of the limit and refill the other 59/60 over the window; a
 * call needing more than the capacity books the refill it lacks (bucketMath.ts).
 */
import { z } from "zod";

const perWindow = z.number().int().positive();

export const LimitSpecSchema = z
  .object({
    /** Requests per window. */
    rpm: perWindow.optional(),
    /** Input tokens per window (uncached input plus cache writes, as the provider counts). */
    itpm: perWindow.optional(),
    /** Output tokens per window; reserved from `max_tokens`, settled to actual usage. */
    otpm: perWindow.optional(),
  })
  .strict();
export type LimitSpec = z.infer<typeof LimitSpecSchema>;

/**
 * `CLAWFLEET_RATE_LIMITS`: per model, optionally split per agent tier. A tier entry
 * is a partition with its own buckets (the operator keeps partitions within the
 * model's limit); tiers without an entry share the model's buckets.
 */
export const RateLimitTableSchema = z.record(
  z.string().min(1),
  LimitSpecSchema.extend({ tiers: z.record(z.string().min(1), LimitSpecSchema).optional() }).strict(),
);
export type RateLimitTable = z.infer<typeof RateLimitTableSchema>;

/** `capacity` 0 means "no limit": the bucket admits anything. */
export interface BucketSpec {
  capacity: number;
  refillPerMs: number;
}

/** Requests, input tokens, output tokens: the order of every triple in this module. */
export type Triple<T> = readonly [T, T, T];

export const UNLIMITED: BucketSpec = { capacity: 0, refillPerMs: 0 };

/** The short window the pacing holds, as a fraction of the limit's window. */
export const SHORT_WINDOW_DIVISOR = 60;

/**
 * Half a request of slack per short window: it absorbs delivery jitter of half a
 * pacing interval between the bucket's clock and the provider's.
 */
export const SHORT_WINDOW_SLACK = 0.5;

/**
 * One request of burst, refilled at n − ½ per 1/60 of the window, n = ⌊limit/60⌋:
 * a window of 1/60 then holds at most ⌊1 + n − ½⌋ = n ≤ limit/60 requests, and the
 * whole window at most 1 + 60·(n − ½) ≤ limit. (At 1800 per window that is 98.3%
 * of the limit.) Below 90 per window the short window cannot hold a request
 * anyway; half the limit is the floor then.
 */
export function requestBucket(limit: number, windowMs: number): BucketSpec {
  const perShort = Math.floor(limit / SHORT_WINDOW_DIVISOR) - SHORT_WINDOW_SLACK;
  const perWindow = Math.max(perShort * SHORT_WINDOW_DIVISOR, limit / 2);
  return { capacity: 1, refillPerMs: perWindow / windowMs };
}

/**
 * 1/60 of the limit of burst, refilled at the rest less half a short window's
 * worth: capacity + refill × window = limit − limit/120 (99.2%; the steady rate is
 * 97.5% of the limit). The slack, like the request bucket's, absorbs delivery
 * jitter, and a refund of unused `max_tokens` that returns while its call's
 * window is still open (calls shorter than 1/120 of the window are covered).
 */
export function tokenBucket(limit: number, windowMs: number): BucketSpec {
  const capacity = limit / SHORT_WINDOW_DIVISOR;
  const slack = (limit * SHORT_WINDOW_SLACK) / SHORT_WINDOW_DIVISOR;
  return { capacity, refillPerMs: (limit - capacity - slack) / windowMs };
}

export function bucketSpecs(limits: LimitSpec | undefined, windowMs: number): Triple<BucketSpec> {
  return [
    limits?.rpm === undefined ? UNLIMITED : requestBucket(limits.rpm, windowMs),
    limits?.itpm === undefined ? UNLIMITED : tokenBucket(limits.itpm, windowMs),
    limits?.otpm === undefined ? UNLIMITED : tokenBucket(limits.otpm, windowMs),
  ];
}

export interface Scope {
  /** Names the buckets: `model` or `model/tier` for a partitioned tier. */
  key: string;
  limits: LimitSpec | undefined;
}

export function resolveScope(table: RateLimitTable, model: string, tier: string): Scope {
  const entry = table[model];
  const partition = entry?.tiers?.[tier];
  if (partition) return { key: `${model}/${tier}`, limits: partition };
  if (!entry) return { key: model, limits: undefined };
  const { rpm, itpm, otpm } = entry;
  return { key: model, limits: { rpm, itpm, otpm } };
}

/** The largest amount a limit admits in one window; a single call needing more can never be served. */
export function limitOf(limits: LimitSpec | undefined, i: 0 | 1 | 2): number | undefined {
  return i === 0 ? limits?.rpm : i === 1 ? limits?.itpm : limits?.otpm;
}
