/**
 * `defineTool`: an in-process tool, typed from its zod input schema. Checked when it is defined, so a bad
 * name or a missing `run` fails where the tool is written, not at the model's first call.
 */
import type { z } from "zod";
import { TOOL_NAME_PATTERN } from "../contracts";
import { ConfigError } from "../errors";
import type { ToolContext, ToolDefinition } from "./tool";

/** What `defineTool` takes: a `ToolDefinition` whose `run` is typed by `input`, and `sideEffect` optional. */
export interface ToolSpec<S extends z.ZodType, O> {
  /** What the model calls it: 1-64 of `[a-zA-Z0-9_-]`. */
  name: string;
  /** What the model reads to decide when to call it and what comes back. */
  description: string;
  /** Validates the model's input; its JSON Schema (input side) is what the model is shown. */
  input: S;
  /** True for a tool that changes the world: it must dedupe on `ctx.idempotencyKey`. @default false */
  sideEffect?: boolean;
  /** @default 10000 */
  timeoutMs?: number;
  run(input: z.output<S>, ctx: ToolContext): Promise<O> | O;
}

export function defineTool<S extends z.ZodType, O>(spec: ToolSpec<S, O>): ToolDefinition<z.output<S>, O> {
  const where = `defineTool(${JSON.stringify(typeof spec.name === "string" ? spec.name : "?")})`;
  if (typeof spec.name !== "string" || !TOOL_NAME_PATTERN.test(spec.name)) throw new ConfigError(where, "name must be 1-64 of [a-zA-Z0-9_-]");
  if (typeof spec.description !== "string" || spec.description.trim() === "") throw new ConfigError(where, "description must say what the tool does");
  if (typeof (spec.input as { safeParse?: unknown } | undefined)?.safeParse !== "function") throw new ConfigError(where, "input must be a zod schema");
  if (typeof spec.run !== "function") throw new ConfigError(where, "run must be a function");
  if (spec.timeoutMs !== undefined && !(Number.isInteger(spec.timeoutMs) && spec.timeoutMs > 0))
    throw new ConfigError(where, "timeoutMs must be a positive integer");
  return {
    name: spec.name,
    description: spec.description,
    input: spec.input as z.ZodType<z.output<S>>,
    sideEffect: spec.sideEffect ?? false,
    ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
    run: async (input, ctx) => spec.run(input, ctx),
  };
}
