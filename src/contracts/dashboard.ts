/**
 * The operator's cluster-wide reads (README, "Queues and rate limits"): `GET /v1/queues`
 * (the wake-up queue's backlog and the tasks not finished yet) and `GET /v1/limits`
 * (each model's rate limits and what the cluster used of them), with the params of
 * the calls behind them.
 */
import { z } from "zod";
import { TimestampSchema } from "./task";

const count = z.number().int().nonnegative();

/** One consumer group's view of a channel. */
export const QueueStatSchema = z.object({
  /** The channel's name, without the cluster's namespace. */
  channel: z.string(),
  /** Entries not yet handed to a consumer. */
  waiting: count,
  /** Entries handed to a consumer and not acknowledged yet (being worked on, or held by a consumer that died). */
  pending: count,
  /** Age in seconds of the oldest entry not yet handed to a consumer; 0 when none waits. */
  lag_seconds: z.number().nonnegative(),
});
export type QueueStat = z.infer<typeof QueueStatSchema>;

/** The tasks not finished yet, by status, across every tenant. */
export const OpenTaskCountsSchema = z.object({ queued: count, running: count, awaiting_approval: count });
export type OpenTaskCounts = z.infer<typeof OpenTaskCountsSchema>;

/** The store's side of `GET /v1/queues`: open tasks by status, and the dead letters of every tenant. */
export const OpenWorkSchema = OpenTaskCountsSchema.extend({ dead_letters: count });
export type OpenWork = z.infer<typeof OpenWorkSchema>;

/** `GET /v1/queues`. */
export const QueuesViewSchema = z.object({
  at: TimestampSchema,
  queues: z.array(QueueStatSchema),
  tasks: OpenTaskCountsSchema,
  /** Tasks that failed for good and were not redriven (what `GET /v1/dead-letters` lists), every tenant's. */
  dead_letters: count,
});
export type QueuesView = z.infer<typeof QueuesViewSchema>;

/** Where a model's limits come from: CLAWFLEET_RATE_LIMITS, the provider's headers, or nowhere yet. */
export const LimitSourceSchema = z.enum(["configured", "learned", "unknown"]);
export type LimitSource = z.infer<typeof LimitSourceSchema>;

const perWindow = z.number().int().positive().nullable();
const share = z.number().min(0).max(1).nullable();

/** One model's limits, usage and headroom in the current window. */
export const ModelLimitsSchema = z.object({
  model: z.string(),
  source: LimitSourceSchema,
  /** Per window: what the limiter holds calls to (configured, tightened by what the provider reported); null: no limit. */
  limits: z.object({ rpm: perWindow, itpm: perWindow, otpm: perWindow }),
  /** Requests, input tokens and output tokens the cluster's calls took over the last window (reservations in flight included). */
  used: z.object({ rpm: z.number().nonnegative(), itpm: z.number().nonnegative(), otpm: z.number().nonnegative() }),
  /** 1 − used / limit, within 0..1; null where there is no limit. */
  headroom: z.object({ rpm: share, itpm: share, otpm: share }),
});
export type ModelLimits = z.infer<typeof ModelLimitsSchema>;

/** `GET /v1/limits`. */
export const LimitsViewSchema = z.object({
  at: TimestampSchema,
  /** The limits' window (CLAWFLEET_RATE_LIMIT_WINDOW_MS). */
  window_ms: z.number().int().positive(),
  models: z.array(ModelLimitsSchema),
});
export type LimitsView = z.infer<typeof LimitsViewSchema>;

/** `rate-gateway.limits`: models to list besides the gateway's own (the caller's agents' tiers). */
export const LimitsParamsSchema = z.object({ models: z.array(z.string().min(1).max(200)).max(1_000).default([]) });
export type LimitsParams = z.input<typeof LimitsParamsSchema>;
