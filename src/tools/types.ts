import type { z } from "zod";

export interface ToolContext {
  taskId: string;
  step: number;
  agent: string;
  /** `${taskId}:${step}`: stable across resumes, so a side-effecting tool can dedupe a re-execution. */
  idempotencyKey: string;
  signal: AbortSignal;
}

export interface ToolDefinition<I = unknown, O = unknown> {
  name: string;
  description: string;
  /** Validates the model's input; its JSON Schema is what the model is shown. */
  input: z.ZodType<I>;
  /** True for tools that change the world; they must dedupe on `ctx.idempotencyKey`. */
  sideEffect: boolean;
  /** @default 10000 */
  timeoutMs?: number;
  run(input: I, ctx: ToolContext): Promise<O>;
}

/** Request for one tool execution (the `executor.run` action's params). */
export interface ToolCall {
  taskId: string;
  agent: string;
  /** The agent's prompt version, for the executor's metrics and spans. */
  promptVersion?: string;
  step: number;
  tool: string;
  toolUseId: string;
  input: unknown;
  idempotencyKey: string;
}

/** Outcome of one tool execution. `ok: false` becomes an `is_error` tool_result for the model. */
export interface ToolResult {
  ok: boolean;
  output: unknown;
  duration_ms: number;
}

/** What the agent loop calls to run a tool: `executor.run` over the broker, or a local registry in tests. */
export interface ToolRunner {
  run(call: ToolCall): Promise<ToolResult>;
}
