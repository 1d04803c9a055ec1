/**
 * Shapes that cross module and process boundaries. Each is a zod schema: the
 * validator and the TypeScript type come from the same definition.
 */
import { z } from "zod";

export const TASK_STATUSES = ["queued", "running", "awaiting_approval", "succeeded", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_STATUSES: readonly TaskStatus[] = ["succeeded", "failed", "cancelled"];

export const PRIORITIES = ["high", "normal", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];

/** Body of `POST /v1/tasks`. */
export const SubmitTaskSchema = z
  .object({
    agent: z.string().min(1).max(100).regex(/^[a-z0-9][a-z0-9_-]*$/, "agent names are lower-case letters, digits, '-' and '_'"),
    input: z.union([z.string().max(200_000), z.record(z.string(), z.unknown())]),
    priority: z.enum(PRIORITIES).optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type SubmitTask = z.infer<typeof SubmitTaskSchema>;

export const IdempotencyKeySchema = z.string().min(1).max(255).regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");

export const TaskIdSchema = z.string().regex(/^[0-9a-f-]{36}$/, "a task id is a UUID");

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
  cost_usd: number;
}

export const emptyUsage = (): Usage => ({
  input_tokens: 0,
  output_tokens: 0,
  cache_read_input_tokens: 0,
  cache_creation_input_tokens: 0,
  cost_usd: 0,
});

export interface TaskError {
  type: string;
  message: string;
}

export interface TaskRecord {
  id: string;
  agent: string;
  status: TaskStatus;
  input: unknown;
  priority: Priority;
  metadata: Record<string, unknown>;
  result: unknown;
  error: TaskError | null;
  attempts: number;
  steps: number;
  usage: Usage;
  prompt_version: string;
  /** Current fencing token: bumped by every lease acquisition. */
  fence: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** When the last wake-up for this task was published. */
  wakeup_at: string;
  /** W3C `traceparent` of the span that submitted the task: every attempt's span joins this trace. */
  trace_context: string | null;
}

/** Anthropic content blocks as Clawfleet stores and replays them. */
export type ContentBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown }
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "redacted_thinking"; data: string };

export interface LlmStepData {
  model: string;
  tier: string;
  stop_reason: string | null;
  usage: Usage;
  /** The assistant message's content: the state delta this step adds to the conversation. */
  content: ContentBlock[];
  duration_ms: number;
}

export interface ToolStepData {
  tool: string;
  tool_use_id: string;
  input: unknown;
  output: unknown;
  ok: boolean;
  duration_ms: number;
  idempotency_key: string;
}

/** Version of the checkpoint payload format. History: 1 — initial (llm and tool steps). */
export const CHECKPOINT_SCHEMA_VERSION = 1;

export type StepRecord =
  | { task_id: string; step: number; kind: "llm"; schema_version: number; fence: number; created_at: string; data: LlmStepData }
  | { task_id: string; step: number; kind: "tool"; schema_version: number; fence: number; created_at: string; data: ToolStepData };

export type NewStep = { kind: "llm"; step: number; data: LlmStepData } | { kind: "tool"; step: number; data: ToolStepData };

export interface NewTask {
  id: string;
  agent: string;
  input: unknown;
  priority: Priority;
  metadata: Record<string, unknown>;
  prompt_version: string;
  /** W3C `traceparent` of the submitting span; absent when tracing is off. */
  trace_context?: string;
}

/** The wake-up message on channel `tasks.ready`. Postgres holds the truth; this only says "look at task X". */
export const WakeUpSchema = z.object({
  taskId: z.string(),
  reason: z.enum(["submitted", "reaped", "released", "redrive", "retry"]),
  traceparent: z.string().optional(),
});
export type WakeUp = z.infer<typeof WakeUpSchema>;

export const TASKS_READY_CHANNEL = "tasks.ready";
export const PLANNERS_GROUP = "planners";
