/**
 * Cancelling a task (README, "Cancelling a task"): the REST body, the intake
 * action's params, the store's answer, the planner's abort call and the control
 * event every planner and executor hears.
 */
import { z } from "zod";
import { TaskIdSchema, TaskRecordSchema, TaskRefSchema, TaskStatusSchema, TimestampSchema } from "./task";
import { TenantSchema } from "./keys";

/** Why an operator cancelled: kept with the task (`cancel_reason`). */
export const CancelReasonSchema = z.string().max(1_000);

/** Who cancelled: an API key's id, `anonymous` (authentication off) or `repl:<node id>`. */
export const CancelledBySchema = z.string().min(1).max(200);

/** Body of `POST /v1/tasks/{id}/cancel`; it may be left out. */
export const CancelTaskBodySchema = z.object({ reason: CancelReasonSchema.optional() }).strict();
export type CancelTaskBody = z.infer<typeof CancelTaskBodySchema>;

/** The 202 answer: the task is `cancelled` (committed) and its planner was told. */
export const CancelledSchema = z.object({ id: TaskIdSchema, status: z.literal("cancelled") });
export type Cancelled = z.infer<typeof CancelledSchema>;

/** `intake.cancelTask`: `tenant` from the API key (callers inside the cluster may leave it out). */
export const CancelTaskParamsSchema = z.object({
  taskId: TaskRefSchema,
  tenant: TenantSchema.optional(),
  by: CancelledBySchema,
  reason: CancelReasonSchema.optional(),
});
export type CancelTaskParams = z.infer<typeof CancelTaskParamsSchema>;

/**
 * The store's `cancelTask` answer. `cancelled`: this call made the task cancelled (from `previous_status`,
 * run by the planner node `lease_owner` when it was running); `already_cancelled`: an earlier cancel did;
 * `finished`: it succeeded or failed first (`previous_status` says which); `not_found`: no such task for
 * the tenant. `task`: the row after the call (null when not found).
 */
export const CancelResultSchema = z.object({
  outcome: z.enum(["cancelled", "already_cancelled", "finished", "not_found"]),
  previous_status: TaskStatusSchema.nullable(),
  lease_owner: z.string().nullable(),
  task: TaskRecordSchema.nullable(),
});
export type CancelResult = z.infer<typeof CancelResultSchema>;

/** `planner.abortTask`, called on the node that runs the task (its `lease_owner`). */
export const AbortTaskParamsSchema = z.object({ taskId: TaskRefSchema, reason: CancelReasonSchema.optional() });
export type AbortTaskParams = z.infer<typeof AbortTaskParamsSchema>;

/** The planner's answer: once it is back, no tool call of the task starts from that planner. */
export const AbortTaskAckSchema = z.object({ running: z.boolean() });
export type AbortTaskAck = z.infer<typeof AbortTaskAckSchema>;

/** Broadcast to every planner and executor once a cancel is committed (the direct call's backstop). */
export const TASK_CANCELLED_CONTROL_EVENT = "clawfleet.control.task_cancelled";

export const TaskCancelledControlSchema = z.object({
  task_id: TaskIdSchema,
  tenant: z.string(),
  previous_status: TaskStatusSchema,
  by: CancelledBySchema,
  reason: CancelReasonSchema.optional(),
  at: TimestampSchema,
  node: z.string(),
});
export type TaskCancelledControl = z.infer<typeof TaskCancelledControlSchema>;
