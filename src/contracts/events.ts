/**
 * The task lifecycle events any Moleculer service of a user can subscribe to
 * (`events: {"clawfleet.task.*"(ctx) {…}}`). Each is emitted once per
 * transition, after the write that makes the transition is committed, by the
 * node that made it (README, "Events"). Every payload carries the task id, its
 * agent and prompt version, the task's status after the transition, its step
 * (the last checkpointed step) and its usage so far; some add what is
 * particular to them.
 */
import { z } from "zod";
import { PrioritySchema, StepNumberSchema, TaskErrorSchema, TaskIdSchema, TimestampSchema, UsageSchema } from "./task";

export const TASK_EVENT_NAMES = [
  "clawfleet.task.queued",
  "clawfleet.task.started",
  "clawfleet.task.step",
  "clawfleet.task.awaiting_approval",
  "clawfleet.task.succeeded",
  "clawfleet.task.failed",
  "clawfleet.task.cancelled",
] as const;
export type TaskEventName = (typeof TASK_EVENT_NAMES)[number];

/** Subscribes a service to every lifecycle event at once. */
export const TASK_EVENTS_WILDCARD = "clawfleet.task.*";

const TaskEventBase = z.object({
  task_id: TaskIdSchema,
  agent: z.string(),
  prompt_version: z.string(),
  /** Steps checkpointed so far (the number of the last one); 0 before the first. */
  step: z.number().int().nonnegative(),
  /** What the task has spent so far, all attempts included: the usage `GET /v1/tasks/{id}` answers. */
  usage: UsageSchema,
  /** When the transition was committed, as the emitting node saw it. */
  at: TimestampSchema,
  /** The Moleculer node that made the transition. */
  node: z.string(),
  /** The task's tenant: a per-tenant stream filters on it. */
  tenant: z.string(),
});

export const TaskQueuedEventSchema = TaskEventBase.extend({
  status: z.literal("queued"),
  /** `submitted`: a new task (a replayed Idempotency-Key emits nothing); `redrive`: a failed task put back. */
  reason: z.enum(["submitted", "redrive"]),
  priority: PrioritySchema,
});

export const TaskStartedEventSchema = TaskEventBase.extend({
  status: z.literal("running"),
  /** 1 for the first attempt; a task resumed after a crash, a hand-back or a passing failure starts again with the next. */
  attempt: z.number().int().positive(),
  /** The step this attempt continues at: `step + 1`. */
  resumed_at_step: StepNumberSchema,
});

export const TaskStepEventSchema = TaskEventBase.extend({
  status: z.literal("running"),
  step: StepNumberSchema,
  kind: z.enum(["llm", "tool"]),
  /** Tool steps: the tool and whether it succeeded. */
  tool: z.string().optional(),
  ok: z.boolean().optional(),
  /** LLM steps: the model that answered and what this step cost (`usage` is the task's running total). */
  model: z.string().optional(),
  step_usage: UsageSchema.optional(),
  duration_ms: z.number().nonnegative(),
});

export const TaskAwaitingApprovalEventSchema = TaskEventBase.extend({
  status: z.literal("awaiting_approval"),
  /** The pending call. */
  tool: z.string(),
  tool_input: z.unknown(),
});

export const TaskSucceededEventSchema = TaskEventBase.extend({ status: z.literal("succeeded") });

export const TaskFailedEventSchema = TaskEventBase.extend({ status: z.literal("failed"), error: TaskErrorSchema });

export const TaskCancelledEventSchema = TaskEventBase.extend({ status: z.literal("cancelled") });

/** Each event's payload schema, by event name. */
export const TASK_EVENT_SCHEMAS = {
  "clawfleet.task.queued": TaskQueuedEventSchema,
  "clawfleet.task.started": TaskStartedEventSchema,
  "clawfleet.task.step": TaskStepEventSchema,
  "clawfleet.task.awaiting_approval": TaskAwaitingApprovalEventSchema,
  "clawfleet.task.succeeded": TaskSucceededEventSchema,
  "clawfleet.task.failed": TaskFailedEventSchema,
  "clawfleet.task.cancelled": TaskCancelledEventSchema,
} as const satisfies Record<TaskEventName, z.ZodType>;

export type TaskEventPayload<N extends TaskEventName = TaskEventName> = z.infer<(typeof TASK_EVENT_SCHEMAS)[N]>;
export type TaskQueuedEvent = TaskEventPayload<"clawfleet.task.queued">;
export type TaskStartedEvent = TaskEventPayload<"clawfleet.task.started">;
export type TaskStepEvent = TaskEventPayload<"clawfleet.task.step">;
export type TaskAwaitingApprovalEvent = TaskEventPayload<"clawfleet.task.awaiting_approval">;
export type TaskSucceededEvent = TaskEventPayload<"clawfleet.task.succeeded">;
export type TaskFailedEvent = TaskEventPayload<"clawfleet.task.failed">;
export type TaskCancelledEvent = TaskEventPayload<"clawfleet.task.cancelled">;

/** Sends one event (the broker's `emit`, in services); must not throw. */
export type TaskEventSink = <N extends TaskEventName>(name: N, payload: TaskEventPayload<N>) => void;
