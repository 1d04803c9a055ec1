/**
 * A Postgres store that commits checkpoints together, on a database of its own, with a pool that tells
 * `onStepStatement` the text of every statement that inserts steps, as sent (a text, or a named statement's
 * config): a batch's is the one with `unnest`.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { openStore } from "../../src/store";
import { PgTaskStore } from "../../src/store/pgTaskStore";
import { createTestDatabase } from "./services";

export interface RecordingStore {
  db: Awaited<ReturnType<typeof createTestDatabase>>;
  pool: pg.Pool;
  store: PgTaskStore;
}

export async function openRecordingStore(onStepStatement: (text: string) => void): Promise<RecordingStore> {
  const db = await createTestDatabase();
  const opened = await openStore({ databaseUrl: db.url, max: 1 });
  await opened.close();
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  // The database's drop (WITH (FORCE)) may end a backend whose client the pool's `end` has let go of but whose
  // socket is still open: the pool then reports that client's error, which, unheard, would be an uncaught one.
  pool.on("error", () => undefined);
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]): unknown => {
    const first = args[0];
    const text = typeof first === "string" ? first : (first as { text?: unknown } | undefined)?.text;
    if (typeof text === "string" && /INSERT INTO steps/.test(text)) onStepStatement(text);
    return query(...args);
  }) as typeof pool.query;
  return { db, pool, store: new PgTaskStore(pool, { groupCommit: true }) };
}

/** A new order-router task, claimed: its id and fence. */
export async function runningTask(store: PgTaskStore): Promise<{ id: string; fence: number }> {
  const id = randomUUID();
  await store.createTask({ id, agent: "order-router", input: { order_id: "ORD-1" }, priority: "normal", metadata: {}, prompt_version: "pv-1" });
  const claimed = await store.claimTask(id, "test-owner");
  if (!claimed) throw new Error("not claimed");
  return { id, fence: claimed.fence };
}
