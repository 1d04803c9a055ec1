/**
 * Parameters of the actions services call on each other, as zod schemas: the
 * receiving service validates with them and the types come from them. A bad
 * internal call is a `ValidationError` naming the field, never a crash.
 */
import { z } from "zod";
import { PRIORITIES, TASK_STATUSES } from "./domain";
import { ValidationError } from "./errors";

export function parseParams<T>(schema: z.ZodType<T>, params: unknown, what: string): T {
  const r = schema.safeParse(params);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : undefined;
  throw new ValidationError(`${what}: ${field ? `field "${field}": ` : ""}${issue?.message ?? "invalid"}`, {
    ...(field !== undefined ? { field } : {}),
    issues: r.error.issues.slice(0, 10).map((i) => ({ field: i.path.join("."), message: i.message })),
  });
}

const usage = z.object({
  input_tokens: z.number().nonnegative(),
  output_tokens: z.number().nonnegative(),
  cache_read_input_tokens: z.number().nonnegative(),
  cache_creation_input_tokens: z.number().nonnegative(),
  cost_usd: z.number().nonnegative(),
});

const contentBlock = z.union([
  z.object({ type: z.literal("text"), text: z.string() }),
  z.object({ type: z.literal("tool_use"), id: z.string(), name: z.string(), input: z.unknown() }),
  z.object({ type: z.literal("thinking"), thinking: z.string(), signature: z.string() }),
  z.object({ type: z.literal("redacted_thinking"), data: z.string() }),
]);

const llmStep = z.object({
  kind: z.literal("llm"),
  step: z.number().int().positive(),
  data: z.object({
    model: z.string(),
    tier: z.string(),
    stop_reason: z.string().nullable(),
    usage,
    content: z.array(contentBlock),
    duration_ms: z.number().nonnegative(),
  }),
});

const toolStep = z.object({
  kind: z.literal("tool"),
  step: z.number().int().positive(),
  data: z.object({
    tool: z.string(),
    tool_use_id: z.string(),
    input: z.unknown(),
    output: z.unknown(),
    ok: z.boolean(),
    duration_ms: z.number().nonnegative(),
    idempotency_key: z.string(),
  }),
});

const taskId = z.string().min(1).max(64);
const fence = z.number().int().nonnegative();

export const Checkpoint = {
  createTask: z.object({
    task: z.object({
      id: z.string().uuid(),
      agent: z.string(),
      input: z.unknown(),
      priority: z.enum(PRIORITIES),
      metadata: z.record(z.string(), z.unknown()),
      prompt_version: z.string(),
      trace_context: z.string().max(512).optional(),
    }),
    idempotencyKey: z.string().optional(),
  }),
  getTask: z.object({ id: taskId }),
  listSteps: z.object({ taskId }),
  claimTask: z.object({ id: taskId, owner: z.string().min(1) }),
  appendStep: z.object({ taskId, fence, step: z.discriminatedUnion("kind", [llmStep, toolStep]), usageDelta: usage.optional() }),
  finishTask: z.object({
    taskId,
    fence,
    outcome: z.object({
      status: z.enum(["succeeded", "failed"]),
      result: z.unknown().optional(),
      error: z.object({ type: z.string(), message: z.string() }).optional(),
    }),
  }),
  releaseTask: z.object({ taskId, fence, countAttempt: z.boolean().default(true) }),
  touchWakeup: z.object({ taskIds: z.array(taskId).max(10_000) }),
  listStaleQueued: z.object({ olderThanMs: z.number().int().nonnegative(), limit: z.number().int().positive().max(10_000) }),
  listRunning: z.object({ limit: z.number().int().positive().max(10_000) }),
  listDeadLetters: z.object({ limit: z.number().int().positive().max(10_000).default(100) }),
  redrive: z.object({ taskId }),
  status: z.enum(TASK_STATUSES),
};

export const Executor = {
  run: z.object({
    taskId,
    agent: z.string(),
    promptVersion: z.string().optional(),
    step: z.number().int().positive(),
    tool: z.string(),
    toolUseId: z.string(),
    input: z.unknown(),
    idempotencyKey: z.string(),
  }),
  specs: z.object({ names: z.array(z.string()).max(200) }),
};

const userBlock = z.union([
  z.object({ type: z.literal("text"), text: z.string() }),
  z.object({ type: z.literal("tool_result"), tool_use_id: z.string(), content: z.string(), is_error: z.boolean().optional() }),
]);

export const Gateway = {
  complete: z.object({
    taskId,
    agent: z.string(),
    promptVersion: z.string(),
    step: z.number().int().positive(),
    tier: z.string(),
    model: z.string(),
    maxTokens: z.number().int().positive(),
    priority: z.enum(PRIORITIES),
    system: z.string(),
    messages: z.array(
      z.union([
        z.object({ role: z.literal("user"), content: z.union([z.string(), z.array(userBlock)]) }),
        z.object({ role: z.literal("assistant"), content: z.array(contentBlock) }),
      ]),
    ),
    tools: z.array(z.object({ name: z.string(), description: z.string(), input_schema: z.record(z.string(), z.unknown()) })),
  }),
};
