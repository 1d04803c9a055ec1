/**
 * A connection lost under a transaction (src/store/pgTaskStore.ts `transaction`, and
 * src/store/migrate.ts): a checked-out client has none of the pool's listeners, so
 * its 'error' event would be unhandled and end the process. The call fails as
 * unavailable instead, the client is discarded, and the store goes on working.
 * Real Postgres: the backend is ended with pg_terminate_backend while the
 * transaction waits on a row lock.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { UnavailableError } from "../../src/errors";
import { openStore, type OpenedStore } from "../../src/store";
import { createTestDatabase, hasService } from "../helpers/services";

const ready = hasService("postgres");

describe.skipIf(!ready)("store - a connection lost under a transaction", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let opened: OpenedStore;
  /** Holds the key in a transaction of its own. */
  let admin: pg.Client;
  /** Watches and ends backends (a transaction keeps one snapshot of pg_stat_activity: not admin). */
  let watcher: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    opened = await openStore({ databaseUrl: db.url, max: 2 });
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    watcher = new pg.Client({ connectionString: db.url });
    await watcher.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await watcher?.end();
    await opened?.close();
    await db?.drop();
  });

  const task = () => ({ id: randomUUID(), agent: "order-router", input: { order_id: "ORD-1" }, priority: "normal" as const, metadata: {}, prompt_version: "pv-1" });

  it("fails the call as unavailable, not the process, and the next call works", async () => {
    const key = `k-${randomUUID()}`;
    // Another transaction holds the key: the keyed create's transaction waits on it.
    await admin.query("BEGIN");
    await admin.query("INSERT INTO idempotency_keys (key, task_id, tenant) VALUES ($1, $2, 'default')", [key, randomUUID()]);
    try {
      const create = opened.store.createTask(task(), key);
      const waiting = await vi.waitFor(
        async () => {
          const { rows } = await watcher.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
          expect(rows).toHaveLength(1);
          return (rows[0] as { pid: number }).pid;
        },
        { timeout: 5_000 },
      );
      await watcher.query("SELECT pg_terminate_backend($1)", [waiting]);
      await expect(create).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      await admin.query("ROLLBACK");
    }
    // The discarded connection is not handed out again.
    const again = await opened.store.createTask(task(), `k-${randomUUID()}`);
    expect(again.created).toBe(true);
  });
});
