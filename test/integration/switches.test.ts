/**
 * switches - the store's kill-switch methods (migration 011) on PGlite and a real
 * Postgres: a change sets the switch and appends its history row in one
 * statement, versions count the changes, the history filters by kind and name,
 * a scope's queued and running tasks are listed, and a claim passes over the
 * tasks of the agents and prompt versions it is told to, however many there are.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { NewTask } from "../../src/contracts";
import { CLAIM_NEXT_SQL, NO_CAPS } from "../../src/store/fairClaim";
import { openStore, type OpenedStore } from "../../src/store/pgTaskStore";
import { createTestDatabase, hasService, type TestDatabase } from "../helpers/services";

interface Opened {
  store: OpenedStore;
  db?: TestDatabase;
}

const task = (agent: string, promptVersion = "pv-1", tenant = "default"): NewTask => ({
  id: randomUUID(),
  agent,
  input: {},
  priority: "normal",
  metadata: {},
  prompt_version: promptVersion,
  tenant,
});

function switchesContract(open: () => Promise<Opened>): () => Opened {
  let o: Opened;
  beforeAll(async () => {
    o = await open();
  });
  afterAll(async () => {
    await o?.store.close();
    await o?.db?.drop();
  });
  beforeEach(async () => {
    await o.store.pool.query("DELETE FROM tasks");
    await o.store.pool.query("DELETE FROM switches");
    await o.store.pool.query("DELETE FROM switch_changes");
  });

  /** Queues tasks one after the other, so their creation order is their order here. */
  async function queue(...tasks: NewTask[]): Promise<string[]> {
    const ids: string[] = [];
    for (const t of tasks) {
      ids.push((await o.store.store.createTask(t)).task.id);
      await new Promise((r) => setTimeout(r, 2));
    }
    return ids;
  }

  it("a change sets the switch and appends its history row; the version counts the switch's changes", async () => {
    const s = o.store.store;
    const first = await s.setSwitch({ kind: "agent", name: "order-router", paused: true, in_flight: "abort", by: "key-1" });
    expect(first).toMatchObject({ kind: "agent", name: "order-router", paused: true, in_flight: "abort", updated_by: "key-1", version: 1 });
    const second = await s.setSwitch({ kind: "agent", name: "order-router", paused: false, in_flight: "drain", by: "key-2" });
    expect(second).toMatchObject({ paused: false, in_flight: "drain", updated_by: "key-2", version: 2 });
    expect(Date.parse(second.updated_at)).toBeGreaterThanOrEqual(Date.parse(first.updated_at));
    // The same name under another kind is another switch.
    expect(await s.setSwitch({ kind: "tool", name: "order-router", paused: true, in_flight: "drain", by: "key-1" })).toMatchObject({ version: 1 });

    expect(await s.listSwitches()).toEqual([second, expect.objectContaining({ kind: "tool", name: "order-router", paused: true })]);
    const history = await s.listSwitchChanges(10);
    expect(history.map((h) => [h.kind, h.paused, h.in_flight, h.by, h.version])).toEqual([
      ["tool", true, "drain", "key-1", 1],
      ["agent", false, "drain", "key-2", 2],
      ["agent", true, "abort", "key-1", 1],
    ]);
    expect(history[1]?.at).toBe(second.updated_at);
  });

  it("the history is newest first, filtered by kind and by switch, and limited", async () => {
    const s = o.store.store;
    for (let i = 0; i < 5; i++) await s.setSwitch({ kind: "model", name: "claude-haiku-5-5", paused: i % 2 === 0, in_flight: "drain", by: `key-${i}` });
    await s.setSwitch({ kind: "model", name: "claude-sonnet-5-5", paused: true, in_flight: "drain", by: "key-x" });
    await s.setSwitch({ kind: "prompt", name: "0123456789ab", paused: true, in_flight: "drain", by: "key-y" });
    expect((await s.listSwitchChanges(3, { kind: "model", name: "claude-haiku-5-5" })).map((h) => [h.by, h.version])).toEqual([
      ["key-4", 5],
      ["key-3", 4],
      ["key-2", 3],
    ]);
    expect((await s.listSwitchChanges(100, { kind: "model" })).map((h) => h.name)).toEqual(["claude-sonnet-5-5", ...Array(5).fill("claude-haiku-5-5")]);
    expect(await s.listSwitchChanges(100)).toHaveLength(7);
    expect(await s.listSwitchChanges(100, { kind: "agent" })).toEqual([]);
  });

  it("the table refuses a kind or an in-flight policy it does not know", async () => {
    await expect(o.store.pool.query("INSERT INTO switches (kind, name, paused, in_flight, updated_by) VALUES ('planet', 'mars', true, 'drain', 'k')")).rejects.toThrow();
    await expect(o.store.pool.query("INSERT INTO switches (kind, name, paused, in_flight, updated_by) VALUES ('tool', 'x', true, 'later', 'k')")).rejects.toThrow();
  });

  it("lists a scope's queued and running tasks, oldest first, by agent or by prompt version", async () => {
    const s = o.store.store;
    const [a1, a2, a3, b1] = await queue(task("alpha", "v1"), task("alpha", "v2"), task("alpha", "v1"), task("beta", "v1"));
    expect(await s.claimTask(a2 as string, "planner-a")).not.toBeNull();
    expect(await s.tasksOfScope({ kind: "agent", name: "alpha" }, "queued", 100)).toEqual([a1, a3]);
    expect(await s.tasksOfScope({ kind: "agent", name: "alpha" }, "running", 100)).toEqual([a2]);
    expect(await s.tasksOfScope({ kind: "prompt", name: "v1" }, "queued", 100)).toEqual([a1, a3, b1]);
    expect(await s.tasksOfScope({ kind: "prompt", name: "v1" }, "queued", 2)).toEqual([a1, a3]);
    expect(await s.tasksOfScope({ kind: "agent", name: "gamma" }, "queued", 100)).toEqual([]);
  });

  it("a claim passes over the excluded agents' and prompt versions' tasks, which stay queued, and takes the rest fairly", async () => {
    const s = o.store.store;
    const [pausedA, pausedV, free1, free2] = await queue(task("alpha", "v1", "t1"), task("beta", "v-paused", "t2"), task("beta", "v1", "t2"), task("gamma", "v1", "t1"));
    const exclude = { agents: ["alpha"], prompt_versions: ["v-paused"] };
    const claimed = [await s.claimNext("planner-a", NO_CAPS, exclude), await s.claimNext("planner-a", NO_CAPS, exclude)].map((c) => c?.task.id);
    expect(claimed.sort()).toEqual([free1, free2].sort());
    expect(await s.claimNext("planner-a", NO_CAPS, exclude)).toBeNull();
    expect((await s.getTask(pausedA as string))?.status).toBe("queued");
    expect((await s.getTask(pausedV as string))?.status).toBe("queued");
    // Under a cap too (the serialised claim), and with nothing excluded the held ones are taken.
    expect(await s.claimNext("planner-a", { default: 5, tenants: {} }, exclude)).toBeNull();
    expect((await s.claimNext("planner-a", NO_CAPS, { agents: [], prompt_versions: [] }))?.task.id).toBe(pausedA);
    expect((await s.claimNext("planner-a", NO_CAPS))?.task.id).toBe(pausedV);
  });

  it("a tenant whose head is paused still gets its next task claimed, ahead of a later tenant's", async () => {
    const s = o.store.store;
    const [, , next] = await queue(task("alpha", "v1", "t1"), task("alpha", "v1", "t1"), task("beta", "v1", "t1"), task("beta", "v1", "t2"));
    expect((await s.claimNext("planner-a", NO_CAPS, { agents: ["alpha"], prompt_versions: [] }))?.task.id).toBe(next);
  });

  return () => o;
}

describe("switches - store on pglite", () => {
  switchesContract(async () => ({ store: await openStore({ dataDir: "memory://" }) }));
});

describe.skipIf(!hasService("postgres"))("switches - store on postgres", () => {
  const get = switchesContract(async () => {
    const db = await createTestDatabase();
    return { store: await openStore({ databaseUrl: db.url, max: 12 }), db };
  });

  it("concurrent claimers with an exclusion list take distinct tasks, none of them excluded", async () => {
    const o = get();
    const tasks = Array.from({ length: 40 }, (_, i) => task(i % 4 === 0 ? "alpha" : "beta", i % 5 === 0 ? "v-paused" : "v1", i % 2 === 0 ? "t1" : "t2"));
    for (const t of tasks) await o.store.store.createTask(t);
    const exclude = { agents: ["alpha"], prompt_versions: ["v-paused"] };
    const allowed = tasks.filter((t) => t.agent !== "alpha" && t.prompt_version !== "v-paused").map((t) => t.id);
    const claims = await Promise.all(Array.from({ length: 50 }, (_, i) => o.store.store.claimNext(`planner-${i}`, NO_CAPS, exclude)));
    const ids = claims.flatMap((c) => (c ? [c.task.id] : []));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort()).toEqual(allowed.sort());
  });

  it("walks the queued-head index past an excluded agent's 10,000-task backlog, among 50,000 finished tasks, to the task behind it", async () => {
    const o = get();
    await o.store.pool.query(`
      INSERT INTO tasks (id, agent, input, priority, prompt_version, tenant, status, created_at)
      SELECT gen_random_uuid(), 'beta', '{}'::jsonb, 'normal', 'pv', 'tenant-a', 'succeeded', now() - g * interval '1 ms'
      FROM generate_series(1, 50000) g`);
    await o.store.pool.query(`
      INSERT INTO tasks (id, agent, input, priority, prompt_version, tenant, created_at)
      SELECT gen_random_uuid(), 'alpha', '{}'::jsonb, 'normal', 'pv', 'tenant-a', now() - g * interval '1 ms'
      FROM generate_series(1, 10000) g`);
    await o.store.store.createTask(task("beta", "pv", "tenant-a"));
    await o.store.pool.query("ANALYZE tasks");
    const { rows } = await o.store.pool.query<{ "QUERY PLAN": string }>(`EXPLAIN ${CLAIM_NEXT_SQL}`, ["planner-a", null, "{}", ["alpha"], []]);
    const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
    expect(plan).toContain("tasks_queued_head_idx");
    expect(plan).not.toMatch(/Seq Scan on tasks/);
    expect((await o.store.store.claimNext("planner-a", NO_CAPS, { agents: ["alpha"], prompt_versions: [] }))?.task.agent).toBe("beta");
  });
});
