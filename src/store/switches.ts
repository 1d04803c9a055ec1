/**
 * Kill switches for `PgTaskStore` (migration 011): the switches, their history,
 * and the tasks a switch's scope covers. A change is one statement that sets the
 * switch and appends its history row, so no change is stored without its record.
 */
import type pg from "pg";
import { IN_FLIGHT_POLICIES, SWITCH_KINDS, type NewSwitchChange, type ScopeStatus, type Switch, type SwitchChange, type TaskScope } from "../contracts";
import { InternalError } from "../errors";
import { iso, num } from "./rows";

type Query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;

interface SwitchRow {
  kind: string;
  name: string;
  paused: boolean;
  in_flight: string;
  updated_by: string;
  updated_at: Date | string;
  version: string | number;
}

interface ChangeRow {
  id: string | number;
  kind: string;
  name: string;
  paused: boolean;
  in_flight: string;
  changed_by: string;
  changed_at: Date | string;
  version: string | number;
}

const COLUMNS = "kind, name, paused, in_flight, updated_by, updated_at, version";

const SQL = {
  set: `
    WITH sw AS (
      INSERT INTO switches (kind, name, paused, in_flight, updated_by)
      VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (kind, name) DO UPDATE
        SET paused = EXCLUDED.paused, in_flight = EXCLUDED.in_flight, updated_by = EXCLUDED.updated_by,
            updated_at = now(), version = switches.version + 1
      RETURNING ${COLUMNS}
    ), change AS (
      INSERT INTO switch_changes (kind, name, paused, in_flight, changed_by, changed_at, version)
      SELECT kind, name, paused, in_flight, updated_by, updated_at, version FROM sw
    )
    SELECT ${COLUMNS} FROM sw`,
  list: `SELECT ${COLUMNS} FROM switches ORDER BY kind, name`,
  changes: `
    SELECT id, kind, name, paused, in_flight, changed_by, changed_at, version FROM switch_changes
    WHERE ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR name = $3)
    ORDER BY id DESC LIMIT $1`,
  // The scope's tasks in one status, oldest first: the queued ones a lifted switch wakes, the running ones
  // `abort` cancels. Rare operator actions: the status index narrows them, the scope is a filter.
  ofScope: `
    SELECT id FROM tasks
    WHERE status = $1 AND (CASE WHEN $2 = 'agent' THEN agent ELSE prompt_version END) = $3
    ORDER BY created_at, id LIMIT $4`,
} as const;

function oneOf<T extends string>(values: readonly T[], v: string, column: string): T {
  const found = values.find((x) => x === v);
  if (found === undefined) throw new InternalError(`switches.${column} holds ${JSON.stringify(v)}`, { operation: "switches" });
  return found;
}

function toSwitch(row: SwitchRow): Switch {
  return {
    kind: oneOf(SWITCH_KINDS, row.kind, "kind"),
    name: row.name,
    paused: row.paused,
    in_flight: oneOf(IN_FLIGHT_POLICIES, row.in_flight, "in_flight"),
    updated_by: row.updated_by,
    updated_at: iso(row.updated_at),
    version: num(row.version),
  };
}

function toChange(row: ChangeRow): SwitchChange {
  return {
    id: num(row.id),
    kind: oneOf(SWITCH_KINDS, row.kind, "kind"),
    name: row.name,
    paused: row.paused,
    in_flight: oneOf(IN_FLIGHT_POLICIES, row.in_flight, "in_flight"),
    by: row.changed_by,
    at: iso(row.changed_at),
    version: num(row.version),
  };
}

/** See the store's method table (`setSwitch`). */
export async function setSwitch(query: Query, change: NewSwitchChange): Promise<Switch> {
  const { rows } = await query<SwitchRow>(SQL.set, [change.kind, change.name, change.paused, change.in_flight, change.by]);
  const row = rows[0];
  if (row === undefined) throw new InternalError("setSwitch: the database returned no row", { operation: "setSwitch" });
  return toSwitch(row);
}

export async function listSwitches(query: Query): Promise<Switch[]> {
  return (await query<SwitchRow>(SQL.list, [])).rows.map(toSwitch);
}

export async function listSwitchChanges(query: Query, limit: number, scope?: { kind?: string; name?: string }): Promise<SwitchChange[]> {
  return (await query<ChangeRow>(SQL.changes, [limit, scope?.kind ?? null, scope?.name ?? null])).rows.map(toChange);
}

export async function tasksOfScope(query: Query, scope: TaskScope, status: ScopeStatus, limit: number): Promise<string[]> {
  return (await query<{ id: string }>(SQL.ofScope, [status, scope.kind, scope.name, limit])).rows.map((r) => r.id);
}
