/** What a tool is, and what runs one. The call and its result are shapes in `src/contracts`. */
import type { z } from "zod";
import type { ToolCall, ToolResult } from "../contracts";

export interface ToolContext {
  taskId: string;
  step: number;
  agent: string;
  /** `${taskId}:${step}`: stable across resumes, so a side-effecting tool can dedupe a re-execution. */
  idempotencyKey: string;
  /** Aborts at the executor's timeout. */
  signal: AbortSignal;
  /** The executor's timeout for this call: a source that calls across the network gives up there too. */
  timeoutMs?: number;
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

/** What the agent loop calls to run a tool: `executor.run` over the broker, or a local registry in tests. */
export interface ToolRunner {
  /** `signal`: the caller gives up (a shutdown past its drain); what the call then does is the runner's to say. */
  run(call: ToolCall, signal?: AbortSignal): Promise<ToolResult>;
}
