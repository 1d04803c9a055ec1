/**
 * The `approvals` table (migration 010) for `PgTaskStore`. Every write that
 * moves a task in or out of `awaiting_approval` first locks the task's row,
 * as a cancel does (cancel.ts), so a decision, a timeout, a cancel and a park
 * of one task are ordered by that one lock: whichever commits first wins, and
 * the others find the task moved on. A decision is written only where none
 * is (`decision IS NULL`), so two decisions racing record exactly one.
 */
import type pg from "pg";
import type { Approval, ApprovalRequest, DecideResult, Decision, ExpiredApproval, PendingApproval, TaskStatus } from "../contracts";
import { InternalError } from "../errors";
import { iso, isoOrNull, status as statusOf, toTask, type TaskRow } from "./rows";

type Query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;

export interface ApprovalRow {
  task_id: string;
  step: number;
  tool_use_id: string;
  tool: string;
  input: unknown;
  requested_at: Date | string;
  deadline: Date | string;
  decision: string | null;
  reason: string | null;
  decided_by: string | null;
  decided_at: Date | string | null;
}

const COLUMNS = "task_id, step, tool_use_id, tool, input, requested_at, deadline, decision, reason, decided_by, decided_at";

const SQL = {
  // Fenced like every worker write; the attempt is given back (waiting for a person is not the task's failure).
  park: `
    UPDATE tasks
    SET status = 'awaiting_approval', lease_owner = NULL, updated_at = now(), attempts = GREATEST(attempts - 1, 0)
    WHERE id = $1 AND fence = $2 AND status = 'running'
    RETURNING id`,
  // A pending call keeps its first deadline; a timed-out one (a redriven task) is asked anew.
  request: `
    INSERT INTO approvals (task_id, step, tool_use_id, tool, input, deadline)
    VALUES ($1, $2, $3, $4, $5::jsonb, now() + $6::integer * interval '1 second')
    ON CONFLICT (task_id, step) DO UPDATE
      SET tool_use_id = EXCLUDED.tool_use_id, tool = EXCLUDED.tool, input = EXCLUDED.input, requested_at = now(),
          deadline = EXCLUDED.deadline, decision = NULL, reason = NULL, decided_by = NULL, decided_at = NULL
      WHERE approvals.decision = 'timeout'`,
  approvalOf: `SELECT ${COLUMNS} FROM approvals WHERE task_id = $1 AND step = $2`,
  lockTask: `SELECT status, tenant FROM tasks WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) FOR UPDATE`,
  // The task's latest gated call (a task waits on one call at a time: the last one asked for), or the one named.
  latest: `
    SELECT ${COLUMNS} FROM approvals
    WHERE task_id = $1 AND ($2::text IS NULL OR tool_use_id = $2)
    ORDER BY step DESC LIMIT 1`,
  decide: `
    UPDATE approvals SET decision = $3, reason = $4, decided_by = $5, decided_at = now()
    WHERE task_id = $1 AND step = $2 AND decision IS NULL AND deadline > now()
    RETURNING ${COLUMNS}`,
  // Back in the queue, due at once; the caller publishes the wake-up, and the reaper finds it by `wakeup_at` if that is lost.
  requeue: `
    UPDATE tasks SET status = 'queued', wakeup_at = now(), updated_at = now(), not_before = NULL
    WHERE id = $1 AND status = 'awaiting_approval'`,
  pending: `
    SELECT ${COLUMNS.split(", ").map((c) => `a.${c}`).join(", ")}, t.agent, t.prompt_version, t.tenant
    FROM approvals a JOIN tasks t ON t.id = a.task_id
    WHERE a.decision IS NULL AND t.status = 'awaiting_approval' AND ($2::text IS NULL OR t.tenant = $2)
    ORDER BY a.requested_at, a.task_id LIMIT $1`,
  // Locked as a decision locks them; one being decided (or cancelled) right now is skipped, and looked at next sweep.
  lockDue: `
    SELECT t.id FROM tasks t JOIN approvals a ON a.task_id = t.id
    WHERE t.status = 'awaiting_approval' AND a.decision IS NULL AND a.deadline <= now()
    ORDER BY a.deadline, t.id LIMIT $1
    FOR UPDATE OF t SKIP LOCKED`,
  timeOut: `
    UPDATE approvals SET decision = 'timeout', decided_by = 'timeout', decided_at = now()
    WHERE task_id = ANY($1::uuid[]) AND decision IS NULL AND deadline <= now()
    RETURNING ${COLUMNS}`,
  fail: `
    WITH task AS (
      UPDATE tasks
      SET status = 'failed', error = $2::jsonb, finished_at = now(), updated_at = now(), lease_owner = NULL
      WHERE id = $1 AND status = 'awaiting_approval'
      RETURNING *
    ), letter AS (
      INSERT INTO dead_letters (task_id, agent, error, attempts, tenant)
      SELECT id, agent, error, attempts, tenant FROM task
      ON CONFLICT (task_id) DO UPDATE
        SET agent = EXCLUDED.agent, error = EXCLUDED.error, attempts = EXCLUDED.attempts, tenant = EXCLUDED.tenant, created_at = now()
    )
    SELECT * FROM task`,
} as const;

const DECISIONS = ["approve", "reject", "timeout"] as const;

export function toApproval(row: ApprovalRow): Approval {
  const decision = row.decision === null ? null : DECISIONS.find((d) => d === row.decision);
  if (decision === undefined) throw new InternalError("unexpected approval decision in the database", { value: String(row.decision) });
  return {
    task_id: row.task_id,
    step: row.step,
    tool_use_id: row.tool_use_id,
    tool: row.tool,
    input: row.input ?? null,
    requested_at: iso(row.requested_at),
    deadline: iso(row.deadline),
    decision,
    reason: row.reason,
    decided_by: row.decided_by,
    decided_at: isoOrNull(row.decided_at),
  };
}

/**
 * See the store's method table (`awaitApproval`). `inputJson`: the call's input as the store serializes jsonb.
 * False when the fenced write matched no row (the caller says why).
 */
export async function parkForApproval(client: pg.PoolClient, taskId: string, fence: number, request: ApprovalRequest, inputJson: string): Promise<boolean> {
  const parked = await client.query(SQL.park, [taskId, fence]);
  if (parked.rowCount !== 1) return false;
  await client.query(SQL.request, [taskId, request.step, request.tool_use_id, request.tool, inputJson, request.timeout_seconds]);
  return true;
}

export async function approvalOf(query: Query, taskId: string, step: number): Promise<Approval | null> {
  const row = (await query<ApprovalRow>(SQL.approvalOf, [taskId, step])).rows[0];
  return row === undefined ? null : toApproval(row);
}

/** See the store's method table (`decideApproval`). `taskId` is a task id (the caller checked). */
export async function decideApproval(client: pg.PoolClient, taskId: string, d: Decision, tenant: string | undefined): Promise<DecideResult> {
  const task = (await client.query<{ status: string; tenant: string }>(SQL.lockTask, [taskId, tenant ?? null])).rows[0];
  if (task === undefined) return { outcome: "not_found", status: null, tenant: null, approval: null };
  const status = statusOf(task.status);
  const answer = (outcome: DecideResult["outcome"], approval: Approval | null, now: TaskStatus = status): DecideResult => ({ outcome, status: now, tenant: task.tenant, approval });
  const latestRow = (await client.query<ApprovalRow>(SQL.latest, [taskId, d.tool_use_id ?? null])).rows[0];
  if (latestRow === undefined) return answer("not_awaiting", null);
  const latest = toApproval(latestRow);
  // Timed out: no decision was made, and none can be (a redriven task asks anew once a planner reaches the call).
  if (latest.decision === "timeout") return answer("not_awaiting", latest);
  if (latest.decision !== null) return answer("already_decided", latest);
  // A pending call of a task that is no longer waiting on it (cancelled meanwhile) takes no decision.
  if (status !== "awaiting_approval") return answer("not_awaiting", latest);
  const decided = (await client.query<ApprovalRow>(SQL.decide, [taskId, latest.step, d.decision, d.reason ?? null, d.by])).rows[0];
  if (decided === undefined) return answer("expired", latest);
  await client.query(SQL.requeue, [taskId]);
  return answer("recorded", toApproval(decided), "queued");
}

export async function listApprovals(query: Query, limit: number, tenant: string | undefined): Promise<PendingApproval[]> {
  const { rows } = await query<ApprovalRow & { agent: string; prompt_version: string; tenant: string }>(SQL.pending, [limit, tenant ?? null]);
  return rows.map((r) => ({ ...toApproval(r), agent: r.agent, prompt_version: r.prompt_version, tenant: r.tenant }));
}

/** See the store's method table (`expireApprovals`). `json`: how the store serializes jsonb. */
export async function expireApprovals(client: pg.PoolClient, limit: number, json: (v: unknown) => string): Promise<ExpiredApproval[]> {
  const due = (await client.query<{ id: string }>(SQL.lockDue, [limit])).rows.map((r) => r.id);
  if (due.length === 0) return [];
  const timedOut = (await client.query<ApprovalRow>(SQL.timeOut, [due])).rows.map(toApproval);
  const out: ExpiredApproval[] = [];
  for (const approval of timedOut) {
    const error = {
      type: "approval_timeout",
      message: `no decision on ${approval.tool} (step ${approval.step}) by its deadline ${approval.deadline}; the call was not made`,
    };
    const row = (await client.query<TaskRow>(SQL.fail, [approval.task_id, json(error)])).rows[0];
    if (row !== undefined) out.push({ task: toTask(row), approval });
  }
  return out;
}
