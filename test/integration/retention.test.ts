/**
 * What the system of record keeps bounded: idempotency keys past their 24 h window
 * are deleted by the reaper's sweep, a batch at a time, and fresh ones are kept
 * (PGlite always, real Postgres when reachable).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reaper } from "../../src/queue/reaper";
import { storeBackends, type OpenedBackend } from "../helpers/storeBackends";

function retention(name: string, open: () => Promise<OpenedBackend>): void {
  describe(`retention - ${name}`, () => {
    let opened: Awaited<ReturnType<typeof open>>;
    beforeAll(async () => {
      opened = await open();
    }, 60_000);
    afterAll(async () => {
      await opened?.dispose();
    });

    async function submitWithKey(key: string): Promise<string> {
      const r = await opened.store.createTask({ id: randomUUID(), agent: "a", input: "x", priority: "normal", metadata: {}, prompt_version: "v1" }, key);
      return r.task.id;
    }

    it("a sweep deletes expired idempotency keys in batches and keeps fresh ones; a purged key is free for a new task", async () => {
      const old = await Promise.all(Array.from({ length: 5 }, (_, i) => submitWithKey(`old-${i}-${randomUUID()}`)));
      const freshKey = `fresh-${randomUUID()}`;
      const fresh = await submitWithKey(freshKey);
      await opened.pool.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE task_id = ANY($1::uuid[])`, [old]);

      let clock = 0;
      const reaper = new Reaper(
        {
          store: opened.store,
          leases: { held: async (ids) => ids.map(() => true) },
          publish: async () => undefined,
          waiting: async () => 1,
        },
        { queuedAfterMs: 60_000, unleasedSweeps: 2, batch: 2, purgeEveryMs: 60_000, now: () => clock },
      );
      // Full batches: each sweep goes on; the third finds the last one and rests until the interval has passed.
      expect((await reaper.sweep()).purgedKeys).toBe(2);
      expect((await reaper.sweep()).purgedKeys).toBe(2);
      expect((await reaper.sweep()).purgedKeys).toBe(1);
      expect((await reaper.sweep()).purgedKeys).toBe(0);
      const { rows } = await opened.pool.query<{ task_id: string }>(`SELECT task_id FROM idempotency_keys`);
      expect(rows.map((r) => r.task_id)).toEqual([fresh]);
      clock += 60_000;
      expect((await reaper.sweep()).purgedKeys).toBe(0);
      // The fresh key still answers its task.
      expect(await submitWithKey(freshKey)).toBe(fresh);
    });
  });
}

for (const backend of storeBackends({ max: 2 })) {
  describe.skipIf(!backend.ready)(backend.name, () => retention(backend.name, () => backend.open()));
}
