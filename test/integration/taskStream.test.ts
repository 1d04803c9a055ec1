/**
 * taskStream - the event stream's cursor on a real store (PGlite): ids that
 * come from committed state, steps sent only without holes while the task
 * runs, everything left and the terminal event once it ended, `reset` for a
 * cursor ahead of the task, and paging through a long task.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { formatEvent, parseCursor, STREAM_PAGE, stepEventId, TaskEventCursor, type StreamEvent } from "../../src/api/taskStream";
import type { NewStep, NewTask } from "../../src/contracts";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { useMemoryStore } from "../helpers/memoryStore";

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

const usage = { input_tokens: 1, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: 0 };

function newTask(): NewTask {
  return { id: randomUUID(), agent: "a", input: "x", priority: "normal", metadata: {}, prompt_version: "v1", tenant: "t1" };
}

const llm = (step: number): NewStep => ({ kind: "llm", step, data: { model: "m", tier: "default", stop_reason: "tool_use", usage, content: [{ type: "text", text: `turn ${step}` }], duration_ms: 1 } });
const tool = (step: number): NewStep => ({
  kind: "tool",
  step,
  data: { tool: "t", tool_use_id: `tu_${step}`, input: {}, output: step, ok: true, duration_ms: 1, idempotency_key: `k:${step}` },
});

async function running(): Promise<{ id: string; fence: number }> {
  const t = newTask();
  await store.createTask(t);
  const claim = await store.claimTask(t.id, "w");
  if (!claim) throw new Error("claim failed");
  return { id: t.id, fence: claim.fence };
}

const ids = (events: readonly StreamEvent[]) => events.map((e) => e.id);
const names = (events: readonly StreamEvent[]) => events.map((e) => e.event);

describe("taskStream - the cursor", () => {
  it("sends the steps in order, nothing twice, and the terminal event last", async () => {
    const t = await running();
    const cursor = new TaskEventCursor(store, t.id, "t1", null);
    expect(await cursor.next()).toEqual([]);
    await store.appendStep(t.id, t.fence, llm(1));
    const first = await cursor.next();
    expect(ids(first)).toEqual([4]);
    expect(first[0]?.data).toMatchObject({ task_id: t.id, step: 1, kind: "llm" });
    expect(await cursor.next()).toEqual([]);
    await store.appendStep(t.id, t.fence, tool(2));
    await store.finishTask(t.id, t.fence, { status: "succeeded", result: "done" });
    const rest = await cursor.next();
    expect(ids(rest)).toEqual([8, 11]);
    expect(names(rest)).toEqual(["step", "succeeded"]);
    expect(rest[1]?.data).toMatchObject({ status: "succeeded", result: "done" });
    expect(cursor.done).toBe(true);
  });

  it("holds a step back until the hole before it is filled, while the task runs", async () => {
    const t = await running();
    await store.appendStep(t.id, t.fence, llm(1));
    // One model turn asked for three tools; the third finished first.
    await store.appendStep(t.id, t.fence, tool(4));
    const cursor = new TaskEventCursor(store, t.id, "t1", null);
    expect(ids(await cursor.next())).toEqual([4]);
    await store.appendStep(t.id, t.fence, tool(2));
    expect(ids(await cursor.next())).toEqual([8]);
    await store.appendStep(t.id, t.fence, tool(3));
    expect(ids(await cursor.next())).toEqual([12, 16]);
  });

  it("sends what is left past a hole once the task has ended: nothing can fill it any more", async () => {
    const t = await running();
    await store.appendStep(t.id, t.fence, llm(1));
    await store.appendStep(t.id, t.fence, tool(3));
    await store.finishTask(t.id, t.fence, { status: "failed", error: { type: "tool_error", message: "x" } });
    const events = await new TaskEventCursor(store, t.id, "t1", null).next();
    expect(ids(events)).toEqual([4, 12, 15]);
    expect(names(events)).toEqual(["step", "step", "failed"]);
  });

  it("says a task awaits approval even while a later call of the same turn left a hole before it", async () => {
    const t = await running();
    await store.appendStep(t.id, t.fence, llm(1));
    // The turn asked for a gated call (step 2) and an ungated one (step 3), which ran first; then the task parked.
    await store.appendStep(t.id, t.fence, tool(3));
    const cursor = new TaskEventCursor(
      { getTask: async (id, tenant) => ({ ...(await store.getTask(id, tenant))!, status: "awaiting_approval" }), listStepsAfter: (...a) => store.listStepsAfter(...a) },
      t.id,
      "t1",
      null,
    );
    const events = await cursor.next();
    expect(names(events)).toEqual(["step", "awaiting_approval"]);
    expect(ids(events)).toEqual([4, 5]);
  });

  it("resumes after the cursor's event: a reconnect gets exactly what it missed", async () => {
    const t = await running();
    for (let s = 1; s <= 5; s++) await store.appendStep(t.id, t.fence, s % 2 ? llm(s) : tool(s));
    await store.finishTask(t.id, t.fence, { status: "succeeded", result: 1 });
    const all = await new TaskEventCursor(store, t.id, "t1", null).next();
    expect(ids(all)).toEqual([4, 8, 12, 16, 20, 23]);
    for (const [i, e] of all.entries()) {
      const after = await new TaskEventCursor(store, t.id, "t1", e.id ?? null).next();
      expect(after).toEqual(all.slice(i + 1));
    }
  });

  it("answers `reset`, then everything, to a cursor ahead of the task's events", async () => {
    const t = await running();
    await store.appendStep(t.id, t.fence, llm(1));
    const events = await new TaskEventCursor(store, t.id, "t1", 4_000).next();
    expect(names(events)).toEqual(["reset", "step"]);
    expect(events[0]?.id).toBeUndefined();
    expect(ids(events.slice(1))).toEqual([4]);
  });

  it("sees another tenant's task as none", async () => {
    const t = await running();
    await store.appendStep(t.id, t.fence, llm(1));
    const cursor = new TaskEventCursor(store, t.id, "someone-else", null);
    expect(await cursor.next()).toEqual([]);
    expect(cursor.done).toBe(true);
  });

  it("pages through a task longer than one read", async () => {
    const t = await running();
    const n = STREAM_PAGE * 2 + 7;
    for (let s = 1; s <= n; s++) await store.appendStep(t.id, t.fence, s % 2 ? llm(s) : tool(s));
    const events = await new TaskEventCursor(store, t.id, "t1", null).next();
    expect(events).toHaveLength(n);
    expect(events.at(-1)?.id).toBe(stepEventId(n));
  }, 60_000);
});

describe("taskStream - the wire", () => {
  it("reads a cursor only as the id of an event", () => {
    expect(parseCursor(undefined)).toBeNull();
    expect(parseCursor(" ")).toBeNull();
    expect(parseCursor("12")).toBe(12);
    for (const bad of ["-1", "1.5", "abc", "1e3", "9".repeat(16)]) expect(parseCursor(bad)).toBe("invalid");
  });

  it("writes an event as id, event and one data line", () => {
    expect(formatEvent({ id: 8, event: "step", data: { text: "a\nb" } })).toBe('id: 8\nevent: step\ndata: {"text":"a\\nb"}\n\n');
    expect(formatEvent({ event: "reset", data: {} })).toBe("event: reset\ndata: {}\n\n");
  });
});
