/**
 * A checkpoint's update of its task row changes no indexed column (migration 016), so Postgres
 * writes it as a heap-only (HOT) update: no index of `tasks` gets an entry for it. Checked on the
 * page itself (pageinspect): the row's live version carries the heap-only flag after a
 * checkpoint of every form (one row, with ledger marks, a model turn with its calls' results,
 * a batch of concurrent tasks), and not after a claim, which changes the indexed `status`.
 * `updated_at`, the reaper's order, moves only once it is 5 s old.
 */
import type pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { emptyUsage, type NewStep, type Usage } from "../../src/contracts";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { openRecordingStore, runningTask as runningTaskOf, type RecordingStore } from "../helpers/recordingStore";
import { hasService } from "../helpers/services";

const ready = hasService("postgres");

/** `HEAP_ONLY_TUPLE` in a tuple's `t_infomask2` (PostgreSQL's htup_details.h). */
const HEAP_ONLY_TUPLE = 0x8000;

const usage = (n: number): Usage => ({ ...emptyUsage(), input_tokens: n, output_tokens: 2 * n, cost_usd: n / 1000 });

const llmStep = (step: number): NewStep => ({
  kind: "llm",
  step,
  data: { model: "claude-sim", tier: "fast", stop_reason: "tool_use", usage: usage(10), content: [{ type: "text", text: `step ${step}` }], duration_ms: 2 },
});

const toolStep = (step: number): NewStep => ({
  kind: "tool",
  step,
  data: { tool: "check_inventory", tool_use_id: `tu_${step}`, input: { step }, output: { ok: true }, ok: true, duration_ms: 1, idempotency_key: `k:${step}` },
});

describe.skipIf(!ready)("store - a checkpoint is a heap-only update of its task row on Postgres", () => {
  /** The texts of the statements that inserted steps, as sent. */
  const stepStatements: string[] = [];
  let opened: RecordingStore;
  let pool: pg.Pool;
  let store: PgTaskStore;

  beforeAll(async () => {
    opened = await openRecordingStore((text) => stepStatements.push(text));
    ({ pool, store } = opened);
    // Reading a page takes a superuser: the test databases' default role is one (testkit/scratch.ts).
    const { rows } = await pool.query<{ su: boolean }>("SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user");
    if (rows[0]?.su !== true) throw new Error("these tests read a page with pageinspect, which needs a superuser: CLAWFLEET_TEST_POSTGRES_URL's role is not one");
    await pool.query("CREATE EXTENSION IF NOT EXISTS pageinspect");
  });
  // Each test on an empty table: its rows' versions all fit on the first page, whatever the tests before left.
  beforeEach(async () => {
    await pool.query("TRUNCATE tasks, steps, tool_calls CASCADE");
  });
  afterAll(async () => {
    await pool?.end();
    await opened?.db.drop();
  });

  const runningTask = () => runningTaskOf(store);

  /** Whether the task row's live version, as it lies on its page, is a heap-only tuple. */
  async function heapOnly(id: string): Promise<boolean> {
    const { rows } = await pool.query<{ infomask2: number }>(
      `WITH v AS (SELECT (ctid::text::point)[0]::int AS page, (ctid::text::point)[1]::int AS item FROM tasks WHERE id = $1)
       SELECT h.t_infomask2 AS infomask2 FROM v, heap_page_items(get_raw_page('tasks', v.page)) h WHERE h.lp = v.item`,
      [id],
    );
    if (rows.length !== 1) throw new Error(`task ${id}: ${rows.length} live versions found`);
    return ((rows[0]?.infomask2 ?? 0) & HEAP_ONLY_TUPLE) !== 0;
  }

  /** The task's `updated_at`, in ms since the epoch (to the microsecond). */
  async function updatedAt(id: string): Promise<number> {
    const { rows } = await pool.query<{ ms: string }>("SELECT (extract(epoch FROM updated_at) * 1000)::text AS ms FROM tasks WHERE id = $1", [id]);
    return Number(rows[0]?.ms);
  }

  it("a claim is not heap-only (it changes the indexed status); each plain checkpoint after it is, with its usage added", async () => {
    const t = await runningTask();
    expect(await heapOnly(t.id)).toBe(false);
    await store.appendStep(t.id, t.fence, llmStep(1), usage(3));
    expect(await heapOnly(t.id)).toBe(true);
    await store.appendStep(t.id, t.fence, toolStep(2));
    expect(await heapOnly(t.id)).toBe(true);
    await store.appendStep(t.id, t.fence, llmStep(3), usage(4));
    expect(await heapOnly(t.id)).toBe(true);
    const task = await store.getTask(t.id);
    expect([task?.steps, task?.usage.input_tokens, task?.usage.cost_usd]).toEqual([3, 7, 0.007]);
  });

  it("a checkpoint with ledger marks, and a model turn stored with its calls' results, are heap-only too", async () => {
    const t = await runningTask();
    await store.appendStep(t.id, t.fence, llmStep(1), usage(1), [{ idempotencyKey: `${t.id}:1:0`, step: 1, tool: "route_order" }]);
    expect(await heapOnly(t.id)).toBe(true);
    await store.appendSteps(t.id, t.fence, [
      { step: llmStep(2), usageDelta: usage(2) },
      { step: toolStep(3) },
    ]);
    expect(await heapOnly(t.id)).toBe(true);
    expect((await store.listSteps(t.id)).map((s) => s.step)).toEqual([1, 2, 3]);
  });

  it("the checkpoints of concurrent tasks, committed together in one batch, are each heap-only", async () => {
    const tasks = await Promise.all(Array.from({ length: 8 }, () => runningTask()));
    stepStatements.length = 0;
    await Promise.all(tasks.map((t, i) => store.appendStep(t.id, t.fence, llmStep(1), usage(i + 1))));
    expect(stepStatements.some((s) => /unnest/.test(s))).toBe(true);
    for (const t of tasks) expect(await heapOnly(t.id)).toBe(true);
    for (const [i, t] of tasks.entries()) expect((await store.getTask(t.id))?.usage.input_tokens).toBe(i + 1);
  });

  it("updated_at stays for 5 s, and moves at the first checkpoint after it is 5 s old", async () => {
    const t = await runningTask();
    const claimedAt = await updatedAt(t.id);
    await store.appendStep(t.id, t.fence, llmStep(1), usage(1));
    expect(await updatedAt(t.id)).toBe(claimedAt);
    await pool.query("UPDATE tasks SET updated_at = updated_at - interval '6 seconds' WHERE id = $1", [t.id]);
    await store.appendStep(t.id, t.fence, toolStep(2));
    // Moved to the checkpoint's time, after the claim: not left 6 s before it.
    expect(await updatedAt(t.id)).toBeGreaterThanOrEqual(claimedAt);
  });
});
