/**
 * Checkpoints: one per step of a run, the state a resumed attempt replays
 * instead of paying for the step again. The payload format is versioned.
 */
import { z } from "zod";
import { BudgetNameSchema } from "./budgets";
import { ContentBlockSchema } from "./llm";
import { FenceSchema, StepNumberSchema, TaskIdSchema, TimestampSchema, UsageSchema } from "./task";

/** Version of the checkpoint payload format. History: 1 — initial (llm and tool steps). */
export const CHECKPOINT_SCHEMA_VERSION = 1;

export const LlmStepDataSchema = z.object({
  model: z.string(),
  tier: z.string(),
  stop_reason: z.string().nullable(),
  usage: UsageSchema,
  /** The assistant message's content: the state delta this step adds to the conversation. */
  content: z.array(ContentBlockSchema),
  duration_ms: z.number().nonnegative(),
  /** Set on the wrap-up turn of `on_exhausted: finish`: the budget that ran out. Absent from older checkpoints, which have none. */
  budget_exhausted: BudgetNameSchema.optional(),
});
export type LlmStepData = z.infer<typeof LlmStepDataSchema>;

export const ToolStepDataSchema = z.object({
  tool: z.string(),
  tool_use_id: z.string(),
  input: z.unknown(),
  output: z.unknown(),
  ok: z.boolean(),
  duration_ms: z.number().nonnegative(),
  idempotency_key: z.string(),
});
export type ToolStepData = z.infer<typeof ToolStepDataSchema>;

const llmStep = z.object({ kind: z.literal("llm"), step: StepNumberSchema, data: LlmStepDataSchema });
const toolStep = z.object({ kind: z.literal("tool"), step: StepNumberSchema, data: ToolStepDataSchema });

/** A step as the worker checkpoints it. */
export const NewStepSchema = z.discriminatedUnion("kind", [llmStep, toolStep]);
export type NewStep = z.infer<typeof NewStepSchema>;

const stored = {
  task_id: TaskIdSchema,
  /** The payload format `data` was written in (`CHECKPOINT_SCHEMA_VERSION` at the time). */
  schema_version: z.number().int().positive(),
  /** The fencing token of the attempt that wrote it. */
  fence: FenceSchema,
  created_at: TimestampSchema,
};

/** A step as the store hands it back. */
export const StepRecordSchema = z.discriminatedUnion("kind", [llmStep.extend(stored), toolStep.extend(stored)]);
export type StepRecord = z.infer<typeof StepRecordSchema>;
