/** The wake-up channel: how intake and the reaper tell a planner to look at a task. */
import { z } from "zod";
import { TaskRefSchema } from "./task";

export const TASKS_READY_CHANNEL = "tasks.ready";
/** The consumer group every planner joins on `TASKS_READY_CHANNEL`: each wake-up goes to one planner. */
export const PLANNERS_GROUP = "planners";

/** The wake-up message on channel `tasks.ready`. Postgres holds the truth; this only says "look at task X". */
export const WakeUpSchema = z.object({
  taskId: TaskRefSchema,
  reason: z.enum(["submitted", "reaped", "released", "redrive", "retry"]),
  traceparent: z.string().optional(),
});
export type WakeUp = z.infer<typeof WakeUpSchema>;
