/**
 * The webhook outbox (migration 014) for `PgTaskStore`. Rows are written by the
 * migration's trigger, in the transaction that ends the task; here a delivery
 * loop claims the due ones, records each attempt's outcome, and the API reads a
 * task's deliveries back.
 *
 * A claim is one attempt: it bumps `attempts`, and that number fences the
 * outcome's write, so a loop whose claim lapsed (it paused, or died and came
 * back) cannot overwrite what its successor recorded. Claims skip rows another
 * loop holds locked, so every intake may run a loop on the same table.
 */
import type pg from "pg";
import {
  isTaskId,
  WEBHOOK_EVENT_TYPES,
  type TaskWebhookView,
  type WebhookAttemptResult,
  type WebhookAttemptView,
  type WebhookClaim,
  type WebhookDeliveryState,
  type WebhookEventType,
} from "../contracts";
import { InternalError } from "../errors";
import { iso, isoOrNull } from "./rows";

type Query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;

/** What an interrupted attempt says on the task: its loop stopped before it recorded an outcome. */
export const INTERRUPTED_ATTEMPT = "no outcome recorded: the delivering process stopped mid-attempt";

const SQL = {
  // The interrupted attempt of a lapsed claim is recorded before the row is claimed again; both
  // statements of the CTE see the rows as they were before it, so `claimed_by` is the old claimant.
  claim: `
    WITH due AS (
      SELECT id FROM webhook_deliveries
      WHERE state = 'pending' AND next_attempt_at <= now() AND (claimed_until IS NULL OR claimed_until < now())
      ORDER BY next_attempt_at, id
      LIMIT $2
      FOR UPDATE SKIP LOCKED
    ), interrupted AS (
      INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
      SELECT d.id, d.attempts, d.claimed_at, NULL::integer, NULL::integer, $4::text
      FROM webhook_deliveries d JOIN due ON due.id = d.id
      WHERE d.claimed_by IS NOT NULL AND d.attempts > 0
      ON CONFLICT (delivery_id, attempt) DO NOTHING
    )
    UPDATE webhook_deliveries d
    SET attempts = d.attempts + 1, claimed_by = $1, claimed_at = now(), claimed_until = now() + $3::double precision * interval '1 millisecond'
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.task_id, d.tenant, d.type, d.url, d.secret_id, d.payload, d.attempts, d.created_at`,
  // The attempt is history whoever holds the row now; the row's state only for the claim that made it.
  record: `
    WITH attempt AS (
      INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
      VALUES ($1, $3, $4, $5, $6, $7)
      ON CONFLICT (delivery_id, attempt) DO UPDATE
        SET started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,
            status_code = EXCLUDED.status_code, error = EXCLUDED.error
    )
    UPDATE webhook_deliveries
    SET state = $8, claimed_by = NULL, claimed_at = NULL, claimed_until = NULL,
        next_attempt_at = CASE WHEN $8 = 'pending' THEN now() + $9::double precision * interval '1 millisecond' ELSE next_attempt_at END,
        finished_at = CASE WHEN $8 = 'pending' THEN NULL ELSE now() END
    WHERE id = $1 AND claimed_by = $2 AND attempts = $3 AND state = 'pending'
    RETURNING id`,
  // A null tenant ($2) reads any task's: the roles inside the cluster; the API always names one.
  task: `SELECT webhook FROM tasks WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)`,
  deliveries: `
    SELECT id, state, next_attempt_at FROM webhook_deliveries WHERE task_id = $1
    ORDER BY created_at DESC, id DESC LIMIT 1`,
  attempts: `
    SELECT a.delivery_id, d.type, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error
    FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
    WHERE d.task_id = $1
    ORDER BY d.created_at, d.id, a.attempt`,
} as const;

interface ClaimRow {
  id: string;
  task_id: string;
  tenant: string;
  type: string;
  url: string;
  secret_id: string | null;
  payload: string;
  attempts: number;
  created_at: Date | string;
}

interface AttemptRow {
  delivery_id: string;
  type: string;
  attempt: number;
  started_at: Date | string;
  duration_ms: number | null;
  status_code: number | null;
  error: string | null;
}

function eventType(v: string): WebhookEventType {
  const found = WEBHOOK_EVENT_TYPES.find((t) => t === v);
  if (found === undefined) throw new InternalError("unexpected webhook event type in the database", { value: v });
  return found;
}

/** Claims up to `limit` due deliveries for `owner`, each for `leaseMs`: one attempt each. */
export async function claimWebhooks(query: Query, owner: string, limit: number, leaseMs: number): Promise<WebhookClaim[]> {
  const { rows } = await query<ClaimRow>(SQL.claim, [owner, limit, leaseMs, INTERRUPTED_ATTEMPT]);
  return rows.map((r) => ({
    id: r.id,
    task_id: r.task_id,
    tenant: r.tenant,
    type: eventType(r.type),
    url: r.url,
    secret_id: r.secret_id,
    payload: r.payload,
    attempt: r.attempts,
    created_at: iso(r.created_at),
  }));
}

/**
 * Records attempt `attempt` of delivery `id` and, while `owner`'s claim of it is still the current
 * one, the state it leads to. False when the claim was no longer current: the attempt is kept,
 * the delivery belongs to whoever claimed it since.
 */
export async function recordWebhookAttempt(query: Query, id: string, owner: string, attempt: number, result: WebhookAttemptResult): Promise<boolean> {
  const state: WebhookDeliveryState = result.next.state;
  const retryInMs = result.next.state === "pending" ? result.next.retry_in_ms : 0;
  const { rowCount } = await query(SQL.record, [
    id,
    owner,
    attempt,
    result.started_at,
    result.duration_ms,
    result.status_code,
    result.error,
    state,
    retryInMs,
  ]);
  return rowCount === 1;
}

/** The task's webhook and its deliveries; null for an unknown task (or another tenant's) or one without a webhook. */
export async function taskWebhook(query: Query, taskId: string, tenant?: string): Promise<TaskWebhookView | null> {
  if (!isTaskId(taskId)) return null;
  const task = (await query<{ webhook: unknown }>(SQL.task, [taskId, tenant ?? null])).rows[0];
  const hook = task?.webhook as { url?: unknown; secret_id?: unknown } | null | undefined;
  if (typeof hook?.url !== "string") return null;
  const [latest, attempts] = await Promise.all([
    query<{ id: string; state: WebhookDeliveryState; next_attempt_at: Date | string }>(SQL.deliveries, [taskId]).then((r) => r.rows[0]),
    query<AttemptRow>(SQL.attempts, [taskId]).then((r) => r.rows.map(toAttemptView)),
  ]);
  return {
    url: hook.url,
    secret_id: typeof hook.secret_id === "string" ? hook.secret_id : null,
    state: latest?.state ?? "waiting",
    webhook_id: latest?.id ?? null,
    next_attempt_at: latest?.state === "pending" ? isoOrNull(latest.next_attempt_at) : null,
    attempts,
  };
}

const toAttemptView = (r: AttemptRow): WebhookAttemptView => ({
  webhook_id: r.delivery_id,
  type: eventType(r.type),
  attempt: r.attempt,
  at: iso(r.started_at),
  duration_ms: r.duration_ms,
  status_code: r.status_code,
  error: r.error,
});
