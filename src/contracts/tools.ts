/** A tool call as the planner asks the `executor` service for it, its outcome, and how tool services publish their tools. */
import { z } from "zod";
import { ToolSpecSchema } from "./llm";
import { StepNumberSchema, TaskRefSchema } from "./task";

/** The Messages API's rule for tool names. */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

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
  /**
   * The call's ledger row was written with the checkpoint of the model turn that asked for it (`appendStep`'s
   * `marks`), and this is its first dispatch: the executor counts that row as this call's start. Set only by the
   * attempt that wrote the checkpoint; an executor that does not know the field starts the call again (harmless).
   */
  premarked: z.literal(true).optional(),
  /**
   * The model turn that asked for the call is not checkpointed yet: the planner took its tool for one without side
   * effects, and stores the turn with the call's result. A side-effect tool refuses such a call (a retryable
   * error, nothing recorded), so the planner stores the turn first and asks again. An executor that predates the
   * field runs the call as any other.
   */
  unstored: z.literal(true).optional(),
});
export type ToolCall = z.infer<typeof ToolCallSchema>;

/** Outcome of one tool execution. `ok: false` becomes an `is_error` tool_result for the model. */
export const ToolResultSchema = z.object({
  ok: z.boolean(),
  output: z.unknown(),
  duration_ms: z.number().nonnegative(),
  /** True when the side-effect ledger answered with the outcome an earlier call recorded, and the tool was not called. */
  replayed: z.boolean().optional(),
});
export type ToolResult = z.infer<typeof ToolResultSchema>;

/**
 * The `executor.specs` action's params: the tools of `agent` whose specs the model is to be shown. `names` is
 * the agent's allow-list as the planner knows it (`<server>__*` entries stand for every tool of an MCP server).
 */
export const ToolSpecsQuerySchema = z.object({
  agent: z.string().min(1),
  names: z.array(z.string()).max(200),
  /** Answer each spec with its `side_effect` flag. An executor that predates it answers plain specs. */
  side_effects: z.boolean().optional(),
});
export type ToolSpecsQuery = z.infer<typeof ToolSpecsQuerySchema>;

/**
 * A spec as `executor.specs` answers it when asked for `side_effects`: the flag is for the planner (which calls
 * it writes ledger rows for with their model turn's checkpoint) and is taken off before a model sees the spec.
 * Missing: not known.
 */
export const DescribedToolSpecSchema = ToolSpecSchema.extend({ side_effect: z.boolean().optional() });
export type DescribedToolSpec = z.infer<typeof DescribedToolSpecSchema>;

/** Params of the `executor` service's actions. */
export const Executor = { run: ToolCallSchema, specs: ToolSpecsQuerySchema } as const;

/**
 * One tool as a service with the `ClawfleetTools` mixin publishes it in its registry metadata
 * (`metadata.clawfleet`), for any executor on any node to find.
 */
export const ServiceToolSchema = z.object({
  name: z.string().regex(TOOL_NAME_PATTERN),
  /** The action to call, with its service's full (versioned) name: `orders.route`, `v2.orders.route`. */
  action: z.string().min(1),
  description: z.string().min(1),
  /** JSON Schema (draft 2020-12) of the input, an object schema. */
  inputSchema: z.record(z.string(), z.unknown()),
  sideEffect: z.boolean(),
  timeoutMs: z.number().int().positive().optional(),
});
export type ServiceTool = z.infer<typeof ServiceToolSchema>;

/**
 * `metadata.clawfleet` of a tool service. Version 1; the format grows only by optional fields, and a new
 * version number means an executor that does not know it skips the service (and logs why).
 */
export const ToolServiceMetadataSchema = z.object({ version: z.literal(1), tools: z.array(ServiceToolSchema) });
export type ToolServiceMetadata = z.infer<typeof ToolServiceMetadataSchema>;

/** What a side-effect tool call ended with, as the executor's ledger records it. */
export const ToolOutcomeSchema = z.object({ ok: z.boolean(), output: z.unknown() });
export type ToolOutcome = z.infer<typeof ToolOutcomeSchema>;

/**
 * A side-effect call's ledger row as `toolCallStarted` answers it: how often the call was started (this
 * start included) and its recorded outcome, if one was recorded. `starts - 1` earlier calls ended unknown.
 */
export const ToolCallEntrySchema = z.object({ starts: z.number().int().positive(), outcome: ToolOutcomeSchema.nullable() });
export type ToolCallEntry = z.infer<typeof ToolCallEntrySchema>;

/**
 * A ledger row written with the checkpoint of the model turn that asks for the call (`appendStep`'s `marks`):
 * "dispatched, outcome unknown until recorded", as a row `toolCallStarted` wrote means.
 */
export const ToolCallMarkSchema = z.object({ idempotencyKey: z.string().min(1).max(255), step: StepNumberSchema, tool: z.string().min(1).max(200) });
export type ToolCallMark = z.infer<typeof ToolCallMarkSchema>;
