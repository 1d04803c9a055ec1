/**
 * A task as the store keeps it: statuses, priorities, ids, the record itself
 * and the answers of the store's task methods.
 */
import { z } from "zod";
import { BudgetNameSchema, TaskBudgetsSchema } from "./budgets";

export const TASK_STATUSES = ["queued", "running", "awaiting_approval", "succeeded", "failed", "cancelled"] as const;
export const TaskStatusSchema = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatusSchema>;
export const TERMINAL_STATUSES: readonly TaskStatus[] = ["succeeded", "failed", "cancelled"];

export const PRIORITIES = ["high", "normal", "low"] as const;
export const PrioritySchema = z.enum(PRIORITIES);
export type Priority = z.infer<typeof PrioritySchema>;

/** A task id as issued: a UUID in lower case, as both `randomUUID` and Postgres write it. */
export const TaskIdSchema = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "a task id is a UUID");

/** True for a string that can name a task; anything else names none. */
export const isTaskId = (id: string): boolean => TaskIdSchema.safeParse(id).success;

/**
 * A task id as a caller names it in a message. Not required to be a UUID: the
 * store answers "no such task" for one that is not, over the broker as it does
 * locally. The bound keeps a bad message small.
 */
export const TaskRefSchema = z.string().min(1).max(64);

/** The client's `Idempotency-Key`: the same key within 24 h names the same task. */
export const IdempotencyKeySchema = z.string().min(1).max(255).regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");

/** Current fencing token of a task: bumped by every lease acquisition. */
export const FenceSchema = z.number().int().nonnegative();

/** A step of a task's run, counted from 1. */
export const StepNumberSchema = z.number().int().positive();

/** An instant as the store hands it back: ISO 8601 in UTC. */
export const TimestampSchema = z.iso.datetime();

const count = z.number().int().nonnegative();

/** What a task has spent on its model calls. */
export const UsageSchema = z.object({
  input_tokens: z.number().nonnegative(),
  output_tokens: z.number().nonnegative(),
  cache_read_input_tokens: z.number().nonnegative(),
  cache_creation_input_tokens: z.number().nonnegative(),
  cost_usd: z.number().nonnegative(),
});
export type Usage = z.infer<typeof UsageSchema>;

export const emptyUsage = (): Usage => ({
  input_tokens: 0,
  output_tokens: 0,
  cache_read_input_tokens: 0,
  cache_creation_input_tokens: 0,
  cost_usd: 0,
});

export const TaskErrorSchema = z.object({ type: z.string(), message: z.string() });
export type TaskError = z.infer<typeof TaskErrorSchema>;

/** Longest webhook URL a task may carry. */
export const WEBHOOK_URL_MAX = 2048;

/** Where a task's end is delivered (migration 014, README "Webhooks"): the URL intake checked, the secret's name it resolved. */
export const TaskWebhookSchema = z.object({ url: z.string().min(1).max(WEBHOOK_URL_MAX), secret_id: z.string().min(1).max(64) });
export type TaskWebhook = z.infer<typeof TaskWebhookSchema>;

/** A task as intake creates it. */
export const NewTaskSchema = z.object({
  id: TaskIdSchema,
  agent: z.string(),
  input: z.unknown(),
  priority: PrioritySchema,
  metadata: z.record(z.string(), z.unknown()),
  prompt_version: z.string(),
  /** W3C `traceparent` of the submitting span; absent when tracing is off. */
  trace_context: z.string().max(512).optional(),
  /** The submitting key's tenant (migration 005). @default "default" */
  tenant: z.string().min(1).max(64).optional(),
  /** The budgets the task runs under, fixed at submit (migration 009); absent: its agent's, whenever it runs. */
  budgets: TaskBudgetsSchema.optional(),
  /** Where the task's end is delivered (migration 014); absent: nowhere. */
  webhook: TaskWebhookSchema.optional(),
});
export type NewTask = z.infer<typeof NewTaskSchema>;

export const TaskRecordSchema = NewTaskSchema.extend({
  status: TaskStatusSchema,
  result: z.unknown(),
  error: TaskErrorSchema.nullable(),
  attempts: count,
  steps: count,
  usage: UsageSchema,
  fence: FenceSchema,
  created_at: TimestampSchema,
  started_at: TimestampSchema.nullable(),
  finished_at: TimestampSchema.nullable(),
  /** When the last wake-up for this task was published. */
  wakeup_at: TimestampSchema,
  /** W3C `traceparent` of the span that submitted the task: every attempt's span joins this trace. */
  trace_context: z.string().nullable(),
  tenant: z.string(),
  /** Who cancelled the task and why (migration 012): set only on a cancelled task. */
  cancelled_by: z.string().optional(),
  cancel_reason: z.string().nullable().optional(),
  /** The budget that ran out (migration 009): set on a task that `on_exhausted: finish` ended with a wrap-up answer. */
  budget_exhausted: BudgetNameSchema.nullable().optional(),
});
export type TaskRecord = z.infer<typeof TaskRecordSchema>;

export const CreateTaskResultSchema = z.object({
  task: TaskRecordSchema,
  /** False when the idempotency key already named a task younger than 24 h: `task` is that one. */
  created: z.boolean(),
});
export type CreateTaskResult = z.infer<typeof CreateTaskResultSchema>;

export const ClaimResultSchema = z.object({ task: TaskRecordSchema, fence: FenceSchema });
export type ClaimResult = z.infer<typeof ClaimResultSchema>;

/** How a run ended, as the worker reports it. */
export const TaskOutcomeSchema = z.object({
  status: TaskStatusSchema.extract(["succeeded", "failed"]),
  result: z.unknown().optional(),
  error: TaskErrorSchema.optional(),
  /** A success that `on_exhausted: finish` ended: the budget that ran out, recorded on the task. */
  budget_exhausted: BudgetNameSchema.optional(),
});
export type TaskOutcome = z.infer<typeof TaskOutcomeSchema>;

/** A task that failed for good, for an operator to look at and redrive. */
export const DeadLetterSchema = z.object({
  task_id: TaskIdSchema,
  agent: z.string(),
  error: TaskErrorSchema,
  attempts: count,
  created_at: TimestampSchema,
  tenant: z.string(),
});
export type DeadLetter = z.infer<typeof DeadLetterSchema>;

/** A `running` task as the reaper sees it: whose lease to check. */
export const RunningTaskSchema = z.object({ id: TaskIdSchema, fence: FenceSchema, updated_at: TimestampSchema });
export type RunningTask = z.infer<typeof RunningTaskSchema>;

/** Tasks per status; every status is present. */
export const TaskCountsSchema = z.record(TaskStatusSchema, count);
export type TaskCounts = z.infer<typeof TaskCountsSchema>;
