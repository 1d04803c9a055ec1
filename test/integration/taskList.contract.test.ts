/**
 * task list - `listTasks`, the store's side of `GET /v1/tasks`, against PGlite
 * and a real Postgres: one tenant's tasks, newest first, filtered, and paged by
 * keyset so that every task is read exactly once, even tasks created in the same
 * millisecond or the same microsecond, and even while new tasks arrive.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { NewTask, TaskListQuery } from "../../src/contracts";
import { ValidationError } from "../../src/errors";
import { openStore, type OpenedStore } from "../../src/store";
import { taskListQueryOf } from "../../src/api/taskList";
import { decodeCursor, encodeCursor } from "../../src/store/taskList";
import { rejection } from "../helpers/rejection";
import { createTestDatabase, hasService, type TestDatabase } from "../helpers/services";

const newTask = (over: Partial<NewTask> = {}): NewTask => ({
  id: randomUUID(),
  agent: "order-router",
  input: { order_id: "ORD-1" },
  priority: "normal",
  metadata: {},
  prompt_version: "pv-1",
  tenant: "acme",
  ...over,
});

function taskListContract(open: () => Promise<OpenedStore & { dispose(): Promise<void> }>): void {
  let db: OpenedStore & { dispose(): Promise<void> };

  beforeAll(async () => {
    db = await open();
  }, 120_000);
  afterAll(async () => {
    await db?.dispose();
  });
  beforeEach(async () => {
    // CASCADE: whatever else refers to tasks (later migrations) goes with them.
    await db.pool.query("TRUNCATE tasks CASCADE");
  });

  /** Creates tasks and sets each one's created_at (SQL text) so that the order under test is exact. */
  async function tasksAt(instants: readonly string[], over: Partial<NewTask> = {}): Promise<string[]> {
    const ids: string[] = [];
    for (const at of instants) {
      const t = newTask(over);
      await db.store.createTask(t);
      await db.pool.query("UPDATE tasks SET created_at = $2::timestamptz WHERE id = $1", [t.id, at]);
      ids.push(t.id);
    }
    return ids;
  }

  /** Every page of `q`, in order. */
  async function allPages(q: Omit<TaskListQuery, "cursor">): Promise<string[][]> {
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await db.store.listTasks({ ...q, ...(cursor !== undefined ? { cursor } : {}) });
      pages.push(page.tasks.map((t) => t.id));
      cursor = page.next_cursor ?? undefined;
      if (pages.length > 100) throw new Error("paging does not end");
    } while (cursor !== undefined);
    return pages;
  }

  it("lists one tenant's tasks, newest first, as summaries without input or result", async () => {
    const [older, newer] = await tasksAt(["2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z"]);
    await tasksAt(["2025-01-01T00:00:03Z"], { tenant: "other" });
    const page = await db.store.listTasks({ tenant: "acme", limit: 10 });
    expect(page.tasks.map((t) => t.id)).toEqual([newer, older]);
    expect(page.next_cursor).toBeNull();
    expect(page.tasks[0]).toMatchObject({ agent: "order-router", status: "queued", priority: "normal", tenant: "acme", created_at: "2025-01-01T00:00:02.000Z" });
    expect(page.tasks[0]).not.toHaveProperty("input");
    expect(page.tasks[0]).not.toHaveProperty("result");
  });

  it("pages through tasks created in the same millisecond and the same microsecond, each exactly once, in order", async () => {
    // Five in one millisecond, apart only by microseconds; three more sharing one microsecond (the id breaks the tie).
    const sameMs = await tasksAt(["2025-01-01T00:00:00.123001Z", "2025-01-01T00:00:00.123002Z", "2025-01-01T00:00:00.123003Z", "2025-01-01T00:00:00.123004Z", "2025-01-01T00:00:00.123005Z"]);
    const sameUs = await tasksAt(["2025-01-01T00:00:00.124000Z", "2025-01-01T00:00:00.124000Z", "2025-01-01T00:00:00.124000Z"]);
    const expected = [...[...sameUs].sort().reverse(), ...[...sameMs].reverse()];
    for (const limit of [1, 2, 3, 8, 9]) {
      const pages = await allPages({ tenant: "acme", limit });
      expect(pages.flat(), `limit ${limit}`).toEqual(expected);
      expect(pages.every((p) => p.length <= limit)).toBe(true);
      // A last page that is exactly full says so: no empty page after it.
      expect(pages.at(-1)?.length, `limit ${limit}`).toBeGreaterThan(0);
    }
  });

  it("filters by status and agent, and pages within the filter", async () => {
    const routers = await tasksAt(["2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z", "2025-01-01T00:00:03Z"]);
    await tasksAt(["2025-01-01T00:00:04Z"], { agent: "echo" });
    const claimed = await db.store.claimTask(routers[1] as string, "test");
    await db.store.finishTask(routers[1] as string, claimed?.fence ?? -1, { status: "failed", error: { type: "tool_error", message: "x" } });

    expect((await allPages({ tenant: "acme", agent: "order-router", limit: 1 })).flat()).toEqual([...routers].reverse());
    expect((await allPages({ tenant: "acme", status: "queued", limit: 1 })).flat()).toHaveLength(3);
    const failed = await db.store.listTasks({ tenant: "acme", status: "failed", limit: 10 });
    expect(failed.tasks.map((t) => [t.id, t.status, t.error?.type])).toEqual([[routers[1], "failed", "tool_error"]]);
    expect((await db.store.listTasks({ tenant: "acme", agent: "echo", status: "failed", limit: 10 })).tasks).toEqual([]);
  });

  it("neither repeats nor skips a task when new ones are submitted between pages", async () => {
    const old = await tasksAt(["2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z", "2025-01-01T00:00:03Z", "2025-01-01T00:00:04Z"]);
    const first = await db.store.listTasks({ tenant: "acme", limit: 2 });
    await db.store.createTask(newTask());
    await db.store.createTask(newTask());
    const second = await db.store.listTasks({ tenant: "acme", limit: 2, cursor: first.next_cursor ?? "" });
    expect([...first.tasks, ...second.tasks].map((t) => t.id)).toEqual([...old].reverse());
    expect(second.next_cursor).toBeNull();
  });

  it.each([
    ["not base64 of a cursor", "not-a-cursor"],
    ["a millisecond instant", encodeCursor("2025-01-01T00:00:00.123Z", randomUUID())],
    ["an id that is not a task id", encodeCursor("2025-01-01T00:00:00.123000Z", "x'; DROP TABLE tasks; --")],
  ])("refuses %s as the cursor with a ValidationError naming the field", async (_what, cursor) => {
    const err = await rejection(db.store.listTasks({ tenant: "acme", limit: 5, cursor }));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).data).toMatchObject({ field: "cursor" });
  });
}

describe("task list - query and cursor", () => {
  it("round-trips the instant to the microsecond and the id", () => {
    const id = randomUUID();
    expect(decodeCursor(encodeCursor("2025-06-30T23:59:59.999999Z", id))).toEqual({ createdUs: "2025-06-30T23:59:59.999999Z", id });
  });

  it("reads the query string for the caller's tenant, with 50 tasks a page unless it says otherwise", () => {
    expect(taskListQueryOf(undefined, "acme")).toEqual({ tenant: "acme", limit: 50 });
    expect(taskListQueryOf({ status: "failed", agent: "echo", limit: "7", cursor: "abc" }, "acme")).toEqual({ tenant: "acme", status: "failed", agent: "echo", limit: 7, cursor: "abc" });
  });

  it.each([
    ["an unknown status", { status: "sleeping" }, /status/],
    ["a limit of 0", { limit: "0" }, /limit/],
    ["a limit over 1000", { limit: "1001" }, /limit/],
    ["a limit that is not a number", { limit: "ten" }, /limit/],
    ["a parameter it does not know (a typo must not list everything)", { stauts: "failed" }, /stauts/],
    ["a status given twice", { status: ["failed", "queued"] }, /status/],
  ])("refuses %s with a ValidationError", (_what, query, message) => {
    expect(() => taskListQueryOf(query, "acme")).toThrow(ValidationError);
    expect(() => taskListQueryOf(query, "acme")).toThrow(message);
  });
});

describe("task list - listTasks (PGlite)", () => {
  taskListContract(async () => {
    const opened = await openStore({ dataDir: "memory://" });
    return { ...opened, dispose: () => opened.close() };
  });
});

describe.skipIf(!hasService("postgres"))("task list - listTasks (Postgres)", () => {
  let testDb: TestDatabase | undefined;
  taskListContract(async () => {
    testDb = await createTestDatabase();
    const opened = await openStore({ databaseUrl: testDb.url, max: 2 });
    return {
      ...opened,
      async dispose() {
        await opened.close();
        await testDb?.drop();
      },
    };
  });

  it("reads a page from the tenant/created_at/id index without sorting the tenant's tasks", async () => {
    const db = await createTestDatabase();
    const opened = await openStore({ databaseUrl: db.url, max: 1 });
    try {
      const client = await opened.pool.connect();
      try {
        // With few rows the planner rightly prefers a scan and a sort: forbid the scan to see which index serves.
        await client.query("SET enable_seqscan = off");
        const plan = (await client.query<{ "QUERY PLAN": string }>(
          `EXPLAIN SELECT id FROM tasks WHERE tenant = 'acme' AND (created_at, id) < (now(), '${randomUUID()}'::uuid) ORDER BY created_at DESC, id DESC LIMIT 51`,
        )).rows.map((r) => r["QUERY PLAN"]).join("\n");
        expect(plan).toContain("tasks_tenant_created_id_idx");
        expect(plan).not.toMatch(/\bSort\b/);
      } finally {
        client.release();
      }
    } finally {
      await opened.close();
      await db.drop();
    }
  });
});
