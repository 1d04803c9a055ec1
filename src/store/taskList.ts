/**
 * `listTasks` for `PgTaskStore`: a tenant's tasks, newest first, by keyset on
 * (created_at, id) (indexes of migrations 005 and 013). The cursor carries the
 * last row's created_at to the microsecond, as Postgres keeps it: a millisecond
 * JavaScript Date would skip or repeat tasks created within the same
 * millisecond at a page's edge.
 */
import type pg from "pg";
import { isTaskId, type TaskList, type TaskListQuery, type TaskSummary } from "../contracts";
import { ValidationError } from "../errors";
import { iso, isoOrNull, num, priority as priorityOf, status as statusOf, taskError, type TaskRow } from "./rows";

/** The columns a summary reads, and created_at in UTC with its microseconds, for the cursor. */
type SummaryRow = Pick<
  TaskRow,
  | "id"
  | "agent"
  | "status"
  | "priority"
  | "error"
  | "attempts"
  | "steps"
  | "input_tokens"
  | "output_tokens"
  | "cache_read_input_tokens"
  | "cache_creation_input_tokens"
  | "cost_usd"
  | "prompt_version"
  | "tenant"
  | "created_at"
  | "started_at"
  | "finished_at"
> & { created_us: string };

type Query = (text: string, values: unknown[]) => Promise<pg.QueryResult<SummaryRow>>;

const COLUMNS = `
  id, agent, status, priority, error, attempts, steps, input_tokens, output_tokens, cache_read_input_tokens,
  cache_creation_input_tokens, cost_usd, prompt_version, tenant, created_at, started_at, finished_at,
  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_us`;

/** A cursor's instant, exactly as `created_us` writes it. */
const CURSOR_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export function encodeCursor(createdUs: string, id: string): string {
  return Buffer.from(`${createdUs}/${id}`, "utf8").toString("base64url");
}

/** The position a cursor names; a cursor this store did not write is a 422 naming the field. */
export function decodeCursor(cursor: string): { createdUs: string; id: string } {
  const [createdUs = "", id = "", ...rest] = Buffer.from(cursor, "base64url").toString("utf8").split("/");
  if (rest.length > 0 || !CURSOR_INSTANT.test(createdUs) || !isTaskId(id)) {
    throw new ValidationError('field "cursor": not a cursor this API answered; pass a page\'s next_cursor as it is', { field: "cursor" });
  }
  return { createdUs, id };
}

/**
 * The statement for `q`: only the clauses it needs, so each query is one the planner sees whole (the
 * tenant/status/created_at index for a status, the tenant/created_at/id one otherwise). Values go as
 * parameters; the text is built from the fixed pieces alone.
 */
export function taskListStatement(q: TaskListQuery): { text: string; values: unknown[] } {
  const values: unknown[] = [q.tenant];
  const where = ["tenant = $1"];
  if (q.status !== undefined) {
    values.push(q.status);
    where.push(`status = $${values.length}`);
  }
  if (q.agent !== undefined) {
    values.push(q.agent);
    where.push(`agent = $${values.length}`);
  }
  if (q.cursor !== undefined) {
    const { createdUs, id } = decodeCursor(q.cursor);
    values.push(createdUs, id);
    where.push(`(created_at, id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
  }
  // One row more than the page: whether it exists says whether there is a next page.
  values.push(q.limit + 1);
  return {
    text: `SELECT ${COLUMNS} FROM tasks WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
    values,
  };
}

function toSummary(row: SummaryRow): TaskSummary {
  return {
    id: row.id,
    agent: row.agent,
    status: statusOf(row.status),
    priority: priorityOf(row.priority),
    error: taskError(row.error),
    attempts: row.attempts,
    steps: row.steps,
    usage: {
      input_tokens: num(row.input_tokens),
      output_tokens: num(row.output_tokens),
      cache_read_input_tokens: num(row.cache_read_input_tokens),
      cache_creation_input_tokens: num(row.cache_creation_input_tokens),
      cost_usd: num(row.cost_usd),
    },
    prompt_version: row.prompt_version,
    tenant: row.tenant,
    created_at: iso(row.created_at),
    started_at: isoOrNull(row.started_at),
    finished_at: isoOrNull(row.finished_at),
  };
}

export async function listTaskPage(query: Query, q: TaskListQuery): Promise<TaskList> {
  const { text, values } = taskListStatement(q);
  const { rows } = await query(text, values);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    tasks: page.map(toSummary),
    next_cursor: rows.length > q.limit && last !== undefined ? encodeCursor(last.created_us, last.id) : null,
  };
}
