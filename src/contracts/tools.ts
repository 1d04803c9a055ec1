/** A tool call as the planner asks the `executor` service for it, and its outcome. */
import { z } from "zod";
import { StepNumberSchema, TaskRefSchema } from "./task";

/** Request for one tool execution (the `executor.run` action's params). */
export const ToolCallSchema = z.object({
  taskId: TaskRefSchema,
  agent: z.string(),
  /** The agent's prompt version, for the executor's metrics and spans. */
  promptVersion: z.string().optional(),
  step: StepNumberSchema,
  tool: z.string(),
  toolUseId: z.string(),
  input: z.unknown(),
  /** `${taskId}:${step}`: stable across resumes, so a side-effecting tool can dedupe a re-execution. */
  idempotencyKey: z.string(),
});
export type ToolCall = z.infer<typeof ToolCallSchema>;

/** Outcome of one tool execution. `ok: false` becomes an `is_error` tool_result for the model. */
export const ToolResultSchema = z.object({ ok: z.boolean(), output: z.unknown(), duration_ms: z.number().nonnegative() });
export type ToolResult = z.infer<typeof ToolResultSchema>;

/** The `executor.specs` action's params: the tools whose specs the model is to be shown. */
export const ToolSpecsQuerySchema = z.object({ names: z.array(z.string()).max(200) });
export type ToolSpecsQuery = z.infer<typeof ToolSpecsQuerySchema>;

/** Params of the `executor` service's actions. */
export const Executor = { run: ToolCallSchema, specs: ToolSpecsQuerySchema } as const;
