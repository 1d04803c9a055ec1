/**
 * Named statements on Postgres (src/store/preparedStatements.ts): the store's calls are
 * prepared once per connection and then only executed; a statement whose result columns
 * changed under it (a migration during a rolling upgrade) is answered all the same, with
 * the new columns, and a write so changed is made once; any other error is not sent
 * again; past the cap of distinct texts, and for a batch's variable text, statements
 * go unnamed; and `CLAWFLEET_PG_PREPARED_STATEMENTS=0` (the store option off) names none.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config";
import { ConfigError } from "../../src/errors";
import { openStore } from "../../src/store";
import { PgTaskStore } from "../../src/store/pgTaskStore";
import { PreparedStatements } from "../../src/store/preparedStatements";
import { createTestDatabase, hasService } from "../helpers/services";

const ready = hasService("postgres");

describe.skipIf(!ready)("store - named statements on Postgres", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    // Migrated once, by a store of its own.
    const opened = await openStore({ databaseUrl: db.url, max: 1 });
    await opened.close();
    // One connection: what it prepared is what pg_prepared_statements shows on it.
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  const prepared = async () => (await pool.query<{ statement: string }>("SELECT statement FROM pg_prepared_statements")).rows.map((r) => r.statement);

  async function runTask(store: PgTaskStore): Promise<string> {
    const id = randomUUID();
    await store.createTask({ id, agent: "order-router", input: { order_id: "ORD-1" }, priority: "normal", metadata: {}, prompt_version: "pv-1" });
    const claimed = await store.claimTask(id, "test-owner");
    if (!claimed) throw new Error("not claimed");
    for (let step = 1; step <= 3; step++) {
      await store.appendStep(id, claimed.fence, {
        step,
        kind: "tool",
        data: { tool: "lookup_order", tool_use_id: `tu_${step}`, input: { step }, output: { ok: true }, ok: true, duration_ms: 1, idempotency_key: `${id}:${step}` },
      });
    }
    await store.finishTask(id, claimed.fence, { status: "succeeded", result: { ok: true } });
    return id;
  }

  it("prepares the checkpoint's statement once on the connection and runs it from there", async () => {
    await pool.query("DEALLOCATE ALL");
    const store = new PgTaskStore(pool, { preparedStatements: true });
    const id = await runTask(store);
    await runTask(store);
    const statements = await prepared();
    // Prepared once, however many checkpoints went through it.
    expect(statements.filter((s) => /INSERT INTO steps/.test(s))).toHaveLength(1);
    expect(statements.some((s) => /UPDATE tasks/.test(s))).toBe(true);
    expect((await store.listSteps(id)).map((s) => s.step)).toEqual([1, 2, 3]);
    expect((await store.getTask(id))?.status).toBe("succeeded");
  });

  it("names none with the option off (a pooler in transaction mode)", async () => {
    await pool.query("DEALLOCATE ALL");
    await runTask(new PgTaskStore(pool, { preparedStatements: false }));
    expect(await prepared()).toEqual([]);
  });

  it("answers a statement whose result columns changed since it was prepared, with the new columns, and prepares it afresh", async () => {
    const table = `t_${randomUUID().replaceAll("-", "")}`;
    await pool.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    await pool.query(`INSERT INTO ${table} VALUES (1)`);
    const statements = new PreparedStatements();
    const text = `SELECT * FROM ${table} WHERE id = $1`;
    expect((await statements.run(pool, text, [1])).rows).toEqual([{ id: 1 }]);
    const first = statements.nameOf(text);
    // A migration elsewhere adds a column: the prepared plan's result type no longer holds.
    await pool.query(`ALTER TABLE ${table} ADD COLUMN note text NOT NULL DEFAULT 'new'`);
    expect((await statements.run(pool, text, [1])).rows).toEqual([{ id: 1, note: "new" }]);
    // Later calls run under a new name, prepared against the new table.
    expect(statements.nameOf(text)).not.toBe(first);
    expect((await statements.run(pool, text, [1])).rows).toEqual([{ id: 1, note: "new" }]);
    const names = (await pool.query<{ name: string }>("SELECT name FROM pg_prepared_statements")).rows.map((r) => r.name);
    expect(names).toContain(statements.nameOf(text));
  });

  it("a write whose table changed under its prepared statement is made once", async () => {
    const table = `w_${randomUUID().replaceAll("-", "")}`;
    await pool.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    const statements = new PreparedStatements();
    const text = `INSERT INTO ${table} (id) VALUES ($1) RETURNING *`;
    expect((await statements.run(pool, text, [1])).rows).toEqual([{ id: 1 }]);
    await pool.query(`ALTER TABLE ${table} ADD COLUMN note text NOT NULL DEFAULT 'new'`);
    expect((await statements.run(pool, text, [2])).rows).toEqual([{ id: 2, note: "new" }]);
    expect((await pool.query(`SELECT id FROM ${table} ORDER BY id`)).rows).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it("any other error of a named statement is the caller's: sent once, not again, and its name is kept", async () => {
    const statements = new PreparedStatements();
    const text = "SELECT 1 / $1::int AS q";
    expect((await statements.run(pool, text, [1])).rows).toEqual([{ q: 1 }]);
    const name = statements.nameOf(text);
    const sent = vi.spyOn(pool, "query");
    try {
      await expect(statements.run(pool, text, [0])).rejects.toMatchObject({ code: "22012" });
      expect(sent).toHaveBeenCalledTimes(1);
    } finally {
      sent.mockRestore();
    }
    expect(statements.nameOf(text)).toBe(name);
  });

  it("goes unnamed past the cap of distinct texts", async () => {
    await pool.query("DEALLOCATE ALL");
    const statements = new PreparedStatements(2);
    for (const n of [1, 2, 3, 4]) expect((await statements.run<{ n: number }>(pool, `SELECT ${n}::int AS n`, [])).rows).toEqual([{ n }]);
    expect(statements.size).toBe(2);
    expect(await prepared()).toHaveLength(2);
  });

  it("openStore names the statements on Postgres unless told not to; a batch of new tasks goes unnamed", async () => {
    for (const preparedStatements of [true, false]) {
      const opened = await openStore({ databaseUrl: db.url, max: 1, submitMax: 1, migrate: false, preparedStatements });
      try {
        const id = randomUUID();
        const task = (n: number) => ({ id: n === 0 ? id : randomUUID(), agent: "order-router", input: { n }, priority: "normal" as const, metadata: {}, prompt_version: "pv-1" });
        await opened.store.createTasks([0, 1, 2].map((n) => ({ task: task(n) })));
        await opened.store.getTask(id);
        const named = (await opened.pool.query<{ statement: string }>("SELECT statement FROM pg_prepared_statements")).rows.map((r) => r.statement);
        if (preparedStatements) expect(named.some((s) => /FROM tasks/.test(s))).toBe(true);
        else expect(named).toEqual([]);
        expect(named.filter((s) => /INSERT INTO tasks/.test(s))).toEqual([]);
      } finally {
        await opened.close();
      }
    }
  });
});

describe("config - CLAWFLEET_PG_PREPARED_STATEMENTS", () => {
  it("is on by default, 0 turns it off, anything else is refused", () => {
    expect(loadConfig({}).pgPreparedStatements).toBe(true);
    expect(loadConfig({ CLAWFLEET_PG_PREPARED_STATEMENTS: "1" }).pgPreparedStatements).toBe(true);
    expect(loadConfig({ CLAWFLEET_PG_PREPARED_STATEMENTS: "0" }).pgPreparedStatements).toBe(false);
    expect(() => loadConfig({ CLAWFLEET_PG_PREPARED_STATEMENTS: "off" })).toThrow(ConfigError);
  });
});
