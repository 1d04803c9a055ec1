/**
 * Options of the simulated Anthropic model. One schema: the validator, the
 * documented defaults and the TypeScript types all come from it.
 */
import { z } from "zod";
import { ConfigError } from "../errors";
import type { PolicyRoute } from "./policy";

const nonNegativeInt = z.number().int().nonnegative();
/** A per-minute limit; absent means unlimited. */
const perMinute = z.number().int().positive().optional();

export const SimOptionsSchema = z
  .object({
    /** TCP port; 0 picks a free one. @default 0 */
    port: z.number().int().min(0).max(65_535).default(0),
    /** Interface to bind. @default "127.0.0.1" */
    host: z.string().min(1).default("127.0.0.1"),
    /** When set, `/v1/*` requests must present it (`x-api-key` or `Authorization: Bearer`), else 401. @default undefined (no check) */
    apiKey: z.string().min(1).optional(),
    /** Fixed delay before each `/v1/messages` answer. @default 0 */
    latencyMs: nonNegativeInt.default(0),
    /** Extra delay drawn uniformly from [0, latencyJitterMs), deterministic by `seed`. @default 0 */
    latencyJitterMs: nonNegativeInt.default(0),
    /** Fraction of admitted `/v1/messages` requests answered 529 or 500, deterministic by `seed`. @default 0 */
    failureRate: z.number().min(0).max(1).default(0),
    /** Seeds latency jitter and failure injection: the same seed and request order give the same outcomes. @default 1 */
    seed: z.number().int().default(1),
    /** Requests per window, per model. @default undefined (unlimited) */
    requestsPerMinute: perMinute,
    /** Input tokens per window, per model. @default undefined (unlimited) */
    inputTokensPerMinute: perMinute,
    /** Output tokens per window, per model; charged from `max_tokens` up front, refunded to actual usage. @default undefined (unlimited) */
    outputTokensPerMinute: perMinute,
    /** Length of the rate-limit "minute"; benchmarks shrink it to exercise limits quickly. @default 60000 */
    limitWindowMs: z.number().int().positive().default(60_000),
    /** Request bodies larger than this answer 413 request_too_large (the API's own limit is 32 MB). @default 33554432 */
    maxBodyBytes: z.number().int().positive().default(32 * 1024 * 1024),
  })
  .strict();

/** What callers pass: every field optional. */
export type SimOptions = z.input<typeof SimOptionsSchema> & {
  /**
   * Scripted policies (e.g. loaded with `loadSimPolicies`), tried in order: the first whose `matches`
   * accepts the request answers it; the generic policy answers every request none of them accepts.
   * @default [] (the generic policy for every agent)
   */
  policies?: readonly PolicyRoute[];
};

export type ResolvedSimOptions = z.output<typeof SimOptionsSchema> & { policies: readonly PolicyRoute[] };

export function resolveSimOptions(opts: SimOptions): ResolvedSimOptions {
  const { policies, ...rest } = opts;
  const parsed = SimOptionsSchema.safeParse(rest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`sim option ${issue?.path.join(".") || "(root)"}`, issue?.message ?? "invalid");
  }
  return { ...parsed.data, policies: policies ?? [] };
}
