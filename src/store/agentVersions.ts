/**
 * The `agent_versions` and `agent_rollouts` tables (migration 008) for
 * `PgTaskStore`. A version row is written once (ON CONFLICT DO NOTHING: the
 * same version is the same text, whoever stores it first); a rollout row
 * changes only through the statements here, each of which bumps `revision`, so
 * a decision made on what a reader saw applies only if nothing moved since.
 */
import type pg from "pg";
import {
  CANARY_STATES,
  VERSION_ORIGINS,
  type AgentVersion,
  type AgentVersionInfo,
  type CanaryState,
  type DecisionResult,
  type FileSyncResult,
  type NewAgentVersion,
  type Rollout,
  type RolloutChange,
  type VersionOrigin,
} from "../contracts";
import { AgentNotFoundError, CanaryNotRunningError, CanaryRunningError, InternalError, ValidationError } from "../errors";
import { iso, isoOrNull, num } from "./rows";

export type Query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;

interface VersionRow {
  agent: string;
  version: string;
  source: string;
  origin: string;
  first_seen: Date | string;
}

interface VersionInfoRow {
  version: string;
  origin: string;
  first_seen: Date | string;
  tasks: string | number;
}

export interface RolloutRow {
  agent: string;
  stable_version: string;
  file_version: string;
  canary_version: string | null;
  canary_weight: number;
  steps: number[] | string;
  step_index: number;
  min_tasks_per_step: number;
  canary_state: string;
  canary_started_at: Date | string | null;
  step_started_at: Date | string | null;
  decided_at: Date | string | null;
  evidence: unknown;
  revision: string | number;
  updated_at: Date | string;
}

const ROLLOUT = `
  agent, stable_version, file_version, canary_version, canary_weight, steps, step_index, min_tasks_per_step,
  canary_state, canary_started_at, step_started_at, decided_at, evidence, revision, updated_at`;

const SQL = {
  putVersion: `
    INSERT INTO agent_versions (agent, version, source, origin) VALUES ($1, $2, $3, $4)
    ON CONFLICT (agent, version) DO NOTHING
    RETURNING version`,
  getVersion: `SELECT agent, version, source, origin, first_seen FROM agent_versions WHERE agent = $1 AND version = $2`,
  // Counted through tasks_agent_version_created (agent, prompt_version, …): an index range per version.
  listVersions: `
    SELECT v.version, v.origin, v.first_seen,
      (SELECT count(*) FROM tasks t WHERE t.agent = v.agent AND t.prompt_version = v.version) AS tasks
    FROM agent_versions v WHERE v.agent = $1
    ORDER BY v.first_seen, v.version`,
  getRollout: `SELECT ${ROLLOUT} FROM agent_rollouts WHERE agent = $1`,
  lockRollout: `SELECT ${ROLLOUT} FROM agent_rollouts WHERE agent = $1 FOR UPDATE`,
  listRollouts: `SELECT ${ROLLOUT} FROM agent_rollouts ORDER BY agent`,
  createRollout: `
    INSERT INTO agent_rollouts (agent, stable_version, file_version) VALUES ($1, $2, $2)
    ON CONFLICT (agent) DO NOTHING
    RETURNING ${ROLLOUT}`,
  // The deploy wins: its version becomes stable, and a canary running against the old one is aborted.
  deploy: `
    UPDATE agent_rollouts SET
      stable_version = $2, file_version = $2,
      canary_state = CASE WHEN canary_state = 'running' THEN 'aborted' ELSE canary_state END,
      canary_weight = 0,
      decided_at = CASE WHEN canary_state = 'running' THEN now() ELSE decided_at END,
      evidence = CASE WHEN canary_state = 'running'
        THEN COALESCE(evidence, '{}'::jsonb) || jsonb_build_object('aborted_by', 'deploy', 'abort_reason', 'deploy')
        ELSE evidence END,
      revision = revision + 1, updated_at = now()
    WHERE agent = $1
    RETURNING ${ROLLOUT}`,
  startCanary: `
    UPDATE agent_rollouts SET
      canary_version = $2, canary_weight = $3, steps = $4::integer[], step_index = 0, min_tasks_per_step = $5,
      canary_state = 'running', canary_started_at = now(), step_started_at = now(), decided_at = NULL,
      evidence = jsonb_build_object('started_by', $6::text),
      revision = revision + 1, updated_at = now()
    WHERE agent = $1
    RETURNING ${ROLLOUT}`,
  abortCanary: `
    UPDATE agent_rollouts SET
      canary_state = 'aborted', canary_weight = 0, decided_at = now(),
      evidence = COALESCE(evidence, '{}'::jsonb) || jsonb_build_object('aborted_by', $2::text),
      revision = revision + 1, updated_at = now()
    WHERE agent = $1 AND canary_state = 'running'
    RETURNING ${ROLLOUT}`,
  // SET reads the row as it was. The weight is 0 whenever the canary is not running; a new step without a
  // weight of its own takes its share from `steps` (1-based in SQL); leaving `running` stamps decided_at.
  decide: `
    UPDATE agent_rollouts SET
      canary_state = COALESCE($3::text, canary_state),
      canary_weight = CASE WHEN COALESCE($3::text, canary_state) <> 'running' THEN 0
        ELSE COALESCE($4::integer, CASE WHEN $5::integer IS NOT NULL THEN steps[$5::integer + 1] END, canary_weight) END,
      step_index = COALESCE($5::integer, step_index),
      step_started_at = CASE WHEN $5::integer IS NOT NULL AND $5::integer <> step_index THEN now() ELSE step_started_at END,
      stable_version = COALESCE($6::text,
        CASE WHEN $3::text = 'promoted' AND canary_state = 'running' AND canary_version IS NOT NULL THEN canary_version ELSE stable_version END),
      decided_at = CASE WHEN canary_state = 'running' AND COALESCE($3::text, canary_state) <> 'running' THEN now() ELSE decided_at END,
      evidence = CASE WHEN $7::jsonb IS NULL THEN evidence ELSE COALESCE(evidence, '{}'::jsonb) || $7::jsonb END,
      revision = revision + 1, updated_at = now()
    WHERE agent = $1 AND revision = $2
    RETURNING ${ROLLOUT}`,
} as const;

function corrupt(what: string, value: unknown): InternalError {
  return new InternalError(`unexpected ${what} in the database`, { value: String(value) });
}

const originOf = (v: string): VersionOrigin => {
  const found = VERSION_ORIGINS.find((o) => o === v);
  if (found === undefined) throw corrupt("version origin", v);
  return found;
};

const stateOf = (v: string): CanaryState => {
  const found = CANARY_STATES.find((s) => s === v);
  if (found === undefined) throw corrupt("canary state", v);
  return found;
};

/** `integer[]` as the driver hands it back: an array, or Postgres' text form where no parser is registered. */
function intArray(v: number[] | string): number[] {
  if (Array.isArray(v)) return v.map((n) => num(n));
  const inner = v.replace(/^\{|\}$/g, "").trim();
  return inner === "" ? [] : inner.split(",").map((n) => num(n.trim()));
}

const objectOrNull = (v: unknown): Record<string, unknown> | null =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;

export function toRollout(row: RolloutRow): Rollout {
  return {
    agent: row.agent,
    stable_version: row.stable_version,
    file_version: row.file_version,
    canary_version: row.canary_version,
    canary_weight: row.canary_weight,
    steps: intArray(row.steps),
    step_index: row.step_index,
    min_tasks_per_step: row.min_tasks_per_step,
    canary_state: stateOf(row.canary_state),
    canary_started_at: isoOrNull(row.canary_started_at),
    step_started_at: isoOrNull(row.step_started_at),
    decided_at: isoOrNull(row.decided_at),
    evidence: objectOrNull(row.evidence),
    revision: num(row.revision),
    updated_at: iso(row.updated_at),
  };
}

const toVersion = (row: VersionRow): AgentVersion => ({
  agent: row.agent,
  version: row.version,
  source: row.source,
  origin: originOf(row.origin),
  first_seen: iso(row.first_seen),
});

const toVersionInfo = (row: VersionInfoRow): AgentVersionInfo => ({
  version: row.version,
  origin: originOf(row.origin),
  first_seen: iso(row.first_seen),
  tasks: num(row.tasks),
});

/** Stores the version unless it is stored already (then nothing changes, its origin included); answers whether it was new. */
export async function putAgentVersion(query: Query, v: NewAgentVersion): Promise<boolean> {
  const { rows } = await query<{ version: string }>(SQL.putVersion, [v.agent, v.version, v.source, v.origin]);
  return rows.length === 1;
}

export async function getAgentVersion(query: Query, agent: string, version: string): Promise<AgentVersion | null> {
  const row = (await query<VersionRow>(SQL.getVersion, [agent, version])).rows[0];
  return row === undefined ? null : toVersion(row);
}

export async function listAgentVersions(query: Query, agent: string): Promise<AgentVersionInfo[]> {
  return (await query<VersionInfoRow>(SQL.listVersions, [agent])).rows.map(toVersionInfo);
}

export async function getRollout(query: Query, agent: string): Promise<Rollout | null> {
  const row = (await query<RolloutRow>(SQL.getRollout, [agent])).rows[0];
  return row === undefined ? null : toRollout(row);
}

export async function listRollouts(query: Query): Promise<Rollout[]> {
  return (await query<RolloutRow>(SQL.listRollouts, [])).rows.map(toRollout);
}

const clientQuery =
  (client: pg.PoolClient): Query =>
  (text, values) =>
    client.query(text, values);

/** The agent's rollout row, locked for the transaction; created (stable = `version`) if it has none yet. */
async function lockedRollout(client: pg.PoolClient, agent: string, version: string): Promise<{ row: RolloutRow; created: boolean }> {
  const existing = (await client.query<RolloutRow>(SQL.lockRollout, [agent])).rows[0];
  if (existing) return { row: existing, created: false };
  const inserted = (await client.query<RolloutRow>(SQL.createRollout, [agent, version])).rows[0];
  if (inserted) return { row: inserted, created: true };
  // Another node created it between our two statements: its row, locked now.
  const raced = (await client.query<RolloutRow>(SQL.lockRollout, [agent])).rows[0];
  if (!raced) throw new InternalError(`the rollout row of ${agent} vanished`, { agent });
  return { row: raced, created: false };
}

/**
 * Start-up (every intake, for every agent of its files): the file version is stored, and the agent gets its
 * rollout row with it as stable. A file version other than the stored `file_version` is a deploy: it
 * becomes stable and a running canary is aborted. The same file version again changes nothing (a restart, or
 * a promoted canary that the files have not caught up with).
 */
export async function syncFileVersion(client: pg.PoolClient, agent: string, version: string, source: string): Promise<FileSyncResult> {
  await putAgentVersion(clientQuery(client), { agent, version, source, origin: "file" });
  const { row, created } = await lockedRollout(client, agent, version);
  if (created || row.file_version === version) return { rollout: toRollout(row), deployed: false, aborted_canary: null };
  const wasRunning = row.canary_state === "running" ? row.canary_version : null;
  const updated = (await client.query<RolloutRow>(SQL.deploy, [agent, version])).rows[0];
  if (!updated) throw new InternalError(`the rollout row of ${agent} vanished`, { agent });
  return { rollout: toRollout(updated), deployed: true, aborted_canary: wasRunning };
}

export async function startCanary(
  client: pg.PoolClient,
  agent: string,
  version: string,
  source: string,
  steps: readonly number[],
  minTasksPerStep: number,
  by: string,
): Promise<Rollout> {
  const current = (await client.query<RolloutRow>(SQL.lockRollout, [agent])).rows[0];
  if (!current) throw new AgentNotFoundError(`unknown agent "${agent}"`, { agent });
  if (current.canary_state === "running") {
    throw new CanaryRunningError(`agent ${agent} already has a canary running (${current.canary_version ?? "?"} at ${current.canary_weight}%); abort it first`, {
      agent,
      version: current.canary_version,
      weight: current.canary_weight,
    });
  }
  if (version === current.stable_version) {
    throw new ValidationError(`the prompt is version ${version}, which is already agent ${agent}'s stable version: nothing to try`, { field: "prompt", version });
  }
  const first = steps[0];
  if (first === undefined) throw new ValidationError("a canary needs at least one step", { field: "steps" });
  await putAgentVersion(clientQuery(client), { agent, version, source, origin: "canary" });
  const row = (await client.query<RolloutRow>(SQL.startCanary, [agent, version, first, [...steps], minTasksPerStep, by])).rows[0];
  if (!row) throw new InternalError(`the rollout row of ${agent} vanished`, { agent });
  return toRollout(row);
}

/** Aborts the running canary: its weight is 0 at once and stays so. */
export async function abortCanary(query: Query, agent: string, by: string): Promise<Rollout> {
  const row = (await query<RolloutRow>(SQL.abortCanary, [agent, by])).rows[0];
  if (row) return toRollout(row);
  const current = await getRollout(query, agent);
  if (!current) throw new AgentNotFoundError(`unknown agent "${agent}"`, { agent });
  throw new CanaryNotRunningError(`agent ${agent} has no canary running (its last one is ${current.canary_state})`, { agent, state: current.canary_state });
}

/** See the store's method table: applied only at `expectedRevision`. */
export async function decideCanary(query: Query, agent: string, expectedRevision: number, change: RolloutChange): Promise<DecisionResult> {
  const values = [
    agent,
    expectedRevision,
    change.canary_state ?? null,
    change.canary_weight ?? null,
    change.step_index ?? null,
    change.stable_version ?? null,
    change.evidence === undefined ? null : JSON.stringify(change.evidence),
  ];
  const row = (await query<RolloutRow>(SQL.decide, values)).rows[0];
  if (row) return { applied: true, rollout: toRollout(row) };
  return { applied: false, rollout: await getRollout(query, agent) };
}
