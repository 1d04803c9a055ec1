/**
 * The connection pg talks to PGlite through (src/store/pgliteConnection.ts): a query's
 * protocol messages go to PGlite in one trip, and everything pg does on a socket's
 * connection still works over it — errors in the middle of a run of messages, a value
 * that fails to bind, a transaction rolled back, rows read in pages, named statements.
 * And the embedded store over it: its statements named and its concurrent checkpoints
 * committed together, as on Postgres, also after the pool replaced a failed client.
 */
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NewStep, Usage } from "../../src/contracts";
import { openStore, type OpenedStore } from "../../src/store/pgTaskStore";
import { createPool } from "../../src/store/pool";
import { PgliteConnection } from "../../src/store/pgliteConnection";

let lite: PGlite;
let trips = 0;
let client: pg.Client;

beforeAll(async () => {
  lite = new PGlite("memory://");
  await lite.waitReady;
  const counted = {
    waitReady: lite.waitReady,
    execProtocolStream: (message: Uint8Array, options: { throwOnError: boolean }) => {
      trips++;
      return lite.execProtocolStream(message, options);
    },
  };
  client = new pg.Client({ connection: new PgliteConnection(counted) } as unknown as pg.ClientConfig);
  await client.connect();
  await client.query("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)");
});

afterAll(async () => {
  await client.end();
  await lite.close();
});

async function tripsOf(run: () => Promise<unknown>): Promise<number> {
  const before = trips;
  await run();
  return trips - before;
}

describe("the PGlite connection", () => {
  it("sends a query's messages in one trip: parse, bind, describe, execute and sync, and a named statement's bind onwards", async () => {
    const insert = (id: number) => client.query({ name: "ins", text: "INSERT INTO t (id, v) VALUES ($1, $2) RETURNING *", values: [id, `v${id}`] });
    expect(await tripsOf(() => insert(1))).toBe(1);
    expect(await tripsOf(() => insert(2))).toBe(1);
    expect(await tripsOf(() => client.query("SELECT $1::int AS n", [7]))).toBe(1);
    expect((await insert(3)).rows).toEqual([{ id: 3, v: "v3" }]);
    expect((await client.query("SELECT count(*)::int AS n FROM t")).rows).toEqual([{ n: 3 }]);
  });

  it("an error in the middle of a run fails that query alone: the next one on the connection works", async () => {
    await expect(client.query({ name: "ins", text: "INSERT INTO t (id, v) VALUES ($1, $2) RETURNING *", values: [1, "again"] })).rejects.toMatchObject({ code: "23505" });
    await expect(client.query("SELECT $1::int / 0 AS n", [1])).rejects.toMatchObject({ code: "22012" });
    expect((await client.query("SELECT v FROM t WHERE id = $1", [1])).rows).toEqual([{ v: "v1" }]);
  });

  it("a value that fails to bind is refused before it is sent, and the connection goes on", async () => {
    const bad = {
      toPostgres: () => {
        throw new Error("no value");
      },
    };
    await expect(client.query("SELECT $1::text AS v", [bad])).rejects.toThrow("no value");
    expect((await client.query("SELECT $1::text AS v", ["ok"])).rows).toEqual([{ v: "ok" }]);
  });

  it("a transaction that fails is rolled back whole", async () => {
    await client.query("BEGIN");
    await client.query("INSERT INTO t (id, v) VALUES ($1, $2)", [10, "in tx"]);
    await expect(client.query("INSERT INTO t (id, v) VALUES ($1, $2)", [10, "twice"])).rejects.toMatchObject({ code: "23505" });
    await expect(client.query("SELECT 1")).rejects.toMatchObject({ code: "25P02" });
    await client.query("ROLLBACK");
    expect((await client.query("SELECT count(*)::int AS n FROM t WHERE id = 10")).rows).toEqual([{ n: 0 }]);
  });

  it("reads rows in pages of a portal (execute with a row count, then flush)", async () => {
    const rows: unknown[] = [];
    const query = new pg.Query({ text: "SELECT n FROM generate_series(1, 7) AS n", rows: 3 } as pg.QueryConfig & { rows: number });
    await new Promise<void>((resolve, reject) => {
      query.on("row", (row: unknown) => rows.push(row));
      query.on("end", () => resolve());
      query.on("error", reject);
      void client.query(query);
    });
    expect(rows).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => ({ n })));
    expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
  });

  it("through the embedded pool: a value that fails to bind fails its own query, not the next one", async () => {
    const store = await createPool({ dataDir: "memory://" });
    try {
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      await expect(store.pool.query("SELECT $1::jsonb AS v", [circular])).rejects.toThrow(/circular/i);
      expect((await store.pool.query("SELECT $1::jsonb AS v", [{ ok: true }])).rows).toEqual([{ v: { ok: true } }]);
    } finally {
      await store.close();
    }
  });
});

describe("several connections to one PGlite", () => {
  it("never overlap their trips: each query gets its own answer", async () => {
    const clients = Array.from({ length: 3 }, () => new pg.Client({ connection: new PgliteConnection(lite) } as unknown as pg.ClientConfig));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const asked = Array.from({ length: 60 }, (_, i) => ({ i, c: clients[i % clients.length] as pg.Client }));
      const answers = await Promise.all(asked.map(({ i, c }) => c.query<{ n: number; s: string }>("SELECT $1::int AS n, repeat('x', $1::int) AS s", [i])));
      expect(answers.map((r) => r.rows)).toEqual(asked.map(({ i }) => [{ n: i, s: "x".repeat(i) }]));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it("a client ended with a query on its way settles that query, and ends", async () => {
    const c = new pg.Client({ connection: new PgliteConnection(lite) } as unknown as pg.ClientConfig);
    await c.connect();
    const asked = c.query("SELECT 1 AS one");
    const outcome = asked.then(
      () => "answered",
      (err: unknown) => (err as Error).message,
    );
    await c.end();
    expect(await outcome).toMatch(/answered|Connection terminated/);
    expect((await client.query("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
  });
});

describe("the embedded store on PGlite", () => {
  let opened: OpenedStore;
  /** The texts of the statements that inserted steps, as sent: a text, or a named statement's config. */
  let stepStatements: string[] = [];

  beforeAll(async () => {
    opened = await openStore({ dataDir: "memory://" });
    const query = opened.pool.query.bind(opened.pool) as (...args: unknown[]) => unknown;
    opened.pool.query = ((...args: unknown[]): unknown => {
      const first = args[0];
      const text = typeof first === "string" ? first : (first as { text?: unknown } | undefined)?.text;
      if (typeof text === "string" && /INSERT INTO steps/.test(text)) stepStatements.push(text);
      return query(...args);
    }) as typeof opened.pool.query;
  });
  afterAll(async () => {
    await opened?.close();
  });

  const usage = (n: number): Usage => ({ input_tokens: n, output_tokens: 2 * n, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: n / 1000 });
  const toolStep = (step: number): NewStep => ({
    step,
    kind: "tool",
    data: { tool: "check_inventory", tool_use_id: `tu_${step}`, input: { step }, output: { ok: step }, ok: true, duration_ms: 1, idempotency_key: `k:${step}` },
  });
  async function runningTask(): Promise<{ id: string; fence: number }> {
    const id = randomUUID();
    await opened.store.createTask({ id, agent: "order-router", input: { order_id: "ORD-1" }, priority: "normal", metadata: {}, prompt_version: "pv-1" });
    const claimed = await opened.store.claimTask(id, "test-owner");
    if (!claimed) throw new Error("not claimed");
    return { id, fence: claimed.fence };
  }
  const named = async () => (await opened.pool.query<{ statement: string }>("SELECT statement FROM pg_prepared_statements")).rows.map((r) => r.statement);

  it("names its statements: PGlite parses and plans each once", async () => {
    const t = await runningTask();
    await opened.store.appendStep(t.id, t.fence, toolStep(1), usage(1));
    expect((await named()).some((s) => /UPDATE tasks/.test(s))).toBe(true);
  });

  it("commits the checkpoints of concurrent tasks together, each task's usage added once per checkpoint", async () => {
    const tasks = await Promise.all(Array.from({ length: 12 }, () => runningTask()));
    stepStatements = [];
    await Promise.all(tasks.flatMap((t, i) => [opened.store.appendStep(t.id, t.fence, toolStep(1), usage(i + 1)), opened.store.appendStep(t.id, t.fence, toolStep(2), usage(100))]));
    expect(stepStatements.length).toBeLessThan(8);
    expect(stepStatements.some((s) => /unnest/.test(s))).toBe(true);
    for (const [i, t] of tasks.entries()) {
      expect((await opened.store.listSteps(t.id)).map((s) => s.step)).toEqual([1, 2]);
      expect((await opened.store.getTask(t.id))?.usage.input_tokens).toBe(i + 1 + 100);
    }
  });

  it("after the pool replaced a failed client, the named statements are prepared again and work", async () => {
    const before = await runningTask();
    await opened.store.appendStep(before.id, before.fence, toolStep(1), usage(1));
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    // A query that fails in pg before it is sent: pg-pool discards the client, and its next one starts with DISCARD ALL.
    await expect(opened.pool.query("SELECT $1::jsonb AS v", [circular])).rejects.toThrow(/circular/i);
    const t = await runningTask();
    await opened.store.appendStep(t.id, t.fence, toolStep(1), usage(3));
    await opened.store.appendStep(t.id, t.fence, toolStep(2), usage(4));
    expect((await opened.store.listSteps(t.id)).map((s) => s.step)).toEqual([1, 2]);
    expect((await opened.store.getTask(t.id))?.usage.input_tokens).toBe(7);
    expect((await named()).some((s) => /UPDATE tasks/.test(s))).toBe(true);
  });
});
