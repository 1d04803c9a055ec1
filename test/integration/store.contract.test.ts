/**
 * One contract for the system of record, run against PGlite (always) and a real
 * Postgres (a fresh database per run, dropped afterwards). Both back ends must
 * behave identically: same SQL, same errors, same fencing.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emptyUsage, type NewStep, type NewTask, type TaskStatus, type Usage } from "../../src/contracts";
import { StaleFenceError, TaskNotFoundError, UnavailableError } from "../../src/errors";
import {
  createPool,
  DuplicateStepError,
  migrate,
  MigrationError,
  MIGRATION_LOCK_KEY,
  openStore,
  type PgTaskStore,
} from "../../src/store";
import { hasService } from "../helpers/services";
import { storeBackends, type OpenedBackend, type StoreBackend } from "../helpers/storeBackends";

const [pgliteBackend, postgresBackend] = storeBackends({ max: 4 }) as [StoreBackend, StoreBackend];

const newTask = (over: Partial<NewTask> = {}): NewTask => ({
  id: randomUUID(),
  agent: "order-router",
  input: { order_id: "ORD-1001" },
  priority: "normal",
  metadata: {},
  prompt_version: "pv-1",
  ...over,
});

const usage = (input: number, output: number, cost: number): Usage => ({ ...emptyUsage(), input_tokens: input, output_tokens: output, cost_usd: cost });

const llmStep = (step: number, text = `thinking about step ${step}`): NewStep => ({
  kind: "llm",
  step,
  data: { model: "claude-sim", tier: "fast", stop_reason: "tool_use", usage: usage(10, 5, 0.1), content: [{ type: "text", text }], duration_ms: 12 },
});

const toolStep = (taskId: string, step: number): NewStep => ({
  kind: "tool",
  step,
  data: {
    tool: "lookup_order",
    tool_use_id: `tu_${step}`,
    input: { order_id: "ORD-1001" },
    output: { sku: "A-1", qty: 2 },
    ok: true,
    duration_ms: 3,
    idempotency_key: `${taskId}:${step}`,
  },
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

function storeContract(backend: StoreBackend): void {
  let db: OpenedBackend;
  let store: PgTaskStore;

  beforeAll(async () => {
    db = await backend.open();
    store = db.store;
  });
  afterAll(async () => {
    await db?.dispose();
  });

  /** For the tests about whole-table queries. */
  // CASCADE: the tables of later migrations that reference tasks (approvals, the webhook outbox) go too.
  const emptyTables = () => db.pool.query("TRUNCATE tasks, steps, idempotency_keys, dead_letters CASCADE");

  async function running(): Promise<{ id: string; fence: number }> {
    const t = newTask();
    await store.createTask(t);
    const claim = await store.claimTask(t.id, "worker-a");
    if (!claim) throw new Error("claim failed");
    return { id: t.id, fence: claim.fence };
  }

  describe("create and read", () => {
    it("round-trips an object input with every field of a new task", async () => {
      const t = newTask({ priority: "high", metadata: { tenant: "acme", tags: ["a", "b"] } });
      const { task, created } = await store.createTask(t);
      expect(created).toBe(true);
      expect(await store.getTask(t.id)).toEqual(task);
      expect(task).toMatchObject({
        id: t.id,
        agent: "order-router",
        status: "queued",
        input: { order_id: "ORD-1001" },
        priority: "high",
        metadata: { tenant: "acme", tags: ["a", "b"] },
        result: null,
        error: null,
        attempts: 0,
        steps: 0,
        usage: emptyUsage(),
        prompt_version: "pv-1",
        fence: 0,
        started_at: null,
        finished_at: null,
      });
      expect(new Date(task.created_at).toISOString()).toBe(task.created_at);
      expect(new Date(task.wakeup_at).toISOString()).toBe(task.wakeup_at);
    });

    it("answers a new task as it reads back, every column set, alone, with a key and in a batch", async () => {
      const full = (n: number): NewTask =>
        newTask({
          // Keys out of jsonb's order, a number jsonb writes its own way, and what jsonb cannot hold (stored as U+FFFD).
          input: { zeta: n, alpha: { b: [1.5e3, 0.1, null], a: "x\u0000y" }, lone: "\ud800" },
          priority: "low",
          metadata: { source: "contract", nested: { z: true, a: false } },
          prompt_version: "pv-9",
          trace_context: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
          tenant: "acme",
          webhook: { url: "https://hooks.example.com/done", secret_id: "whs_1" },
          budgets: { max_steps: 7, max_tokens: 5_000 },
        });
      const lone = full(1);
      const keyed = full(2);
      const batched = [full(3), full(4)];
      const answers = [
        (await store.createTask(lone)).task,
        (await store.createTask(keyed, `key-${randomUUID()}`)).task,
        ...(await store.createTasks(batched.map((task) => ({ task })))).map((o) => {
          if (!("result" in o)) throw new Error(`batched create failed: ${JSON.stringify(o)}`);
          return o.result.task;
        }),
      ];
      for (const [i, t] of [lone, keyed, ...batched].entries()) {
        const read = await store.getTask(t.id);
        expect(answers[i]).toEqual(read);
        expect(answers[i]).toMatchObject({ tenant: "acme", trace_context: t.trace_context, webhook: t.webhook, budgets: t.budgets, status: "queued", fence: 0 });
        expect((answers[i]?.input as { alpha: { a: string } }).alpha.a).toBe("x\ufffdy");
      }
    });

    it("round-trips a string input as the same string", async () => {
      const t = newTask({ input: 'route order ORD-7 "fast", [not json]' });
      await store.createTask(t);
      expect((await store.getTask(t.id))?.input).toBe('route order ORD-7 "fast", [not json]');
    });

    it("answers null for an unknown or malformed task id", async () => {
      expect(await store.getTask(randomUUID())).toBeNull();
      expect(await store.getTask("------------------------------------")).toBeNull();
      expect(await store.listSteps("not-a-uuid")).toEqual([]);
      expect(await store.claimTask("not-a-uuid", "w")).toBeNull();
    });
  });

  describe("idempotency keys", () => {
    it("answer the same task for the same key, with created false", async () => {
      const key = `key-${randomUUID()}`;
      const first = await store.createTask(newTask(), key);
      const second = await store.createTask(newTask({ input: "different" }), key);
      expect(first.created).toBe(true);
      expect(second.created).toBe(false);
      expect(second.task).toEqual(first.task);
    });

    it("yield exactly one task when concurrent creates race on one key", async () => {
      const key = `race-${randomUUID()}`;
      const attempts = Array.from({ length: 8 }, () => newTask());
      const results = await Promise.all(attempts.map((t) => store.createTask(t, key)));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.task.id)).size).toBe(1);
      const winner = results[0]?.task.id;
      const losers = attempts.filter((t) => t.id !== winner);
      expect(losers).toHaveLength(7);
      for (const t of losers) expect(await store.getTask(t.id)).toBeNull();
    });

    it("older than 24 h are replaced by the new task", async () => {
      const key = `old-${randomUUID()}`;
      const first = await store.createTask(newTask(), key);
      await db.pool.query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1", [key]);
      const second = await store.createTask(newTask(), key);
      expect(second.created).toBe(true);
      expect(second.task.id).not.toBe(first.task.id);
      expect((await store.createTask(newTask(), key)).task.id).toBe(second.task.id);
    });
  });

  describe("claims and fencing", () => {
    it("claimTask bumps fence and attempts monotonically and sets started_at once", async () => {
      const t = newTask();
      await store.createTask(t);
      const a = await store.claimTask(t.id, "worker-a");
      const b = await store.claimTask(t.id, "worker-b");
      expect(a?.fence).toBe(1);
      expect(b?.fence).toBe(2);
      expect(b?.task).toMatchObject({ status: "running", attempts: 2, fence: 2 });
      expect(b?.task.started_at).toBe(a?.task.started_at);
      expect(a?.task.started_at).not.toBeNull();
    });

    it("a zombie's writes fail with StaleFenceError after a takeover while the successor's succeed", async () => {
      const t = newTask();
      await store.createTask(t);
      const a = await store.claimTask(t.id, "worker-a");
      const b = await store.claimTask(t.id, "worker-b");
      if (!a || !b) throw new Error("claims failed");

      const append = await rejection(store.appendStep(t.id, a.fence, llmStep(1), usage(100, 50, 1)));
      expect(append).toBeInstanceOf(StaleFenceError);
      expect((append as StaleFenceError).data).toEqual({ taskId: t.id, fence: a.fence, current: b.fence });
      expect(await rejection(store.finishTask(t.id, a.fence, { status: "succeeded", result: "zombie" }))).toBeInstanceOf(StaleFenceError);
      expect(await rejection(store.releaseTask(t.id, a.fence))).toBeInstanceOf(StaleFenceError);

      await store.appendStep(t.id, b.fence, llmStep(1), usage(10, 5, 0.1));
      await store.finishTask(t.id, b.fence, { status: "succeeded", result: { routed_to: "WH-2" } });
      const done = await store.getTask(t.id);
      expect(done).toMatchObject({ status: "succeeded", result: { routed_to: "WH-2" }, steps: 1 });
      expect(done?.usage).toMatchObject({ input_tokens: 10, output_tokens: 5, cost_usd: 0.1 });
      expect((await store.listSteps(t.id)).map((s) => s.fence)).toEqual([b.fence]);
    });

    it("fenced writes to an unknown task are TaskNotFoundError", async () => {
      expect(await rejection(store.appendStep(randomUUID(), 1, llmStep(1)))).toBeInstanceOf(TaskNotFoundError);
      expect(await rejection(store.finishTask(randomUUID(), 1, { status: "succeeded" }))).toBeInstanceOf(TaskNotFoundError);
    });

    it("terminal tasks cannot be claimed", async () => {
      const ok = await running();
      await store.finishTask(ok.id, ok.fence, { status: "succeeded", result: 1 });
      const bad = await running();
      await store.finishTask(bad.id, bad.fence, { status: "failed", error: { type: "tool_execution_error", message: "boom" } });
      const cancelled = await running();
      await db.pool.query("UPDATE tasks SET status = 'cancelled' WHERE id = $1", [cancelled.id]);
      for (const id of [ok.id, bad.id, cancelled.id]) expect(await store.claimTask(id, "worker-c")).toBeNull();
      expect((await store.getTask(ok.id))?.fence).toBe(ok.fence);
    });

    it("writes after finishing are rejected, while repeating the same finish is a no-op", async () => {
      const r = await running();
      await store.finishTask(r.id, r.fence, { status: "succeeded", result: "done" });
      await store.finishTask(r.id, r.fence, { status: "succeeded", result: "done" });
      expect(await rejection(store.appendStep(r.id, r.fence, llmStep(1)))).toBeInstanceOf(StaleFenceError);
      expect(await rejection(store.finishTask(r.id, r.fence, { status: "failed", error: { type: "x", message: "y" } }))).toBeInstanceOf(StaleFenceError);
      expect(await rejection(store.releaseTask(r.id, r.fence))).toBeInstanceOf(StaleFenceError);
    });

    it("releaseTask hands the task back as queued with a fresh wake-up, and the next claim gets a new fence", async () => {
      const r = await running();
      const before = await store.getTask(r.id);
      await new Promise((res) => setTimeout(res, 5));
      await store.releaseTask(r.id, r.fence);
      await store.releaseTask(r.id, r.fence);
      const released = await store.getTask(r.id);
      expect(released?.status).toBe("queued");
      expect(Date.parse(released?.wakeup_at ?? "")).toBeGreaterThan(Date.parse(before?.wakeup_at ?? ""));
      const next = await store.claimTask(r.id, "worker-b");
      expect(next?.fence).toBe(r.fence + 1);
      expect(await rejection(store.appendStep(r.id, r.fence, llmStep(1)))).toBeInstanceOf(StaleFenceError);
    });
  });

  describe("checkpoints", () => {
    it("are listed in step order, each row holding only its own delta", async () => {
      const r = await running();
      await store.appendStep(r.id, r.fence, llmStep(1));
      await store.appendStep(r.id, r.fence, toolStep(r.id, 2));
      await store.appendStep(r.id, r.fence, llmStep(3, "routing now"));
      const steps = await store.listSteps(r.id);
      expect(steps.map((s) => [s.step, s.kind])).toEqual([
        [1, "llm"],
        [2, "tool"],
        [3, "llm"],
      ]);
      expect(steps[0]?.data).toEqual(llmStep(1).data);
      expect(steps[1]?.data).toEqual(toolStep(r.id, 2).data);
      expect(steps[2]?.data).toEqual(llmStep(3, "routing now").data);
      for (const s of steps) {
        expect(s).toMatchObject({ task_id: r.id, schema_version: 1, fence: r.fence });
        expect(new Date(s.created_at).toISOString()).toBe(s.created_at);
      }
      expect((await store.getTask(r.id))?.steps).toBe(3);
    });

    it("cannot be changed once written: the database refuses an UPDATE", async () => {
      const r = await running();
      await store.appendStep(r.id, r.fence, llmStep(1));
      await expect(db.pool.query("UPDATE steps SET data = '{}'::jsonb WHERE task_id = $1", [r.id])).rejects.toThrow(/append-only/);
      expect((await store.listSteps(r.id))[0]?.data).toEqual(llmStep(1).data);
    });

    it("accumulate usage on the task, exactly for decimal costs", async () => {
      const r = await running();
      await store.appendStep(r.id, r.fence, llmStep(1), { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 7, cache_creation_input_tokens: 3, cost_usd: 0.1 });
      await store.appendStep(r.id, r.fence, toolStep(r.id, 2));
      await store.appendStep(r.id, r.fence, llmStep(3), { input_tokens: 150, output_tokens: 30, cache_read_input_tokens: 1, cache_creation_input_tokens: 0, cost_usd: 0.2 });
      expect((await store.getTask(r.id))?.usage).toEqual({
        input_tokens: 250,
        output_tokens: 50,
        cache_read_input_tokens: 8,
        cache_creation_input_tokens: 3,
        cost_usd: 0.3,
      });
    });

    it("re-appending an identical step is a no-op, different content is a DuplicateStepError", async () => {
      const r = await running();
      await store.appendStep(r.id, r.fence, llmStep(1), usage(10, 5, 0.5));
      await store.appendStep(r.id, r.fence, llmStep(1), usage(10, 5, 0.5));
      const dup = await rejection(store.appendStep(r.id, r.fence, llmStep(1, "another answer"), usage(10, 5, 0.5)));
      expect(dup).toBeInstanceOf(DuplicateStepError);
      expect((dup as DuplicateStepError).data).toMatchObject({ reason: "duplicate_step", step: 1 });
      expect(await store.listSteps(r.id)).toHaveLength(1);
      expect((await store.getTask(r.id))?.usage).toMatchObject({ input_tokens: 10, cost_usd: 0.5 });
    });
  });

  describe("side-effect ledger marks on a checkpoint", () => {
    const marksOf = (taskId: string, ...steps: number[]) => steps.map((step) => ({ idempotencyKey: `${taskId}:${step}`, step, tool: "route_order" }));

    it("are written with the step, starts 1 and outcome unknown, as a start would write them", async () => {
      const r = await running();
      const answer = await store.appendStep(r.id, r.fence, llmStep(1), usage(10, 5, 0.1), marksOf(r.id, 2, 3));
      expect(answer).toEqual({ marked: true });
      expect(await store.getToolCall(`${r.id}:2`)).toEqual({ starts: 1, outcome: null });
      expect(await store.getToolCall(`${r.id}:3`)).toEqual({ starts: 1, outcome: null });
      // Resumed elsewhere: the next start counts one unknown outcome before it.
      expect(await store.toolCallStarted(`${r.id}:2`, r.id, 2, "route_order")).toEqual({ starts: 2, outcome: null });
      // Without marks, nothing is written to the ledger and nothing is claimed.
      expect(await store.appendStep(r.id, r.fence, llmStep(4))).toBeUndefined();
    });

    it("are not written when the step is not: a stale fence, or a step already checkpointed otherwise", async () => {
      const r = await running();
      const b = await store.claimTask(r.id, "worker-b");
      if (!b) throw new Error("takeover failed");
      expect(await rejection(store.appendStep(r.id, r.fence, llmStep(1), usage(10, 5, 0.1), marksOf(r.id, 2)))).toBeInstanceOf(StaleFenceError);
      expect(await store.getToolCall(`${r.id}:2`)).toBeNull();
      expect(await store.listSteps(r.id)).toHaveLength(0);

      await store.appendStep(r.id, b.fence, llmStep(1));
      expect(await rejection(store.appendStep(r.id, b.fence, llmStep(1, "another answer"), undefined, marksOf(r.id, 2)))).toBeInstanceOf(DuplicateStepError);
      expect(await store.getToolCall(`${r.id}:2`)).toBeNull();
    });

    it("a retried identical checkpoint is a no-op: the rows keep their starts and outcome", async () => {
      const r = await running();
      const marks = marksOf(r.id, 2);
      await store.appendStep(r.id, r.fence, llmStep(1), usage(10, 5, 0.1), marks);
      expect(await store.appendStep(r.id, r.fence, llmStep(1), usage(10, 5, 0.1), marks)).toEqual({ marked: true });
      expect(await store.getToolCall(`${r.id}:2`)).toEqual({ starts: 1, outcome: null });
      await store.toolCallFinished(`${r.id}:2`, { ok: true, output: { routed: true } });
      await store.appendStep(r.id, r.fence, llmStep(1), usage(10, 5, 0.1), marks);
      expect(await store.getToolCall(`${r.id}:2`)).toEqual({ starts: 1, outcome: { ok: true, output: { routed: true } } });
      expect((await store.getTask(r.id))?.usage).toMatchObject({ input_tokens: 10, cost_usd: 0.1 });
    });
  });

  describe("appendSteps: a model turn with its calls' results, in one write", () => {
    it("stores every step with its usage, or, under a stale fence, none", async () => {
      const r = await running();
      await store.appendSteps(r.id, r.fence, [{ step: llmStep(1), usageDelta: usage(10, 5, 0.1) }, { step: toolStep(r.id, 2) }, { step: toolStep(r.id, 3) }]);
      expect((await store.listSteps(r.id)).map((s) => [s.step, s.kind, s.fence])).toEqual([
        [1, "llm", r.fence],
        [2, "tool", r.fence],
        [3, "tool", r.fence],
      ]);
      expect(await store.getTask(r.id)).toMatchObject({ status: "running", steps: 3, usage: { input_tokens: 10, output_tokens: 5, cost_usd: 0.1 } });

      const z = await running();
      const successor = await store.claimTask(z.id, "worker-b");
      if (!successor) throw new Error("takeover failed");
      const stale = await rejection(store.appendSteps(z.id, z.fence, [{ step: llmStep(1), usageDelta: usage(10, 5, 0.1) }, { step: toolStep(z.id, 2) }]));
      expect(stale).toBeInstanceOf(StaleFenceError);
      expect(await store.listSteps(z.id)).toEqual([]);
      expect(await store.getTask(z.id)).toMatchObject({ steps: 0, usage: { input_tokens: 0, cost_usd: 0 } });
    });

    it("a retry of the same steps is a no-op, its usage counted once; one with other content is a DuplicateStepError", async () => {
      const r = await running();
      const write = (text?: string) => store.appendSteps(r.id, r.fence, [{ step: llmStep(1), usageDelta: usage(10, 5, 0.1) }, { step: llmStep(2, text) }]);
      await write();
      await write();
      expect(await store.getTask(r.id)).toMatchObject({ steps: 2, usage: { input_tokens: 10, cost_usd: 0.1 } });
      expect(await rejection(write("another thought"))).toBeInstanceOf(DuplicateStepError);
      expect((await store.listSteps(r.id)).map((s) => s.data)).toEqual([llmStep(1).data, llmStep(2).data]);
      expect(await store.getTask(r.id)).toMatchObject({ steps: 2, usage: { input_tokens: 10, cost_usd: 0.1 } });
    });

    it("to an unknown task is TaskNotFoundError", async () => {
      expect(await rejection(store.appendSteps(randomUUID(), 1, [{ step: llmStep(1) }, { step: llmStep(2) }]))).toBeInstanceOf(TaskNotFoundError);
    });
  });

  describe("finishWithStep: a terminal write with its last checkpoint", () => {
    const answer = (step: number, text = "the final answer"): NewStep => ({
      kind: "llm",
      step,
      data: { model: "claude-sim", tier: "fast", stop_reason: "end_turn", usage: usage(10, 5, 0.1), content: [{ type: "text", text }], duration_ms: 12 },
    });

    it("writes the step and the task's end together: the row, the usage, the step count and the outcome", async () => {
      const r = await running();
      await store.appendStep(r.id, r.fence, toolStep(r.id, 1), usage(0, 0, 0));
      await store.finishWithStep(r.id, r.fence, { status: "succeeded", result: { routed_to: "WH-2" } }, { step: answer(2), usageDelta: usage(10, 5, 0.1) });
      const steps = await store.listSteps(r.id);
      expect(steps.map((s) => [s.step, s.kind, s.fence])).toEqual([[1, "tool", r.fence], [2, "llm", r.fence]]);
      expect(steps[1]?.data).toEqual(answer(2).data);
      expect(await store.getTask(r.id)).toMatchObject({ status: "succeeded", result: { routed_to: "WH-2" }, steps: 2, usage: { input_tokens: 10, output_tokens: 5, cost_usd: 0.1 } });

      const f = await running();
      await store.finishWithStep(f.id, f.fence, { status: "failed", error: { type: "model_behavior_error", message: "cut off" } }, { step: answer(1) });
      expect((await store.listSteps(f.id)).map((s) => s.step)).toEqual([1]);
      expect(await store.getTask(f.id)).toMatchObject({ status: "failed", steps: 1, usage: { input_tokens: 0 } });
      expect((await store.listDeadLetters(1000)).find((d) => d.task_id === f.id)?.error).toEqual({ type: "model_behavior_error", message: "cut off" });
    });

    it("a stale fence refuses both: neither the step nor the end is written", async () => {
      const a = await running();
      const b = await store.claimTask(a.id, "worker-b");
      if (!b) throw new Error("takeover failed");
      expect(await rejection(store.finishWithStep(a.id, a.fence, { status: "succeeded", result: "zombie" }, { step: answer(1), usageDelta: usage(10, 5, 0.1) }))).toBeInstanceOf(StaleFenceError);
      expect(await store.listSteps(a.id)).toEqual([]);
      expect(await store.getTask(a.id)).toMatchObject({ status: "running", fence: b.fence, steps: 0, result: null, usage: { input_tokens: 0, cost_usd: 0 } });
      // The successor's own write of the same step stands.
      await store.finishWithStep(a.id, b.fence, { status: "succeeded", result: "successor" }, { step: answer(1, "the successor's answer"), usageDelta: usage(10, 5, 0.1) });
      expect((await store.listSteps(a.id)).map((s) => [s.step, s.fence])).toEqual([[1, b.fence]]);
      expect(await store.getTask(a.id)).toMatchObject({ status: "succeeded", result: "successor", steps: 1, usage: { input_tokens: 10, cost_usd: 0.1 } });
    });

    it("a retry of the same write is a no-op; the same step with other content or another outcome is refused", async () => {
      const r = await running();
      const write = () => store.finishWithStep(r.id, r.fence, { status: "succeeded", result: "done" }, { step: answer(1), usageDelta: usage(10, 5, 0.1) });
      await write();
      await write();
      expect(await store.listSteps(r.id)).toHaveLength(1);
      expect(await store.getTask(r.id)).toMatchObject({ status: "succeeded", steps: 1, usage: { input_tokens: 10, cost_usd: 0.1 } });
      const other = await rejection(store.finishWithStep(r.id, r.fence, { status: "succeeded", result: "done" }, { step: answer(1, "another answer"), usageDelta: usage(10, 5, 0.1) }));
      expect(other).toBeInstanceOf(DuplicateStepError);
      expect(await rejection(store.finishWithStep(r.id, r.fence, { status: "failed", error: { type: "x", message: "y" } }, { step: answer(1) }))).toBeInstanceOf(StaleFenceError);
      expect(await store.getTask(r.id)).toMatchObject({ status: "succeeded", result: "done", usage: { input_tokens: 10, cost_usd: 0.1 } });
    });

    it("a step already stored with other content is a DuplicateStepError that leaves the task running; with the same content, the end is written", async () => {
      const r = await running();
      await store.appendStep(r.id, r.fence, answer(1, "the first answer"), usage(10, 5, 0.1));
      const dup = await rejection(store.finishWithStep(r.id, r.fence, { status: "succeeded", result: "x" }, { step: answer(1), usageDelta: usage(10, 5, 0.1) }));
      expect(dup).toBeInstanceOf(DuplicateStepError);
      expect((dup as DuplicateStepError).data).toMatchObject({ reason: "duplicate_step", step: 1 });
      expect(await store.getTask(r.id)).toMatchObject({ status: "running", steps: 1, result: null, usage: { input_tokens: 10, cost_usd: 0.1 } });
      expect((await store.listSteps(r.id)).map((s) => s.data)).toEqual([answer(1, "the first answer").data]);

      // The same checkpoint, already written on its own: only the end is left to write, its usage not added twice.
      await store.finishWithStep(r.id, r.fence, { status: "succeeded", result: "x" }, { step: answer(1, "the first answer"), usageDelta: usage(10, 5, 0.1) });
      expect(await store.getTask(r.id)).toMatchObject({ status: "succeeded", result: "x", steps: 1, usage: { input_tokens: 10, cost_usd: 0.1 } });
    });
  });

  describe("reaper queries", () => {
    it("listStaleQueued lists queued tasks with an old wake-up, oldest first; touchWakeup makes them fresh", async () => {
      await emptyTables();
      const [a, b, c, d] = [newTask(), newTask(), newTask(), newTask()];
      for (const t of [a, b, c, d]) await store.createTask(t);
      const claimed = await store.claimTask(d.id, "w");
      expect(claimed).not.toBeNull();
      await db.pool.query("UPDATE tasks SET wakeup_at = now() - interval '10 minutes' WHERE id = $1", [c.id]);
      await new Promise((res) => setTimeout(res, 300));
      await store.touchWakeup([b.id, "not-a-uuid"]);
      expect(await store.listStaleQueued(200, 10)).toEqual([c.id, a.id]);
      expect(await store.listStaleQueued(200, 1)).toEqual([c.id]);
      expect(await store.listStaleQueued(60 * 60_000, 10)).toEqual([]);
      await store.touchWakeup([]);
    });

    it("listRunning lists running tasks with their current fence, least recently written first", async () => {
      await emptyTables();
      const first = await running();
      const second = await running();
      await store.claimTask(second.id, "worker-b");
      const done = await running();
      await store.finishTask(done.id, done.fence, { status: "succeeded" });
      const listed = await store.listRunning(10);
      expect(listed.map((r) => [r.id, r.fence])).toEqual([
        [first.id, 1],
        [second.id, 2],
      ]);
      expect(new Date(listed[0]?.updated_at ?? "").toISOString()).toBe(listed[0]?.updated_at);
      expect(await store.listRunning(1)).toHaveLength(1);
    });

    it("countByStatus reports all six statuses, zero where there are none", async () => {
      await emptyTables();
      const zero: Record<TaskStatus, number> = { queued: 0, running: 0, awaiting_approval: 0, succeeded: 0, failed: 0, cancelled: 0 };
      expect(await store.countByStatus()).toEqual(zero);
      await store.createTask(newTask());
      await store.createTask(newTask());
      await running();
      const f = await running();
      await store.finishTask(f.id, f.fence, { status: "failed", error: { type: "budget_exceeded", message: "too many steps" } });
      expect(await store.countByStatus()).toEqual({ ...zero, queued: 2, running: 1, failed: 1 });
    });
  });

  describe("dead letters", () => {
    it("a failed task lands in the dead letters; redrive requeues it with fresh attempts and removes the letter", async () => {
      await emptyTables();
      const r = await running();
      await store.appendStep(r.id, r.fence, llmStep(1));
      const error = { type: "tool_execution_error", message: "warehouse API down" };
      await store.finishTask(r.id, r.fence, { status: "failed", error });
      const failed = await store.getTask(r.id);
      expect(failed).toMatchObject({ status: "failed", error, attempts: 1 });
      expect(failed?.finished_at).not.toBeNull();
      const letters = await store.listDeadLetters(10);
      expect(letters).toEqual([{ task_id: r.id, agent: "order-router", error, attempts: 1, created_at: expect.any(String), tenant: "default" }]);

      expect(await store.redrive(r.id)).toBe(true);
      expect(await store.listDeadLetters(10)).toEqual([]);
      const again = await store.getTask(r.id);
      expect(again).toMatchObject({ status: "queued", attempts: 0, error: null, finished_at: null, steps: 1 });
      expect(await store.listSteps(r.id)).toHaveLength(1);
      expect((await store.claimTask(r.id, "w2"))?.fence).toBe(r.fence + 1);
    });

    it("redrive answers false for a task that is not failed", async () => {
      const ok = await running();
      await store.finishTask(ok.id, ok.fence, { status: "succeeded" });
      expect(await store.redrive(ok.id)).toBe(false);
      expect(await store.redrive(randomUUID())).toBe(false);
      expect((await store.getTask(ok.id))?.status).toBe("succeeded");
    });

    it("are listed most recent first, up to the limit", async () => {
      await emptyTables();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await running();
        await store.finishTask(r.id, r.fence, { status: "failed", error: { type: "e", message: String(i) } });
        ids.push(r.id);
        await new Promise((res) => setTimeout(res, 5));
      }
      expect((await store.listDeadLetters(2)).map((d) => d.task_id)).toEqual([ids[2], ids[1]]);
    });
  });

  describe("connections", () => {
    it("a connection discarded mid-transaction leaves nothing behind and the pool keeps working", async () => {
      const t = newTask();
      const client = await db.pool.connect();
      await client.query("BEGIN");
      await client.query("INSERT INTO tasks (id, agent, input, prompt_version) VALUES ($1, 'a', '{}'::jsonb, 'v')", [t.id]);
      client.release(true);
      await expect(db.pool.query("SELECT 1/0")).rejects.toThrow();
      await store.createTask(newTask());
      expect(await store.getTask(t.id)).toBeNull();
    });
  });

  describe("migrations", () => {
    it("running them again applies nothing", async () => {
      expect(await migrate(db.pool)).toEqual({ applied: [] });
      const { rows } = await db.pool.query<{ name: string }>("SELECT name FROM schema_migrations ORDER BY name");
      expect(rows.map((r) => r.name)[0]).toBe("001_tasks.sql");
    });

    it("refuse to start when an applied migration's checksum changed", async () => {
      const { rows } = await db.pool.query<{ checksum: string }>("SELECT checksum FROM schema_migrations WHERE name = '001_tasks.sql'");
      const original = rows[0]?.checksum;
      await db.pool.query("UPDATE schema_migrations SET checksum = $1 WHERE name = '001_tasks.sql'", ["0".repeat(64)]);
      try {
        const err = await rejection(migrate(db.pool));
        expect(err).toBeInstanceOf(MigrationError);
        expect((err as Error).message).toMatch(/never edit an applied migration, append a new one/);
      } finally {
        await db.pool.query("UPDATE schema_migrations SET checksum = $1 WHERE name = '001_tasks.sql'", [original]);
      }
      expect(await migrate(db.pool)).toEqual({ applied: [] });
    });

    it("apply pending files in name order, each once, and roll a failing one back whole", async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-migrations-"));
      const fresh = await backend.open({ migrate: false });
      try {
        fs.writeFileSync(path.join(dir, "002_b.sql"), "INSERT INTO trail VALUES ('b');");
        fs.writeFileSync(path.join(dir, "001_a.sql"), "CREATE TABLE trail (name text); INSERT INTO trail VALUES ('a');");
        expect(await migrate(fresh.pool, { dir })).toEqual({ applied: ["001_a.sql", "002_b.sql"] });
        fs.writeFileSync(path.join(dir, "003_c.sql"), "INSERT INTO trail VALUES ('c');");
        fs.writeFileSync(path.join(dir, "004_bad.sql"), "CREATE TABLE half_done (x int); SELECT 1/0;");
        const err = await rejection(migrate(fresh.pool, { dir }));
        expect(err).toBeInstanceOf(MigrationError);
        expect((err as MigrationError).migration).toBe("004_bad.sql");
        const trail = await fresh.pool.query<{ name: string }>("SELECT name FROM trail");
        expect(trail.rows.map((r) => r.name)).toEqual(["a", "b", "c"]);
        const halfDone = await fresh.pool.query("SELECT to_regclass('half_done') AS t");
        expect(halfDone.rows[0]?.t).toBeNull();
        const applied = await fresh.pool.query<{ name: string }>("SELECT name FROM schema_migrations ORDER BY name");
        expect(applied.rows.map((r) => r.name)).toEqual(["001_a.sql", "002_b.sql", "003_c.sql"]);
      } finally {
        await fresh.dispose();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

describe("store contract - pglite", () => {
  storeContract(pgliteBackend);
});

describe.skipIf(!hasService("postgres"))("store contract - postgres", () => {
  storeContract(postgresBackend);

  it("concurrent migrate from two pools is serialised by the advisory lock", async () => {
    const db = await postgresBackend.open({ migrate: false });
    const other = new pg.Pool({ connectionString: db.url, max: 2 });
    const holder = new pg.Client({ connectionString: db.url });
    try {
      await holder.connect();
      await holder.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
      let finished = 0;
      const runs = [migrate(db.pool), migrate(other)].map((p) => p.finally(() => finished++));
      await new Promise((res) => setTimeout(res, 300));
      expect(finished).toBe(0);
      await holder.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
      const reports = await Promise.all(runs);
      const appliedByEach = reports.map((r) => r.applied.length).sort((x, y) => x - y);
      expect(appliedByEach[0]).toBe(0);
      expect(appliedByEach[1]).toBeGreaterThan(0);
      const { rows } = await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM schema_migrations WHERE name = '001_tasks.sql'");
      expect(rows[0]?.n).toBe(1);
    } finally {
      await holder.end();
      await other.end();
      await db.dispose();
    }
  });

  it("new tasks have connections of their own: a submit does not wait behind a full pool", async () => {
    const db = await postgresBackend.open();
    const held: pg.PoolClient[] = [];
    try {
      // Every connection of the store's pool taken (the planners' checkpoint writes, in a busy cluster).
      for (let i = 0; i < db.pool.options.max; i++) held.push(await db.pool.connect());
      expect(db.pool.totalCount).toBe(db.pool.options.max);
      const within = <T>(p: Promise<T>): Promise<T> => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the submit waited for the full pool")), 5_000))]);
      const lone = await within(db.store.createTask(newTask()));
      const keyed = await within(db.store.createTask(newTask(), "key-1"));
      expect((await within(db.store.taskByIdempotencyKey("key-1", "default")))?.id).toBe(keyed.task.id);
      const batch = await within(db.store.createTasks([{ task: newTask() }, { task: newTask() }, { task: newTask(), idempotencyKey: "key-2" }]));
      expect([lone.created, keyed.created, ...batch.map((o) => o.ok)]).toEqual([true, true, true, true, true]);
      // None of them took or waited for a connection of the store's pool.
      expect(db.pool.waitingCount).toBe(0);
      expect(db.pool.totalCount).toBe(db.pool.options.max);
    } finally {
      for (const c of held) c.release();
      await db.dispose();
    }
  });

  it("an idle connection killed by the server does not crash the process; the next query reconnects", async () => {
    const warnings: string[] = [];
    const db = await postgresBackend.open({ logger: { warn: (msg) => warnings.push(msg) } });
    try {
      await db.store.createTask(newTask());
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
      await admin.end();
      for (let i = 0; i < 50 && db.pool.idleCount > 0; i++) await new Promise((res) => setTimeout(res, 20));
      expect(db.pool.idleCount).toBe(0);
      expect(warnings.join("\n")).toMatch(/idle database connection to postgres:\/\/postgres@127\.0\.0\.1:5432\/clawfleet_test_\w+ failed/);
      expect((await db.store.countByStatus()).queued).toBe(1);
    } finally {
      await db.dispose();
    }
  });
});

describe("store pool - connection errors", () => {
  it("an unreachable Postgres is an UnavailableError naming the host but never the password", async () => {
    const err = await rejection(createPool({ databaseUrl: "postgres://clawfleet:s3cret-pw@127.0.0.1:1/clawfleet?password=other-secret", connectionTimeoutMs: 2000 }));
    expect(err).toBeInstanceOf(UnavailableError);
    const text = `${(err as Error).message} ${JSON.stringify((err as UnavailableError).data)}`;
    expect(text).toContain("127.0.0.1:1");
    expect(text).not.toMatch(/s3cret-pw|other-secret/);
    expect((err as UnavailableError).retryable).toBe(true);
  });

  it("a PGlite data dir is created if missing and keeps committed tasks across a restart", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-pglite-"));
    const dataDir = path.join(root, "nested", "data");
    const t = newTask({ input: "survive a restart" });
    try {
      const first = await openStore({ dataDir });
      expect(first.target).toBe(`pglite ${dataDir}`);
      await first.store.createTask(t, "restart-key");
      await first.close();
      const second = await openStore({ dataDir });
      try {
        expect((await second.store.getTask(t.id))?.input).toBe("survive a restart");
        expect((await second.store.createTask(newTask(), "restart-key")).task.id).toBe(t.id);
      } finally {
        await second.close();
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasService("postgres"))("a store whose database went away answers UnavailableError, not a crash", async () => {
    const db = await postgresBackend.open();
    await db.close();
    try {
      const err = await rejection(db.store.getTask(randomUUID()));
      expect(err).toBeInstanceOf(UnavailableError);
    } finally {
      await db.dispose();
    }
  });
});
