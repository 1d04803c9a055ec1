/**
 * The REST API's bodies and answers (README, "REST API"). The views in
 * `src/api/views.ts` are typed by these, and `openapi.ts` publishes them.
 */
import { z } from "zod";
import { LlmStepDataSchema, ToolStepDataSchema } from "./checkpoint";
import { PrioritySchema, StepNumberSchema, TaskIdSchema, TaskRecordSchema, TaskStatusSchema, TimestampSchema, UsageSchema } from "./task";

/** Body of `POST /v1/tasks`. */
export const SubmitTaskSchema = z
  .object({
    agent: z.string().min(1).max(100).regex(/^[a-z0-9][a-z0-9_-]*$/, "agent names are lower-case letters, digits, '-' and '_'"),
    input: z.union([z.string().max(200_000), z.record(z.string(), z.unknown())]),
    priority: PrioritySchema.optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type SubmitTask = z.infer<typeof SubmitTaskSchema>;

/** The 202 answer to `POST /v1/tasks`, sent once the task is committed. */
export const SubmittedSchema = z.object({ id: TaskIdSchema, status: TaskStatusSchema });
export type Submitted = z.infer<typeof SubmittedSchema>;

const tokenCounts = UsageSchema.omit({ cache_creation_input_tokens: true });

/** What a task spent on one model: a tiered agent's spending per tier. */
export const ModelUsageSchema = tokenCounts.extend({ calls: z.number().int().nonnegative() });
export type ModelUsage = z.infer<typeof ModelUsageSchema>;

/** `GET /v1/tasks/{id}`. */
export const TaskViewSchema = TaskRecordSchema.pick({
  id: true,
  agent: true,
  status: true,
  priority: true,
  input: true,
  metadata: true,
  result: true,
  error: true,
  attempts: true,
  steps: true,
  prompt_version: true,
  created_at: true,
  started_at: true,
  finished_at: true,
}).extend({
  usage: tokenCounts.extend({ by_model: z.record(z.string(), ModelUsageSchema).optional() }),
});
export type TaskView = z.infer<typeof TaskViewSchema>;

const stepViewed = { step: StepNumberSchema, created_at: TimestampSchema };

/** One checkpoint as `GET /v1/tasks/{id}/steps` lists it. */
export const StepViewSchema = z.discriminatedUnion("kind", [
  LlmStepDataSchema.extend({ kind: z.literal("llm"), ...stepViewed }),
  ToolStepDataSchema.omit({ idempotency_key: true }).extend({ kind: z.literal("tool"), ...stepViewed }),
]);
export type StepView = z.infer<typeof StepViewSchema>;

/** `GET /v1/tasks/{id}/steps`. */
export const StepsViewSchema = z.object({ id: TaskIdSchema, status: TaskStatusSchema, steps: z.array(StepViewSchema) });
export type StepsView = z.infer<typeof StepsViewSchema>;

/** `?limit=` of `GET /v1/dead-letters`. */
export const DeadLetterLimitSchema = z.number().int().min(1).max(1000).default(100);

/** `POST /v1/tasks/{id}/redrive`: `redriven` is false when the task is not `failed`. */
export const RedriveResultSchema = z.object({ taskId: TaskIdSchema, redriven: z.boolean() });
export type RedriveResult = z.infer<typeof RedriveResultSchema>;

/** The one error body the REST API sends. */
export const ErrorBodySchema = z.object({
  error: z.object({
    /** Stable: what clients match on (README, "Errors"). */
    type: z.string(),
    message: z.string(),
    /** The context to act on: `field` for a validation error, `retryAfter` for a 503. */
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

const CheckResultSchema = z.object({ ok: z.boolean(), reason: z.string().optional() });

/** `GET /health/live`: 503 with `status: "failing"` after the event loop was blocked too long. */
export const LiveReportSchema = z.object({
  status: z.enum(["ok", "failing"]),
  /** True until the node has started; blocks before that do not count. */
  starting: z.boolean(),
  uptime_s: z.number().nonnegative(),
  event_loop: z.object({ max_delay_ms: z.number(), threshold_ms: z.number(), window_ms: z.number() }),
  reason: z.string().optional(),
});

/** `GET /health/ready`: 503 with each role's reason until every role of the process is ready. */
export const ReadyReportSchema = z.object({ status: z.enum(["ready", "not_ready"]), checks: z.record(z.string(), CheckResultSchema) });
