/**
 * Named statements for the store's queries, on Postgres and PGlite: each is parsed and planned
 * once per connection, then only bound and executed. Unnamed, the checkpoint's
 * statement (the task's update and the step's insert in one) costs the server about
 * twice the CPU per call: its parse and plan are most of it (bench/throughput, BENCHMARKS.md).
 *
 * A name is the hash of the statement's text, so the same text has the same name on
 * every connection and in every process. Distinct texts are capped: a statement built
 * with a variable shape beyond the cap goes unnamed, as before.
 *
 * A prepared statement whose result columns change under it (a migration that adds a
 * column to a table a `RETURNING *` reads, during a rolling upgrade) fails with
 * "cached plan must not change result type" before it runs, so nothing was written:
 * `run` sends it once more, unnamed, and every later call is prepared afresh under a
 * new generation of names.
 */
import { createHash } from "node:crypto";
import type pg from "pg";

/** Distinct statement texts named per store; beyond it, unnamed. */
export const MAX_NAMED_STATEMENTS = 512;

/**
 * What Postgres answers when a prepared statement's result type changed since it was prepared. The routine
 * names it whatever the server's language (`lc_messages` translates the message); the message, for a server
 * that does not send the routine.
 */
function isStalePlan(err: unknown): boolean {
  const e = err as { code?: unknown; routine?: unknown; message?: unknown };
  if (e.code !== "0A000") return false;
  return e.routine === "RevalidateCachedQuery" || (typeof e.message === "string" && /cached plan must not change result type/.test(e.message));
}

export class PreparedStatements {
  private readonly names = new Map<string, string>();
  private generation = 0;

  constructor(private readonly max = MAX_NAMED_STATEMENTS) {}

  /** The name `text` runs under, or undefined past the cap. */
  nameOf(text: string): string | undefined {
    let name = this.names.get(text);
    if (name === undefined) {
      if (this.names.size >= this.max) return undefined;
      name = `cf${this.generation}_${createHash("sha1").update(text).digest("hex").slice(0, 20)}`;
      this.names.set(text, name);
    }
    return name;
  }

  /** `text` with `values` on `pool`, named; a stale plan is sent once more unnamed (see the module's comment). */
  async run<R extends pg.QueryResultRow>(pool: pg.Pool, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    const name = this.nameOf(text);
    if (name === undefined) return pool.query<R>(text, values);
    try {
      return await pool.query<R>({ name, text, values });
    } catch (err) {
      if (!isStalePlan(err)) throw err;
      this.renew();
      return pool.query<R>(text, values);
    }
  }

  /** Every statement is prepared again, under new names: the old ones may hold a stale plan on any connection. */
  private renew(): void {
    this.generation++;
    this.names.clear();
  }

  /** Texts named so far (tests). */
  get size(): number {
    return this.names.size;
  }
}
