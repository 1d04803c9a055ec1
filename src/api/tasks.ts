/**
 * The read side of the REST API: a task and its steps, as the API shows them,
 * read from the checkpoint role. An id that is not a task id is a 404 like an
 * unknown one: a client learns nothing from the difference.
 */
import { parseParams, StepsParamsSchema, TaskIdSchema, type StepsView, type TaskView } from "../contracts";
import { TaskNotFoundError } from "../errors";
import type { TaskStore } from "../store/types";
import { stepView, taskView } from "./views";

type TaskReads = Pick<TaskStore, "getTask" | "listSteps" | "listStepsAfter" | "taskWebhook">;

/** The `:id` of a route, checked to be a task id; UUIDs are case-insensitive, so it is lower-cased first. */
export function taskIdOf(params: { params?: Record<string, string> }): string {
  const id = (params.params?.id ?? "").toLowerCase();
  if (!TaskIdSchema.safeParse(id).success) throw new TaskNotFoundError(`no task ${JSON.stringify(id.slice(0, 64))}`, { id: id.slice(0, 64) });
  return id;
}

/**
 * `GET /v1/tasks/{id}`. Both reads name the caller's tenant: another tenant's
 * task answers exactly as an unknown one, after the same two reads.
 */
export async function readTask(store: TaskReads, id: string, tenant: string): Promise<TaskView> {
  const [task, steps] = await Promise.all([
    store.getTask(id, tenant),
    // For usage.by_model; a task has tens of steps, one indexed read.
    store.listSteps(id, tenant),
  ]);
  if (!task) throw new TaskNotFoundError(`no task ${id}`, { id });
  // Its delivery and attempts (README, "Webhooks"), read only for a task that has one.
  const webhook = task.webhook ? await store.taskWebhook(id, tenant) : null;
  return taskView(task, steps, webhook ?? undefined);
}

/**
 * `GET /v1/tasks/{id}/steps`: every step, or with `?limit=` one page of them after `?after=` and
 * `next_after` (the last step answered when a full page may have more, null when it was the last).
 * A bad parameter is a 422 naming it.
 */
export async function readSteps(store: TaskReads, id: string, tenant: string, query?: Record<string, unknown>): Promise<StepsView> {
  const { after, limit } = parseParams(StepsParamsSchema, query ?? {}, "steps");
  const task = await store.getTask(id, tenant);
  if (!task) throw new TaskNotFoundError(`no task ${id}`, { id });
  if (limit === undefined) {
    const steps = await store.listSteps(id, tenant);
    return { id, status: task.status, steps: (after > 0 ? steps.filter((s) => s.step > after) : steps).map(stepView) };
  }
  const page = await store.listStepsAfter(id, after, limit, tenant);
  const last = page[page.length - 1];
  return { id, status: task.status, steps: page.map(stepView), next_after: page.length === limit && last ? last.step : null };
}
