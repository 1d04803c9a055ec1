/**
 * The canary judge (src/rollout/judge.ts): the per-version figures it reads
 * from the store, the evidence it records with each decision, and the
 * `clawfleet.control.canary_promoted|canary_rolled_back` events it broadcasts.
 */
import { z } from "zod";
import { AgentNameSchema, PromptVersionSchema } from "./rollout";
import { TimestampSchema } from "./task";

/** Sum and sum of squares of a per-task value: with the task count, a mean and a variance. */
const SumsSchema = z.object({ sum: z.number(), sum_sq: z.number().nonnegative() });

/** One version's finished tasks since a point in time, as `canaryStats` counts them. */
export const VersionStatsSchema = z.object({
  version: PromptVersionSchema,
  /** Tasks created since `since` that ended `succeeded` or `failed` (a cancelled task is the operator's doing, not the version's). */
  finished: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  /** Of `finished`, those created since `stepSince`: the current step's tasks. */
  finished_since_step: z.number().int().nonnegative(),
  /** Tool steps per task. */
  tool_calls: SumsSchema,
  /** Tool steps per task repeating an earlier step of the same task: the same tool with the same input. */
  duplicate_tool_calls: SumsSchema,
  /** The task's cost in US dollars, every attempt included. */
  cost_usd: SumsSchema,
});
export type VersionStats = z.infer<typeof VersionStatsSchema>;

export const CanaryStatsSchema = z.object({ stable: VersionStatsSchema, canary: VersionStatsSchema });
export type CanaryStats = z.infer<typeof CanaryStatsSchema>;

export const CANARY_METRIC_NAMES = ["completion_rate", "tool_calls_per_task", "duplicate_tool_calls_per_task", "cost_per_task"] as const;
export const CanaryMetricNameSchema = z.enum(CANARY_METRIC_NAMES);
export type CanaryMetricName = z.infer<typeof CanaryMetricNameSchema>;

const ArmFiguresSchema = z.object({ n: z.number().int().nonnegative(), mean: z.number(), sd: z.number().nonnegative() });

/** One metric's test, as recorded with a decision. */
export const MetricEvidenceSchema = z.object({
  direction: z.enum(["higher_is_worse", "lower_is_worse"]),
  stable: ArmFiguresSchema,
  canary: ArmFiguresSchema,
  /** canary − stable. */
  difference: z.number(),
  /** How much worse the canary may be (in the metric's units) before it counts as harm. */
  tolerance: z.number().nonnegative(),
  std_error: z.number().nonnegative(),
  /** log of the mSPRT statistic Λ; null until both versions have enough finished tasks. */
  log_lambda: z.number().nullable(),
  /** log(1/alpha): harm is declared when log_lambda reaches it. */
  threshold: z.number(),
  /** This metric's share of the judge's false-alarm bound. */
  alpha: z.number(),
  harmful: z.boolean(),
});
export type MetricEvidence = z.infer<typeof MetricEvidenceSchema>;

/** What the judge saw when it decided: stored under `judge` in the rollout's evidence. */
export const JudgeEvidenceSchema = z.object({
  at: TimestampSchema,
  test: z.literal("msprt"),
  /** The false-alarm bound over every metric and every look (split evenly across the metrics). */
  alpha: z.number(),
  step: z.number().int().positive(),
  weight: z.number().int().min(0).max(100),
  stable_version: PromptVersionSchema,
  canary_version: PromptVersionSchema,
  stable_tasks: z.number().int().nonnegative(),
  canary_tasks: z.number().int().nonnegative(),
  canary_tasks_this_step: z.number().int().nonnegative(),
  metrics: z.record(CanaryMetricNameSchema, MetricEvidenceSchema),
  /** The metrics that showed harm (rollback when any does). */
  harmful: z.array(CanaryMetricNameSchema),
});
export type JudgeEvidence = z.infer<typeof JudgeEvidenceSchema>;

export const CANARY_JUDGE_EVENT_NAMES = ["clawfleet.control.canary_promoted", "clawfleet.control.canary_rolled_back"] as const;
export type CanaryJudgeEventName = (typeof CANARY_JUDGE_EVENT_NAMES)[number];

const JudgeEventBase = z.object({
  agent: AgentNameSchema,
  /** The canary's version. */
  version: PromptVersionSchema,
  /** The stable version after the decision. */
  stable_version: PromptVersionSchema,
  /** The rollout row's revision after the decision. */
  revision: z.number().int().nonnegative(),
  /** Always `judge`: these decisions are automatic. */
  by: z.literal("judge"),
  at: TimestampSchema,
  node: z.string(),
});

export const CanaryPromotedEventSchema = JudgeEventBase.extend({
  /** Percent of new tasks the canary runs now (0 once it is the stable version). */
  weight: z.number().int().min(0).max(100),
  /** The step it moved to, counted from 1; after the last one it is the stable version (`final`). */
  step: z.number().int().positive(),
  final: z.boolean(),
  evidence: JudgeEvidenceSchema,
});

export const CanaryRolledBackEventSchema = JudgeEventBase.extend({
  /** The metrics that showed harm. */
  metrics: z.array(CanaryMetricNameSchema).min(1),
  evidence: JudgeEvidenceSchema,
});

export const CANARY_JUDGE_EVENT_SCHEMAS = {
  "clawfleet.control.canary_promoted": CanaryPromotedEventSchema,
  "clawfleet.control.canary_rolled_back": CanaryRolledBackEventSchema,
} as const satisfies Record<CanaryJudgeEventName, z.ZodType>;

export type CanaryJudgeEventPayload<N extends CanaryJudgeEventName = CanaryJudgeEventName> = z.infer<(typeof CANARY_JUDGE_EVENT_SCHEMAS)[N]>;
export type CanaryPromotedEvent = CanaryJudgeEventPayload<"clawfleet.control.canary_promoted">;
export type CanaryRolledBackEvent = CanaryJudgeEventPayload<"clawfleet.control.canary_rolled_back">;
