/**
 * pool queue wait - a burst of store calls larger than the pool (a planner handing 2,000 tasks back at
 * once, through the checkpoint role's pool) waits its turn for a connection: waiting longer than a
 * connection takes to open is no outage. Opening a connection keeps its short limit, so an unreachable
 * database is still reported at once.
 */
import { describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors";
import { createPool } from "../../src/store/pool";
import { hasService, POSTGRES_ADMIN_URL } from "../helpers/services";

const quiet = { warn: () => undefined };

describe.skipIf(!hasService("postgres"))("pool queue wait (Postgres)", () => {
  it("a query waiting for the one busy connection longer than the connect timeout runs once the connection is free", async () => {
    const handle = await createPool({ databaseUrl: POSTGRES_ADMIN_URL, max: 1, connectionTimeoutMs: 200, logger: quiet });
    try {
      const busy = await handle.pool.connect();
      const waiting = handle.pool.query<{ n: number }>("SELECT 1 AS n");
      await new Promise((r) => setTimeout(r, 600));
      busy.release();
      expect((await waiting).rows[0]?.n).toBe(1);
    } finally {
      await handle.close();
    }
  });

  it("a burst of 200 queries through 2 connections all run", async () => {
    const handle = await createPool({ databaseUrl: POSTGRES_ADMIN_URL, max: 2, connectionTimeoutMs: 100, logger: quiet });
    try {
      const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => handle.pool.query<{ n: number }>("SELECT $1::int AS n, pg_sleep(0.005)", [i])));
      expect(answers.map((a) => a.rows[0]?.n)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    } finally {
      await handle.close();
    }
  });
});

describe("pool queue wait - opening a connection keeps its own limit", () => {
  it("a database that does not answer is reported unavailable within the connect timeout, not the queue's", async () => {
    // A listening socket that never speaks: the connection opens at TCP level, Postgres' handshake never comes.
    const net = await import("node:net");
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    const port = (silent.address() as { port: number }).port;
    const started = performance.now();
    try {
      await expect(createPool({ databaseUrl: `postgres://x@127.0.0.1:${port}/x`, connectionTimeoutMs: 300, logger: quiet })).rejects.toBeInstanceOf(UnavailableError);
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      silent.close();
    }
  });
});
