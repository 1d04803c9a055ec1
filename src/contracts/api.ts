/**
 * The REST API's bodies and answers (README, "REST API"). The views in
 * `src/api/views.ts` are typed by these, and `openapi.ts` publishes them.
 */
import { z } from "zod";
import { LlmStepDataSchema, ToolStepDataSchema } from "./checkpoint";
import { PrioritySchema, StepNumberSchema, TaskIdSchema, TaskRecordSchema, TaskStatusSchema, TimestampSchema, UsageSchema } from "./task";
import { BudgetNameSchema, TaskBudgetsSchema } from "./budgets";
import { TaskWebhookViewSchema, WebhookRequestSchema } from "./webhooks";

/** Bounds of the free-form JSON a client submits (`input`, `metadata`), checked before it reaches the store. */
export const SUBMIT_JSON_LIMITS = { maxDepth: 64, maxStringLength: 200_000, maxKeyLength: 1_000 } as const;

/** A NUL or an unpaired UTF-16 surrogate: neither can be stored in a `jsonb` column (nor is the latter valid Unicode). */
// eslint-disable-next-line no-control-regex -- the NUL is what this looks for
const UNSTORABLE_CHAR = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function unstorable(text: string): string | undefined {
  const m = UNSTORABLE_CHAR.exec(text);
  if (!m) return undefined;
  return m[0] === "\u0000" ? "a NUL character (\\u0000)" : "an unpaired UTF-16 surrogate";
}

/**
 * The first reason `value` (parsed JSON) cannot be stored as submitted, with the path to it: nesting deeper
 * than `maxDepth`, a string or key over its bound, or a NUL / unpaired surrogate in a string or a key.
 * Iterative and stopping at `maxDepth`, so a body nested thousands of levels deep costs no stack.
 */
function jsonIssue(value: unknown): { path: PropertyKey[]; message: string } | undefined {
  const { maxDepth, maxStringLength, maxKeyLength } = SUBMIT_JSON_LIMITS;
  const stack: { value: unknown; path: PropertyKey[]; depth: number }[] = [{ value, path: [], depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value: v, path, depth } = item;
    if (typeof v === "string") {
      if (v.length > maxStringLength) return { path, message: `strings are limited to ${maxStringLength} characters` };
      const bad = unstorable(v);
      if (bad) return { path, message: `contains ${bad}, which cannot be stored` };
      continue;
    }
    if (v === null || typeof v !== "object") continue;
    if (depth >= maxDepth) return { path, message: `nested deeper than ${maxDepth} levels` };
    const entries: [PropertyKey, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [key] of entries) {
      if (typeof key === "string") {
        if (key.length > maxKeyLength) return { path, message: `object keys are limited to ${maxKeyLength} characters` };
        const bad = unstorable(key);
        if (bad) return { path, message: `an object key contains ${bad}, which cannot be stored` };
      }
    }
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i] as [PropertyKey, unknown];
      stack.push({ value: child, path: [...path, key], depth: depth + 1 });
    }
  }
  return undefined;
}

/** Refinement for a submitted JSON field: one issue, at the offending value's path. */
function storableJson(value: unknown, ctx: z.RefinementCtx): void {
  const issue = jsonIssue(value);
  if (issue) ctx.addIssue({ code: "custom", path: issue.path, message: issue.message, input: value });
}

const storableNote = `JSON nested at most ${SUBMIT_JSON_LIMITS.maxDepth} levels; strings up to ${SUBMIT_JSON_LIMITS.maxStringLength} characters, keys up to ${SUBMIT_JSON_LIMITS.maxKeyLength}; no NUL characters or unpaired surrogates in strings or keys`;

/** Body of `POST /v1/tasks`. */
export const SubmitTaskSchema = z
  .object({
    agent: z.string().min(1).max(100).regex(/^[a-z0-9][a-z0-9_-]*$/, "agent names are lower-case letters, digits, '-' and '_'"),
    input: z
      .union([z.string().max(SUBMIT_JSON_LIMITS.maxStringLength), z.record(z.string(), z.unknown())])
      .superRefine(storableJson)
      .describe(`The task's input: a string or an object. ${storableNote}.`),
    priority: PrioritySchema.optional(),
    metadata: z
      .record(z.string(), z.unknown())
      .superRefine(storableJson)
      .describe(`Free-form labels kept with the task. ${storableNote}.`)
      .optional(),
    budgets: TaskBudgetsSchema.describe(
      "Budgets for this task: the agent file's `budgets:` where left out; each at most the agent's value where the agent sets one (over it: 422 naming the field).",
    ).optional(),
    webhook: WebhookRequestSchema.describe(
      "Where the task's end (succeeded, failed, cancelled) is POSTed, signed per Standard Webhooks; a URL that resolves to a private, loopback, link-local or metadata address is refused (422 `webhook_url_refused`).",
    ).optional(),
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
  tenant: true,
  created_at: true,
  started_at: true,
  finished_at: true,
  cancelled_by: true,
  cancel_reason: true,
}).extend({
  usage: tokenCounts.extend({ by_model: z.record(z.string(), ModelUsageSchema).optional() }),
  /** The budgets the task runs under (fixed at submit); null for a task stored before budgets were. */
  budgets: TaskBudgetsSchema.nullable(),
  /** The budget that ran out, on a task `on_exhausted: finish` ended with a wrap-up answer (with `fail`, the error's message names it). */
  budget_exhausted: BudgetNameSchema.nullable(),
  /** The completion webhook, its delivery state and every attempt (no secret); absent on a task submitted without one. */
  webhook: TaskWebhookViewSchema.optional(),
});
export type TaskView = z.infer<typeof TaskViewSchema>;

const stepViewed = { step: StepNumberSchema, created_at: TimestampSchema };

/** One checkpoint as `GET /v1/tasks/{id}/steps` lists it. */
export const StepViewSchema = z.discriminatedUnion("kind", [
  LlmStepDataSchema.extend({ kind: z.literal("llm"), ...stepViewed }),
  ToolStepDataSchema.omit({ idempotency_key: true }).extend({ kind: z.literal("tool"), ...stepViewed }),
]);
export type StepView = z.infer<typeof StepViewSchema>;

/**
 * `GET /v1/tasks/{id}/steps`. `next_after` is there only on a paged read (`?limit=`): the last step
 * answered when a full page may have more after it (pass it back as `?after=`), null when this is the last.
 */
export const StepsViewSchema = z.object({
  id: TaskIdSchema,
  status: TaskStatusSchema,
  steps: z.array(StepViewSchema),
  next_after: StepNumberSchema.nullable().optional(),
});
export type StepsView = z.infer<typeof StepsViewSchema>;

/** The most steps one page of `GET /v1/tasks/{id}/steps` answers. */
export const STEPS_PAGE_MAX = 1000;

/** `GET /v1/tasks/{id}/steps`'s query: `after` a step number (0: from the first); without `limit`, every step. */
export const StepsParamsSchema = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(STEPS_PAGE_MAX).optional(),
});

/** `?limit=` of `GET /v1/dead-letters`. */
export const DeadLetterLimitSchema = z.number().int().min(1).max(1000).default(100);

/** `POST /v1/tasks/{id}/redrive`: 200 only when the task was redriven; an unknown task is a 404, one that is not `failed` a 409. */
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
