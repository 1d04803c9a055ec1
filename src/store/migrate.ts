/**
 * Applies the numbered SQL files of `src/store/migrations/` in name order, each
 * once, each in its own transaction, recorded in `schema_migrations` with a
 * checksum. Rule: never edit an applied migration, append a new file, and never
 * reuse a number: 002 is retired (its table belonged to a tool service, which now
 * creates it with migrations of its own and adopts it where it exists; the
 * history row of a database that applied it stays, ignored like any row whose
 * file is gone).
 *
 * Where the files are: `tsc` copies no `.sql`, and compiled code runs from
 * `dist/src/store/`, so the folder is found from the project root (the folder
 * with package.json and prompts/) as `<root>/src/store/migrations` in both
 * layouts. A container image must therefore ship `src/store/migrations/`
 * next to `dist/`.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type pg from "pg";
import { messageOf } from "../errors";
import { projectRoot } from "../paths";
import { isConnectivityError, toStoreError } from "./dbErrors";

/**
 * Key of the session advisory lock that serialises concurrent starters (all
 * replicas migrate at start). Any constant works as long as every Clawfleet
 * version uses the same one; this is "Claw" in ASCII.
 */
export const MIGRATION_LOCK_KEY = 0x436c6177;

const FILE_NAME = /^(\d{3,})_[a-z0-9_]+\.sql$/;

export interface Migration {
  name: string;
  sql: string;
  /** sha256 of the file with line endings normalised, so a checkout with CRLF is not "edited". */
  checksum: string;
}

/** A start-up failure of the schema: a tampered, misnamed or failing migration. Not retryable. */
export class MigrationError extends Error {
  constructor(
    message: string,
    public readonly migration: string | undefined,
  ) {
    super(message);
    this.name = "MigrationError";
  }
}

export function migrationsDir(): string {
  return path.join(projectRoot(), "src", "store", "migrations");
}

export function checksumOf(sql: string): string {
  return createHash("sha256").update(sql.replace(/\r\n/g, "\n")).digest("hex");
}

/** The migration files of `dir`, in the order they apply. */
export function loadMigrations(dir: string = migrationsDir()): Migration[] {
  if (!fs.existsSync(dir)) {
    throw new MigrationError(`migrations folder not found at ${dir}: the build must ship src/store/migrations/`, undefined);
  }
  const names = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort();
  const byNumber = new Map<string, string>();
  return names.map((name) => {
    const match = FILE_NAME.exec(name);
    if (!match?.[1]) throw new MigrationError(`migration file ${name} is not named NNN_lower_snake.sql`, name);
    const clash = byNumber.get(match[1]);
    if (clash !== undefined) throw new MigrationError(`migrations ${clash} and ${name} share number ${match[1]}: renumber the newer one`, name);
    byNumber.set(match[1], name);
    const sql = fs.readFileSync(path.join(dir, name), "utf8");
    return { name, sql, checksum: checksumOf(sql) };
  });
}

export interface MigrateOptions {
  /** @default migrationsDir() */
  dir?: string;
  /** The database's redacted address, for error messages. @default "database" */
  target?: string;
}

export interface MigrateReport {
  /** Files applied by this call, in order; empty when the schema was current. */
  applied: string[];
}

/**
 * Brings the schema up to date. Safe to call from many processes at once: they
 * queue on an advisory lock and the later ones find nothing to do. Applied rows
 * whose file is gone are ignored, so an older release can run against a schema
 * a newer one extended during a rolling deploy.
 */
export async function migrate(pool: pg.Pool, opts: MigrateOptions = {}): Promise<MigrateReport> {
  const migrations = loadMigrations(opts.dir);
  const target = opts.target ?? "database";
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw toStoreError(err, "migrate", target);
  }
  let broken = false;
  // Checked out, the client has none of the pool's listeners: a connection lost mid-migration would otherwise
  // be an unhandled 'error' event that ends the process. Its query fails with it; the client is discarded.
  const onError = (): void => {
    broken = true;
  };
  client.on("error", onError);
  try {
    // Waiting for another starter, or a long CREATE INDEX, must not hit the pool's statement timeout.
    await client.query("SET statement_timeout = 0");
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         name       text PRIMARY KEY,
         checksum   text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await client.query<{ name: string; checksum: string }>("SELECT name, checksum FROM schema_migrations");
    const applied = new Map(rows.map((r) => [r.name, r.checksum]));
    for (const m of migrations) {
      const recorded = applied.get(m.name);
      if (recorded !== undefined && recorded !== m.checksum) {
        throw new MigrationError(
          `migration ${m.name} changed after it was applied (checksum ${recorded.slice(0, 12)}… in the database, ` +
            `${m.checksum.slice(0, 12)}… on disk): never edit an applied migration, append a new one`,
          m.name,
        );
      }
    }
    const done: string[] = [];
    for (const m of migrations.filter((x) => !applied.has(x.name))) {
      await client.query("BEGIN");
      try {
        await client.query(m.sql);
        await client.query("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", [m.name, m.checksum]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {
          broken = true;
        });
        if (isConnectivityError(err)) throw err;
        throw Object.assign(new MigrationError(`migration ${m.name} failed and was rolled back: ${messageOf(err)}`, m.name), {
          cause: err,
        });
      }
      done.push(m.name);
    }
    return { applied: done };
  } catch (err) {
    if (isConnectivityError(err)) broken = true;
    if (err instanceof MigrationError) throw err;
    throw toStoreError(err, "migrate", target);
  } finally {
    if (!broken) {
      try {
        await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
        await client.query("RESET statement_timeout");
      } catch {
        broken = true;
      }
    }
    // A discarded connection drops its session lock and settings with it.
    client.removeListener("error", onError);
    client.release(broken);
  }
}
