/**
 * The canary judge's figures (src/rollout/judge.ts) for `PgTaskStore`: per
 * version, over the agent's tasks created since the canary started that have
 * finished, the count, sum and sum of squares of each per-task value, so the
 * judge has means and variances without reading a task row.
 *
 * Tasks are found through tasks_agent_version_created (migration 008), one
 * index range per version; their tool steps through the steps primary key.
 */
import type pg from "pg";
import type { CanaryStats, VersionStats } from "../contracts";
import { num } from "./rows";

interface StatsRow {
  version: string;
  finished: number;
  succeeded: number;
  finished_since_step: number;
  tool_calls: number | string;
  tool_calls_sq: number | string;
  duplicates: number | string;
  duplicates_sq: number | string;
  cost: number | string;
  cost_sq: number | string;
}

type Query = (text: string, values: unknown[]) => Promise<pg.QueryResult<StatsRow>>;

// A duplicate is a tool step whose (tool, input) an earlier step of the same task already had: a task's
// repeats are its tool steps less its distinct (tool, input) pairs (jsonb equality ignores key order).
const SQL = `
  WITH t AS (
    SELECT id, prompt_version, status, cost_usd, created_at FROM tasks
    WHERE agent = $1 AND prompt_version IN ($2, $3) AND created_at >= $4::timestamptz AND status IN ('succeeded', 'failed')
  ), calls AS (
    SELECT s.task_id, count(*)::float8 AS n, (count(*) - count(DISTINCT (s.data->>'tool', s.data->'input')))::float8 AS dup
    FROM steps s JOIN t ON t.id = s.task_id
    WHERE s.kind = 'tool'
    GROUP BY s.task_id
  ), per_task AS (
    SELECT t.prompt_version, t.status, t.created_at, t.cost_usd::float8 AS cost, COALESCE(c.n, 0) AS n, COALESCE(c.dup, 0) AS dup
    FROM t LEFT JOIN calls c ON c.task_id = t.id
  )
  SELECT prompt_version AS version,
    count(*)::int AS finished,
    (count(*) FILTER (WHERE status = 'succeeded'))::int AS succeeded,
    (count(*) FILTER (WHERE created_at >= $5::timestamptz))::int AS finished_since_step,
    sum(n) AS tool_calls, sum(n * n) AS tool_calls_sq,
    sum(dup) AS duplicates, sum(dup * dup) AS duplicates_sq,
    sum(cost) AS cost, sum(cost * cost) AS cost_sq
  FROM per_task GROUP BY prompt_version`;

const none = (version: string): VersionStats => ({
  version,
  finished: 0,
  succeeded: 0,
  finished_since_step: 0,
  tool_calls: { sum: 0, sum_sq: 0 },
  duplicate_tool_calls: { sum: 0, sum_sq: 0 },
  cost_usd: { sum: 0, sum_sq: 0 },
});

const toStats = (r: StatsRow): VersionStats => ({
  version: r.version,
  finished: r.finished,
  succeeded: r.succeeded,
  finished_since_step: r.finished_since_step,
  tool_calls: { sum: num(r.tool_calls), sum_sq: num(r.tool_calls_sq) },
  duplicate_tool_calls: { sum: num(r.duplicates), sum_sq: num(r.duplicates_sq) },
  cost_usd: { sum: num(r.cost), sum_sq: num(r.cost_sq) },
});

/** See the store's method table. `stepSince` defaults to `since`. */
export async function canaryStats(query: Query, agent: string, stableVersion: string, canaryVersion: string, since: string, stepSince?: string): Promise<CanaryStats> {
  const { rows } = await query(SQL, [agent, stableVersion, canaryVersion, since, stepSince ?? since]);
  const of = (version: string) => {
    const row = rows.find((r) => r.version === version);
    return row === undefined ? none(version) : toStats(row);
  };
  return { stable: of(stableVersion), canary: of(canaryVersion) };
}
