/**
 * A tool service's own schema (`clawfleet: { migrations: <folder> }` in its
 * schema), applied in the node's database when the service starts. The files
 * follow Clawfleet's rules and are read by its loader (src/store/migrate.ts:
 * `NNN_lower_snake.sql`, applied in order, each once, never edited once applied),
 * under the same advisory lock, so replicas starting together queue and the
 * later ones find nothing to do. Each service keeps its own history
 * (`tool_service_migrations`, by namespace), so a user's `001_orders.sql` never
 * meets Clawfleet's `001_tasks.sql`.
 */
import type pg from "pg";
import { messageOf } from "../errors";
import { isConnectivityError } from "../store/dbErrors";
import { loadMigrations, MIGRATION_LOCK_KEY, MigrationError, type MigrateReport } from "../store/migrate";

const HISTORY = `
  CREATE TABLE IF NOT EXISTS tool_service_migrations (
    namespace  text NOT NULL,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
  )`;

/** Applies the pending files of `dir` for `namespace` (the service's name). */
export async function migrateToolService(pool: pg.Pool, namespace: string, dir: string): Promise<MigrateReport> {
  const migrations = loadMigrations(dir);
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    await client.query(HISTORY);
    const { rows } = await client.query<{ name: string; checksum: string }>("SELECT name, checksum FROM tool_service_migrations WHERE namespace = $1", [namespace]);
    const applied = new Map(rows.map((r) => [r.name, r.checksum]));
    const edited = migrations.find((m) => applied.has(m.name) && applied.get(m.name) !== m.checksum);
    if (edited) {
      throw new MigrationError(`${namespace}: migration ${edited.name} changed after it was applied: never edit an applied migration, append a new one`, edited.name);
    }
    const done: string[] = [];
    for (const m of migrations.filter((x) => !applied.has(x.name))) {
      try {
        await client.query("BEGIN");
        await client.query(m.sql);
        await client.query("INSERT INTO tool_service_migrations (namespace, name, checksum) VALUES ($1, $2, $3)", [namespace, m.name, m.checksum]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => (broken = true));
        if (isConnectivityError(err)) throw err;
        throw new MigrationError(`${namespace}: migration ${m.name} failed and was rolled back: ${messageOf(err)}`, m.name);
      }
      done.push(m.name);
    }
    return { applied: done };
  } catch (err) {
    if (isConnectivityError(err)) broken = true;
    throw err;
  } finally {
    if (!broken) await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).catch(() => (broken = true));
    // A discarded connection takes its session lock with it.
    client.release(broken);
  }
}
