/**
 * The side-effect ledger (migration 004) and a tool service's own migrations,
 * one contract on PGlite (always) and a real Postgres (a fresh database, dropped
 * afterwards): a start is counted while the outcome is unknown, the first outcome
 * wins, concurrent callers of one key agree, and concurrent starters of one
 * service apply its migrations once.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, type OpenedStore } from "../../src/store";
import { migrateToolService } from "../../src/tools/serviceMigrations";
import { createTestDatabase, hasService, type TestDatabase } from "../helpers/services";

const backends = [
  { name: "pglite", ready: true, open: async () => ({ opened: await openStore({ dataDir: "memory://" }), db: undefined as TestDatabase | undefined }) },
  {
    name: "postgres",
    ready: hasService("postgres"),
    open: async () => {
      const db = await createTestDatabase();
      return { opened: await openStore({ databaseUrl: db.url, max: 6 }), db };
    },
  },
];

for (const backend of backends) {
  describe.skipIf(!backend.ready)(`tool ledger - ${backend.name}`, () => {
    let opened: OpenedStore;
    let db: TestDatabase | undefined;
    const key = () => `${randomUUID()}:4`;

    beforeAll(async () => {
      ({ opened, db } = await backend.open());
    });

    afterAll(async () => {
      await opened?.close();
      await db?.drop();
    });

    it("ledger - each start is counted while the outcome is unknown; once recorded, starts stop and the outcome answers", async () => {
      const { store } = opened;
      const k = key();
      expect(await store.toolCallStarted(k, "task-a", 4, "charge")).toEqual({ starts: 1, outcome: null });
      expect(await store.toolCallStarted(k, "task-a", 4, "charge")).toEqual({ starts: 2, outcome: null });
      expect(await store.toolCallFinished(k, { ok: false, output: { error: "card declined" } })).toEqual({ ok: false, output: { error: "card declined" } });
      expect(await store.toolCallStarted(k, "task-a", 4, "charge")).toEqual({ starts: 2, outcome: { ok: false, output: { error: "card declined" } } });
      expect(await store.getToolCall(k)).toEqual({ starts: 2, outcome: { ok: false, output: { error: "card declined" } } });
      expect(await store.getToolCall(key())).toBeNull();
    });

    it("ledger - concurrent starts of one key count each once; concurrent outcomes agree on the first", async () => {
      const { store } = opened;
      const k = key();
      const starts = await Promise.all(Array.from({ length: 5 }, () => store.toolCallStarted(k, "task-b", 4, "charge")));
      expect(starts.map((s) => s.starts).sort()).toEqual([1, 2, 3, 4, 5]);
      const outcomes = await Promise.all([1, 2, 3].map((n) => store.toolCallFinished(k, { ok: true, output: { n } })));
      expect(new Set(outcomes.map((o) => JSON.stringify(o))).size).toBe(1);
    });

    it("ledger - an outcome without a start is refused (the executor always records the start first)", async () => {
      await expect(opened.store.toolCallFinished(key(), { ok: true, output: null })).rejects.toThrow(/finished without being started/);
    });

    it("service migrations - replicas starting together apply a service's files once, in its own history", async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-svc-migrations-"));
      try {
        fs.writeFileSync(path.join(dir, "001_parcels.sql"), "CREATE TABLE parcels (id text PRIMARY KEY);");
        fs.writeFileSync(path.join(dir, "002_parcels_weight.sql"), "ALTER TABLE parcels ADD COLUMN weight_g integer;");
        const reports = await Promise.all([1, 2, 3].map(() => migrateToolService(opened.pool, "parcels", dir)));
        expect(reports.flatMap((r) => r.applied).sort()).toEqual(["001_parcels.sql", "002_parcels_weight.sql"]);
        const { rows } = await opened.pool.query<{ name: string }>("SELECT name FROM tool_service_migrations WHERE namespace = 'parcels' ORDER BY name");
        expect(rows.map((r) => r.name)).toEqual(["001_parcels.sql", "002_parcels_weight.sql"]);
        await opened.pool.query("INSERT INTO parcels (id, weight_g) VALUES ('p1', 250)");
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
