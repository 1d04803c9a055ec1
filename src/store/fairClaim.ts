/**
 * Fair claiming for `PgTaskStore` (migration 006). A wake-up is a ticket: the
 * planner holding one takes the fairest queued task, not necessarily the one the
 * wake-up names. Fairest: among tenants under their running cap, the one with the
 * fewest running tasks; within a tenant, priority high > normal > low, then the
 * oldest. Ties between tenants go to the better head (priority, then age).
 *
 * One statement picks and claims, locking with FOR UPDATE SKIP LOCKED, so two
 * planners never claim the same row and never wait on each other. With a running
 * cap in force the statement runs under a transaction-scoped advisory lock: two
 * concurrent claims could otherwise both count N-1 running and both take a slot.
 * Serialising claims costs about a millisecond each, far less than a task's run.
 * The claim's times are read as it runs (`clock_timestamp()`), not at its
 * transaction's start (`now()`): a claim that waited for the lock may take a task
 * committed after its transaction began, and must not record it as started before
 * it was created.
 * A task inside its retry backoff (`not_before`, migration 007) is passed over, and
 * so is a task of a paused agent or prompt version (the claim's exclusion list, from
 * the planner's SwitchBoard, src/switches/): it stays queued, and is claimed once
 * its switch lifts.
 */
import type { ClaimExclusions, RunningCaps } from "../contracts";

/** Same expression as the index of migration 006, so the planner can walk it. */
const RANK = "(CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END)";

/** A queued task past its retry backoff (migration 007): one released after a passing failure waits it out. */
const DUE = "(not_before IS NULL OR not_before <= now())";

/** Not excluded by the claim's exclusion list ($4 agents, $5 prompt versions); an empty list excludes nothing. */
const ALLOWED = "(agent <> ALL($4::text[]) AND prompt_version <> ALL($5::text[]))";

/** Key of the advisory lock that serialises capped claims ("Fair" in ASCII). */
export const FAIR_CLAIM_LOCK_KEY = 0x46616972;

/**
 * $1 owner, $2 the default cap (null: none), $3 per-tenant caps as a jsonb object (a
 * tenant named there with null has no cap), $4 and $5 the agents and prompt versions
 * whose tasks are passed over (a tenant whose queued tasks are all of them has no head). The tenants with queued work are found by
 * a skip scan of the partial index; the ordered candidates are then tried one by one,
 * the first whose head is not locked by another claimer wins. The running tasks are
 * counted only where the count can change the pick: with a cap, or with two tenants or
 * more queued. One tenant and no cap (a cluster without tenants) skips the count, which
 * grows with the tasks in flight: at 2,000 running it was about 30 % of a claim's time.
 */
export const CLAIM_NEXT_SQL = `
  WITH RECURSIVE queued_tenants(tenant) AS (
    (SELECT tenant FROM tasks WHERE status = 'queued' ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT t.tenant FROM tasks t WHERE t.status = 'queued' AND t.tenant > q.tenant ORDER BY t.tenant LIMIT 1)
    FROM queued_tenants q WHERE q.tenant IS NOT NULL
  ), counted AS (
    SELECT $2::int IS NOT NULL
        OR EXISTS (SELECT 1 FROM jsonb_each($3::jsonb) c WHERE c.value <> 'null'::jsonb)
        OR (SELECT count(*) FROM queued_tenants WHERE tenant IS NOT NULL) > 1 AS needed
  ), running AS (
    SELECT tenant, count(*)::int AS n FROM tasks WHERE status = 'running' AND (SELECT needed FROM counted) GROUP BY tenant
  ), candidates AS (
    SELECT q.tenant, COALESCE(r.n, 0) AS running, h.rank, h.created_at
    FROM queued_tenants q
    LEFT JOIN running r ON r.tenant = q.tenant
    CROSS JOIN LATERAL (
      SELECT ${RANK} AS rank, created_at FROM tasks
      WHERE tenant = q.tenant AND status = 'queued' AND ${DUE} AND ${ALLOWED}
      ORDER BY ${RANK}, created_at, id LIMIT 1
    ) h
    WHERE q.tenant IS NOT NULL
      AND COALESCE(r.n, 0) < COALESCE(CASE WHEN $3::jsonb ? q.tenant THEN ($3::jsonb ->> q.tenant)::int ELSE $2::int END, 2147483647)
  ), pick AS (
    SELECT p.id
    FROM (SELECT * FROM candidates ORDER BY running, rank, created_at, tenant) c
    CROSS JOIN LATERAL (
      SELECT id FROM tasks
      WHERE tenant = c.tenant AND status = 'queued' AND ${DUE} AND ${ALLOWED}
      ORDER BY ${RANK}, created_at, id LIMIT 1
      FOR UPDATE SKIP LOCKED
    ) p
    ORDER BY c.running, c.rank, c.created_at, c.tenant
    LIMIT 1
  )
  UPDATE tasks
  SET fence = fence + 1, attempts = attempts + 1, status = 'running', lease_owner = $1,
      started_at = COALESCE(started_at, clock_timestamp()), updated_at = clock_timestamp(), not_before = NULL
  FROM pick
  WHERE tasks.id = pick.id
  RETURNING tasks.*`;

export const FAIR_CLAIM_LOCK_SQL = `SELECT pg_advisory_xact_lock(${FAIR_CLAIM_LOCK_KEY})`;

/** The task a wake-up for `tenant` would start first, were the tenant alone: $1 tenant. */
export const QUEUED_HEAD_SQL = `
  SELECT id FROM tasks WHERE tenant = $1 AND status = 'queued'
  ORDER BY ${RANK}, created_at, id LIMIT 1`;

/** The claim's parameters after `owner`. */
export function capParams(caps: RunningCaps, exclude: ClaimExclusions = NO_EXCLUSIONS): [number | null, string, string[], string[]] {
  return [caps.default, JSON.stringify(caps.tenants), [...exclude.agents], [...exclude.prompt_versions]];
}

/** Nothing paused: every queued task may be claimed. */
export const NO_EXCLUSIONS: ClaimExclusions = Object.freeze({ agents: [], prompt_versions: [] });

/** True when some tenant has a running cap: claims must then be serialised to count right. */
export function anyCap(caps: RunningCaps): boolean {
  return caps.default !== null || Object.values(caps.tenants).some((n) => n !== null);
}

/** No caps at all: every tenant may run as many tasks as there are planner slots. */
export const NO_CAPS: RunningCaps = Object.freeze({ default: null, tenants: {} });

/** `tenant`'s running cap under `caps`; null: none. */
export function capOf(caps: RunningCaps, tenant: string): number | null {
  const own = caps.tenants[tenant];
  return own !== undefined ? own : caps.default;
}
