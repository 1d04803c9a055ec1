/**
 * Cancelling a task, for `PgTaskStore` (migration 012). One statement makes the
 * task `cancelled` and bumps its fence, so whatever the attempt that was running
 * it writes afterwards (a checkpoint, a finish, a release) is refused as stale:
 * its late writes are fenced off without anyone having to reach it first. The
 * row lock orders a cancel against those writes: whichever commits first wins,
 * and a cancel that finds the task already succeeded or failed changes nothing.
 */
import type pg from "pg";
import type { CancelResult, TaskStatus, Usage } from "../contracts";
import { TASK_STATUSES } from "../contracts";
import { InternalError } from "../errors";
import { toTask, type TaskRow } from "./rows";

type Query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;

/** The statuses a cancel ends; the others are already final. */
const CANCELLABLE: readonly TaskStatus[] = ["queued", "running", "awaiting_approval"];

const SQL = {
  // `prev` locks the row and reads its latest committed version (a claim or a finish that committed while this
  // statement waited is seen), so `previous_status` and `previous_owner` are what the cancel really replaced.
  cancel: `
    WITH prev AS (
      SELECT id, status, lease_owner FROM tasks
      WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
      FOR UPDATE
    ), cancelled AS (
      UPDATE tasks t
      SET status = 'cancelled', fence = t.fence + 1, finished_at = now(), updated_at = now(), lease_owner = NULL,
          cancelled_by = $3, cancel_reason = $4
      FROM prev
      WHERE t.id = prev.id AND prev.status = ANY($5::text[])
      RETURNING t.*
    )
    SELECT prev.status AS previous_status, prev.lease_owner AS previous_owner, to_jsonb(c) AS task
    FROM prev LEFT JOIN cancelled c ON true`,
  // Not fenced: the attempt that spent it may already be fenced off (its task cancelled under it).
  addUsage: `
    UPDATE tasks
    SET input_tokens = input_tokens + $2::bigint,
        output_tokens = output_tokens + $3::bigint,
        cache_read_input_tokens = cache_read_input_tokens + $4::bigint,
        cache_creation_input_tokens = cache_creation_input_tokens + $5::bigint,
        cost_usd = cost_usd + $6::numeric
    WHERE id = $1`,
} as const;

interface CancelRow {
  previous_status: string;
  previous_owner: string | null;
  /** The row as the cancel left it; jsonb, so bigint and numeric come back as JSON numbers. */
  task: TaskRow | null;
}

/** See the store's method table (`cancelTask`). `taskId` is a task id (the caller checked). */
export async function cancelTask(query: Query, taskId: string, tenant: string | undefined, by: string, reason: string | undefined): Promise<CancelResult> {
  const { rows } = await query<CancelRow>(SQL.cancel, [taskId, tenant ?? null, by, reason ?? null, CANCELLABLE]);
  const row = rows[0];
  if (row === undefined) return { outcome: "not_found", previous_status: null, lease_owner: null, task: null };
  const previous = TASK_STATUSES.find((s) => s === row.previous_status);
  if (previous === undefined) throw new InternalError("unexpected status in the database", { value: row.previous_status });
  if (row.task !== null) return { outcome: "cancelled", previous_status: previous, lease_owner: row.previous_owner, task: toTask(row.task) };
  return { outcome: previous === "cancelled" ? "already_cancelled" : "finished", previous_status: previous, lease_owner: null, task: null };
}

/** See the store's method table (`addUsage`); false when there is no such task. */
export async function addUsage(query: Query, taskId: string, usage: Usage): Promise<boolean> {
  const values = [taskId, usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens, usage.cost_usd];
  const { rowCount } = await query(SQL.addUsage, values);
  return rowCount === 1;
}
