/** `GET /v1/tasks`: the query checked, the page read from the checkpoint role for the caller's tenant, and shown. */
import { parseParams, TaskListParamsSchema, type TaskList, type TaskListQuery, type TaskListView, type TaskSummary, type TaskSummaryView } from "../contracts";

export function taskSummaryView(t: TaskSummary): TaskSummaryView {
  return {
    id: t.id,
    agent: t.agent,
    status: t.status,
    priority: t.priority,
    error: t.error,
    attempts: t.attempts,
    steps: t.steps,
    usage: {
      input_tokens: t.usage.input_tokens,
      output_tokens: t.usage.output_tokens,
      cache_read_input_tokens: t.usage.cache_read_input_tokens,
      cost_usd: t.usage.cost_usd,
    },
    prompt_version: t.prompt_version,
    tenant: t.tenant,
    created_at: t.created_at,
    started_at: t.started_at,
    finished_at: t.finished_at,
  };
}

/** The query string as the store's query; a bad or unknown parameter is a 422 naming it. */
export function taskListQueryOf(query: Record<string, unknown> | undefined, tenant: string): TaskListQuery {
  const p = parseParams(TaskListParamsSchema, query ?? {}, "task list");
  return { tenant, limit: p.limit, ...(p.status ? { status: p.status } : {}), ...(p.agent ? { agent: p.agent } : {}), ...(p.cursor ? { cursor: p.cursor } : {}) };
}

export async function readTaskList(store: { listTasks(q: TaskListQuery): Promise<TaskList> }, query: Record<string, unknown> | undefined, tenant: string): Promise<TaskListView> {
  const page = await store.listTasks(taskListQueryOf(query, tenant));
  return { tasks: page.tasks.map(taskSummaryView), next_cursor: page.next_cursor };
}
