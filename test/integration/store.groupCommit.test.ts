/**
 * Checkpoints committed together on Postgres (src/store/checkpointBatch.ts through
 * src/store/groupCommit.ts): the plain checkpoints of concurrent tasks share
 * statements, named or not; each is stored with its usage added once, even two of
 * one task in one batch; one under a stale fence is refused as alone while the
 * others are stored, also when the task's new holder writes the same step in the
 * same batch; a batch caught by a retried checkpoint writes nothing and each of its
 * checkpoints is answered as alone; a task whose row another transaction holds
 * does not hold up the batch; a task's several steps (`appendSteps`) go in one
 * statement, or one by one in order; a checkpoint with ledger marks goes alone; a closing
 * store writes what waits; and `openStore` turns it on for Postgres unless
 * `CLAWFLEET_PG_GROUP_COMMIT=0`.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config";
import { ConfigError, StaleFenceError } from "../../src/errors";
import { DuplicateStepError, openStore } from "../../src/store";
import { PgTaskStore } from "../../src/store/pgTaskStore";
import type { NewStep, Usage } from "../../src/contracts";
import { openRecordingStore, runningTask as runningTaskOf, type RecordingStore } from "../helpers/recordingStore";
import { hasService } from "../helpers/services";

const ready = hasService("postgres");

const usage = (n: number): Usage => ({ input_tokens: n, output_tokens: 2 * n, cache_read_input_tokens: 3 * n, cache_creation_input_tokens: 4 * n, cost_usd: n / 1000 });

const toolStep = (step: number, tag = "ok"): NewStep => ({
  step,
  kind: "tool",
  data: { tool: "check_inventory", tool_use_id: `tu_${step}`, input: { step }, output: { tag }, ok: true, duration_ms: 1, idempotency_key: `k:${step}` },
});

describe.skipIf(!ready)("store - checkpoints committed together on Postgres", () => {
  let db: RecordingStore["db"];
  let pool: pg.Pool;
  let store: PgTaskStore;
  /** The texts of the statements that inserted steps, as sent. */
  let stepStatements: string[];

  beforeAll(async () => {
    stepStatements = [];
    ({ db, pool, store } = await openRecordingStore((text) => stepStatements.push(text)));
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  const runningTask = () => runningTaskOf(store);

  const usageOf = async (id: string) => {
    const t = await store.getTask(id);
    if (!t) throw new Error("no task");
    const u = t.usage;
    return { steps: t.steps, input: u.input_tokens, output: u.output_tokens, cacheRead: u.cache_read_input_tokens, cacheCreation: u.cache_creation_input_tokens, cost: u.cost_usd };
  };

  it("stores the checkpoints of 20 tasks, two of each at once, in far fewer statements, each task's usage added once per checkpoint", async () => {
    const tasks = await Promise.all(Array.from({ length: 20 }, () => runningTask()));
    stepStatements = [];
    // Two checkpoints of each task at once, as the results of two parallel tool calls are.
    await Promise.all(tasks.flatMap((t, i) => [store.appendStep(t.id, t.fence, toolStep(1), usage(i + 1)), store.appendStep(t.id, t.fence, toolStep(2), usage(100))]));
    expect(stepStatements.length).toBeLessThan(10);
    expect(stepStatements.some((s) => /unnest/.test(s))).toBe(true);
    for (const [i, t] of tasks.entries()) {
      expect((await store.listSteps(t.id)).map((s) => [s.step, s.fence, (s.data as { output: unknown }).output])).toEqual([
        [1, t.fence, { tag: "ok" }],
        [2, t.fence, { tag: "ok" }],
      ]);
      const n = i + 1 + 100;
      expect(await usageOf(t.id)).toEqual({ steps: 2, input: n, output: 2 * n, cacheRead: 3 * n, cacheCreation: 4 * n, cost: expect.closeTo(n / 1000, 9) });
    }
  });

  it("refuses a checkpoint under a stale fence in a batch as alone, and stores the others", async () => {
    const tasks = await Promise.all(Array.from({ length: 6 }, () => runningTask()));
    // Not the first: the first checkpoint goes alone at once, the others in the batch.
    const zombie = tasks[3] as { id: string; fence: number };
    // Taken over: the first holder's fence is stale.
    const taken = await store.claimTask(zombie.id, "successor");
    expect(taken?.fence).toBe(zombie.fence + 1);
    stepStatements = [];
    const results = await Promise.allSettled(tasks.map((t) => store.appendStep(t.id, t.fence, toolStep(1), usage(5))));
    expect(stepStatements.filter((s) => /unnest/.test(s))).toHaveLength(1);
    expect(results[3]).toMatchObject({ status: "rejected", reason: expect.any(StaleFenceError) });
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
    expect(await store.listSteps(zombie.id)).toEqual([]);
    expect((await usageOf(zombie.id)).input).toBe(0);
    for (const t of tasks.filter((t) => t !== zombie)) expect((await usageOf(t.id)).input).toBe(5);
  });

  it("refuses the stale holder's checkpoint when the task's new holder writes the same step in the same batch", async () => {
    const [first, task] = await Promise.all([runningTask(), runningTask()]);
    const successor = await store.claimTask(task.id, "successor");
    if (!successor) throw new Error("not claimed");
    stepStatements = [];
    const results = await Promise.allSettled([
      store.appendStep(first.id, first.fence, toolStep(1), usage(1)),
      store.appendStep(task.id, task.fence, toolStep(1, "zombie"), usage(3)),
      store.appendStep(task.id, successor.fence, toolStep(1, "successor"), usage(4)),
    ]);
    expect(stepStatements.filter((s) => /unnest/.test(s))).toHaveLength(1);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(StaleFenceError);
    expect((await store.listSteps(task.id)).map((s) => [s.step, s.fence, (s.data as { output: unknown }).output])).toEqual([[1, successor.fence, { tag: "successor" }]]);
    expect((await usageOf(task.id)).input).toBe(4);
  });

  it("a batch caught by a step already stored writes nothing of itself: a retry passes with its usage counted once, other content fails, the rest are stored", async () => {
    const tasks = await Promise.all(Array.from({ length: 5 }, () => runningTask()));
    const [retried, changed] = tasks as [{ id: string; fence: number }, { id: string; fence: number }];
    await store.appendStep(retried.id, retried.fence, toolStep(1), usage(7));
    await store.appendStep(changed.id, changed.fence, toolStep(1), usage(7));
    stepStatements = [];
    const results = await Promise.allSettled([
      // The first goes alone at once; the others wait, and go as one batch that the two repeats make fail.
      store.appendStep(tasks[4]?.id ?? "", tasks[4]?.fence ?? 0, toolStep(1), usage(1)),
      store.appendStep(retried.id, retried.fence, toolStep(1), usage(7)),
      store.appendStep(changed.id, changed.fence, toolStep(1, "other"), usage(7)),
      store.appendStep(tasks[2]?.id ?? "", tasks[2]?.fence ?? 0, toolStep(1), usage(3)),
      store.appendStep(tasks[3]?.id ?? "", tasks[3]?.fence ?? 0, toolStep(1), usage(3)),
    ]);
    expect(stepStatements.some((s) => /unnest/.test(s))).toBe(true);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(DuplicateStepError);
    expect((await usageOf(retried.id)).input).toBe(7);
    expect((await usageOf(changed.id)).input).toBe(7);
    for (const t of tasks.slice(2)) expect((await store.listSteps(t.id)).map((s) => s.step)).toEqual([1]);
  });

  it("sends a checkpoint with ledger marks alone, with its marks", async () => {
    const tasks = await Promise.all(Array.from({ length: 4 }, () => runningTask()));
    const marked = tasks[0] as { id: string; fence: number };
    stepStatements = [];
    const answers = await Promise.all([
      ...tasks.slice(1).map((t) => store.appendStep(t.id, t.fence, toolStep(1))),
      store.appendStep(marked.id, marked.fence, { step: 1, kind: "llm", data: { model: "claude-sim", tier: "fast", stop_reason: "tool_use", usage: usage(1), content: [], duration_ms: 1 } }, usage(1), [{ idempotencyKey: `${marked.id}:2`, step: 2, tool: "route_order" }]),
    ]);
    expect(answers).toEqual([undefined, undefined, undefined, { marked: true }]);
    // The plain ones: the first alone, the other two in a batch.
    expect(stepStatements.filter((s) => /unnest/.test(s))).toHaveLength(1);
    expect(stepStatements.filter((s) => /INSERT INTO tool_calls/.test(s))).toHaveLength(1);
    expect(stepStatements.filter((s) => /INSERT INTO tool_calls/.test(s) && /unnest/.test(s))).toHaveLength(0);
    expect(await store.getToolCall(`${marked.id}:2`)).toEqual({ starts: 1, outcome: null });
  });

  it("does not hold a batch up for a task whose row another transaction holds: that checkpoint goes alone and waits there", async () => {
    const tasks = await Promise.all(Array.from({ length: 4 }, () => runningTask()));
    const held = tasks[2] as { id: string; fence: number };
    const holder = await pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [held.id]);
      const done: string[] = [];
      const writes = tasks.map((t) => store.appendStep(t.id, t.fence, toolStep(1), usage(2)).then(() => void done.push(t.id)));
      const others = tasks.filter((t) => t !== held).map((t) => t.id);
      await vi.waitFor(() => expect(done.sort()).toEqual([...others].sort()), { timeout: 5_000 });
      expect(done).not.toContain(held.id);
      await holder.query("COMMIT");
      await Promise.all(writes);
      expect(done).toContain(held.id);
    } finally {
      // Whatever happened above, the lock goes with the transaction before the connection goes back.
      await holder.query("ROLLBACK").catch(() => undefined);
      holder.release();
    }
    for (const t of tasks) expect((await usageOf(t.id)).input).toBe(2);
  });

  it("a task's several steps (appendSteps) go in one statement alone, and as one item of a batch with other tasks' checkpoints", async () => {
    const [lone, ...tasks] = await Promise.all(Array.from({ length: 5 }, () => runningTask()));
    if (!lone) throw new Error("no task");
    stepStatements = [];
    await store.appendSteps(lone.id, lone.fence, [{ step: toolStep(1), usageDelta: usage(1) }, { step: toolStep(2) }, { step: toolStep(3), usageDelta: usage(2) }]);
    expect(stepStatements).toHaveLength(1);
    expect((await store.listSteps(lone.id)).map((s) => s.step)).toEqual([1, 2, 3]);
    expect(await usageOf(lone.id)).toMatchObject({ steps: 3, input: 3 });

    stepStatements = [];
    // The first goes alone at once; the others, two steps of each, wait for it and go in one batch.
    await Promise.all(tasks.map((t) => store.appendSteps(t.id, t.fence, [{ step: toolStep(1), usageDelta: usage(1) }, { step: toolStep(2), usageDelta: usage(1) }])));
    expect(stepStatements).toHaveLength(2);
    for (const t of tasks) expect(await usageOf(t.id)).toMatchObject({ steps: 2, input: 2 });
  });

  it("a task's several steps whose row another transaction holds are written one by one, in step order, once it lets go", async () => {
    const held = await runningTask();
    const holder = await pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [held.id]);
      stepStatements = [];
      const write = store.appendSteps(held.id, held.fence, [{ step: toolStep(1), usageDelta: usage(1) }, { step: toolStep(2), usageDelta: usage(1) }, { step: toolStep(3) }]);
      // The statement for all three skips the held row; the first lone write waits on it, the others behind it.
      await vi.waitFor(() => expect(stepStatements).toHaveLength(2), { timeout: 5_000 });
      await holder.query("COMMIT");
      await write;
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      holder.release();
    }
    expect(stepStatements).toHaveLength(4);
    const steps = await store.listSteps(held.id);
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3]);
    // Committed one after another, in step order.
    const written = steps.map((s) => new Date(s.created_at).getTime());
    expect([...written].sort((x, y) => x - y)).toEqual(written);
    expect(await usageOf(held.id)).toMatchObject({ steps: 3, input: 2 });
  });

  it("many rounds of small batches on the wire at once, sharing tasks, all commit with every task's usage whole", async () => {
    const tasks = await Promise.all(Array.from({ length: 12 }, () => runningTask()));
    // Small batches, four on the wire at once: concurrent batches share tasks, met in different orders.
    const small = new PgTaskStore(pool, { groupCommit: { maxBatch: 4, maxInFlight: 4 } });
    for (let round = 0; round < 10; round++) {
      const base = 1 + round * 3;
      // Each task's three checkpoints at once, in an order that differs from task to task.
      await Promise.all(
        tasks.flatMap((t, i) => {
          const steps = [base, base + 1, base + 2];
          if (i % 2 === 1) steps.reverse();
          return steps.map((s) => small.appendStep(t.id, t.fence, toolStep(s), usage(1)));
        }),
      );
    }
    for (const t of tasks) expect(await usageOf(t.id)).toMatchObject({ steps: 30, input: 30 });
  });

  it("a retried checkpoint in the same batch as its first copy passes, its usage counted once", async () => {
    const [first, task, other] = await Promise.all([runningTask(), runningTask(), runningTask()]);
    stepStatements = [];
    await Promise.all([
      store.appendStep(first.id, first.fence, toolStep(1), usage(1)),
      store.appendStep(task.id, task.fence, toolStep(1), usage(6)),
      store.appendStep(other.id, other.fence, toolStep(1), usage(1)),
      store.appendStep(task.id, task.fence, toolStep(1), usage(6)),
    ]);
    expect(stepStatements.filter((s) => /unnest/.test(s))).toHaveLength(1);
    expect(await usageOf(task.id)).toMatchObject({ steps: 1, input: 6 });
    await expect(Promise.all([store.appendStep(first.id, first.fence, toolStep(2)), store.appendStep(task.id, task.fence, toolStep(2)), store.appendStep(task.id, task.fence, toolStep(2, "other"))])).rejects.toBeInstanceOf(DuplicateStepError);
  });

  it("runs as named statements too, one prepared batch statement for every batch", async () => {
    const named = new PgTaskStore(pool, { groupCommit: true, preparedStatements: true });
    const tasks = await Promise.all(Array.from({ length: 8 }, () => runningTask()));
    stepStatements = [];
    for (let step = 1; step <= 8; step++) await Promise.all(tasks.map((t) => named.appendStep(t.id, t.fence, toolStep(step), usage(1))));
    expect(stepStatements.filter((s) => /unnest/.test(s)).length).toBeGreaterThanOrEqual(8);
    for (const t of tasks) expect(await usageOf(t.id)).toMatchObject({ steps: 8, input: 8 });
  });

  it("a closing store writes the checkpoints still waiting for a batch before its pool goes", async () => {
    const own = new pg.Pool({ connectionString: db.url, max: 2 });
    const closing = new PgTaskStore(own, { groupCommit: true, onClose: () => own.end() });
    const tasks = await Promise.all(Array.from({ length: 10 }, () => runningTask()));
    const writes = Promise.allSettled(tasks.map((t) => closing.appendStep(t.id, t.fence, toolStep(1), usage(1))));
    await closing.close();
    expect((await writes).map((r) => r.status)).toEqual(Array.from({ length: 10 }, () => "fulfilled"));
    for (const t of tasks) expect((await usageOf(t.id)).input).toBe(1);
  });

  it("openStore commits together on Postgres unless told not to; the variable is checked", async () => {
    const on = await openStore({ databaseUrl: db.url, max: 1, migrate: false });
    const off = await openStore({ databaseUrl: db.url, max: 1, migrate: false, groupCommit: false });
    try {
      expect((on.store as unknown as { checkpoints: unknown }).checkpoints).toBeDefined();
      expect((off.store as unknown as { checkpoints: unknown }).checkpoints).toBeUndefined();
    } finally {
      await on.close();
      await off.close();
    }
    expect(loadConfig({}).pgGroupCommit).toBe(true);
    expect(loadConfig({ CLAWFLEET_PG_GROUP_COMMIT: "0" }).pgGroupCommit).toBe(false);
    expect(() => loadConfig({ CLAWFLEET_PG_GROUP_COMMIT: "yes" })).toThrow(ConfigError);
  });
});
