/**
 * The connection pg talks to PGlite through (src/store/pgliteConnection.ts): a query's
 * protocol messages go to PGlite in one trip, and everything pg does on a socket's
 * connection still works over it — errors in the middle of a run of messages, a value
 * that fails to bind, a transaction rolled back, rows read in pages, named statements.
 */
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
