/**
 * A model turn: the Messages API's content as Clawfleet stores and replays it,
 * and the `rate-gateway.complete` request and answer.
 */
import { z } from "zod";
import { PrioritySchema, StepNumberSchema, TaskRefSchema, UsageSchema } from "./task";

/**
 * Anthropic content blocks as Clawfleet stores and replays them. The unions of blocks and messages are
 * discriminated by their `type` (a message's `role`): each value is checked against its one variant, not
 * tried against every variant in turn. A whole conversation is validated on every model call that crosses
 * processes, and trying variants made that about 3× dearer (bench/validation.ts).
 */
export const ContentBlockSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text"), text: z.string() }),
  z.object({ type: z.literal("tool_use"), id: z.string(), name: z.string(), input: z.unknown() }),
  z.object({ type: z.literal("thinking"), thinking: z.string(), signature: z.string() }),
  z.object({ type: z.literal("redacted_thinking"), data: z.string() }),
]);
export type ContentBlock = z.infer<typeof ContentBlockSchema>;

export const UserBlockSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text"), text: z.string() }),
  z.object({ type: z.literal("tool_result"), tool_use_id: z.string(), content: z.string(), is_error: z.boolean().optional() }),
]);
export type UserBlock = z.infer<typeof UserBlockSchema>;

/** A message of the conversation as the Messages API takes it. */
export const MessageParamSchema = z.discriminatedUnion("role", [
  z.object({ role: z.literal("user"), content: z.union([z.string(), z.array(UserBlockSchema)]) }),
  z.object({ role: z.literal("assistant"), content: z.array(ContentBlockSchema) }),
]);
export type MessageParam = z.infer<typeof MessageParamSchema>;

/** A tool as offered to the model. */
export const ToolSpecSchema = z.object({ name: z.string(), description: z.string(), input_schema: z.record(z.string(), z.unknown()) });
export type ToolSpec = z.infer<typeof ToolSpecSchema>;

/** The token counts a model call reports; `Usage` adds their price. */
export const LlmUsageSchema = UsageSchema.omit({ cost_usd: true });
export type LlmUsage = z.infer<typeof LlmUsageSchema>;

/** One model turn for a task (the `rate-gateway.complete` action's params). */
export const CompleteRequestSchema = z.object({
  taskId: TaskRefSchema,
  agent: z.string(),
  promptVersion: z.string(),
  step: StepNumberSchema,
  tier: z.string(),
  model: z.string(),
  maxTokens: z.number().int().positive(),
  priority: PrioritySchema,
  system: z.string(),
  messages: z.array(MessageParamSchema),
  tools: z.array(ToolSpecSchema),
  /** Set for an agent with `stream: true`: the call is streamed and its text deltas published for the task's tenant. */
  stream: z.object({ tenant: z.string().min(1).max(64) }).strict().optional(),
});
export type CompleteRequest = z.infer<typeof CompleteRequestSchema>;

export const CompleteResponseSchema = z.object({
  id: z.string(),
  model: z.string(),
  content: z.array(ContentBlockSchema),
  stop_reason: z.string().nullable(),
  usage: LlmUsageSchema,
  duration_ms: z.number().nonnegative(),
  /** The gateway's `chat` span (W3C traceparent): the parent of the tool calls this turn asks for. */
  traceparent: z.string().optional(),
});
export type CompleteResponse = z.infer<typeof CompleteResponseSchema>;

/**
 * The Moleculer event (broadcast) carrying one text delta of a streamed model turn, from the process that reads
 * the provider's stream to every api replica. Not a `clawfleet.task.*` lifecycle event: transient, never stored.
 */
export const TEXT_DELTA_EVENT = "clawfleet.stream.delta";

export const TextDeltaEventSchema = z.object({
  task_id: TaskRefSchema,
  tenant: z.string(),
  /** The step the turn will be checkpointed as. */
  step: StepNumberSchema,
  /** 0, 1, 2… within one call of the model: a retried call starts again at 0, superseding what the failed one sent. */
  index: z.number().int().nonnegative(),
  /** The content block the text belongs to (a turn may hold several text blocks). */
  block: z.number().int().nonnegative(),
  text: z.string(),
});
export type TextDeltaEvent = z.infer<typeof TextDeltaEventSchema>;

/** Params of the `rate-gateway` service's actions. */
export const Gateway = { complete: CompleteRequestSchema } as const;
