/**
 * The store's group commit, `createTasks`, on PGlite (always) and Postgres (when
 * reachable): the items without an idempotency key are committed in one statement,
 * and every item is answered, in its place, with what a lone `createTask` of it
 * answers: its task, the task its idempotency key already names, or its own error.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreateTaskOutcome, NewTask } from "../../src/contracts";
import type pg from "pg";
import { PgTaskStore } from "../../src/store/pgTaskStore";
import { storeBackends, type OpenedBackend, type StoreBackend } from "../helpers/storeBackends";

const backends = storeBackends({ max: 4 });

const newTask = (over: Partial<NewTask> = {}): NewTask => ({
  id: randomUUID(),
  agent: "order-router",
  input: { order_id: "ORD-1001" },
  priority: "normal",
  metadata: {},
  prompt_version: "pv-1",
  ...over,
});

function created(o: CreateTaskOutcome | undefined): { id: string; created: boolean; created_at: string } {
  if (!o?.ok) throw new Error(`expected a task, got ${JSON.stringify(o)}`);
  return { id: o.result.task.id, created: o.result.created, created_at: o.result.task.created_at };
}

function batchContract(backend: StoreBackend): void {
  let db: OpenedBackend;
  let store: PgTaskStore;

  beforeAll(async () => {
    db = await backend.open();
    store = db.store;
  });
  afterAll(async () => {
    await db?.dispose();
  });

  it("commits the items without a key in one statement and answers each in its place", async () => {
    const tasks = Array.from({ length: 5 }, (_, i) => newTask({ input: { n: i }, priority: i === 2 ? "high" : "normal", tenant: i === 4 ? "acme" : undefined }));
    const outcomes = await store.createTasks(tasks.map((task) => ({ task })));
    expect(outcomes.map((o) => created(o).id)).toEqual(tasks.map((t) => t.id));
    expect(outcomes.every((o) => created(o).created)).toBe(true);
    // One statement: one transaction, whose now() every row's created_at is.
    expect(new Set(outcomes.map((o) => created(o).created_at)).size).toBe(1);
    for (const [i, t] of tasks.entries()) {
      const stored = await store.getTask(t.id);
      expect(stored).toEqual(outcomes[i]?.ok ? outcomes[i].result.task : undefined);
      expect(stored).toMatchObject({ status: "queued", input: { n: i }, priority: t.priority, tenant: t.tenant ?? "default" });
    }
  });

  it("items with one idempotency key: the first is created, the later ones answer it with created false", async () => {
    const key = `batch-${randomUUID()}`;
    const [a, b, c, d] = [newTask(), newTask({ input: "different" }), newTask(), newTask()];
    const outcomes = await store.createTasks([{ task: a, idempotencyKey: key }, { task: c }, { task: b, idempotencyKey: key }, { task: d, idempotencyKey: key }]);
    const [first, plain, second, third] = outcomes.map(created);
    expect(first).toMatchObject({ id: a.id, created: true });
    expect(plain).toMatchObject({ id: c.id, created: true });
    expect(second).toMatchObject({ id: a.id, created: false });
    expect(third).toMatchObject({ id: a.id, created: false });
    expect(await store.getTask(b.id)).toBeNull();
    expect(await store.getTask(d.id)).toBeNull();
    expect((await store.taskByIdempotencyKey(key, "default"))?.id).toBe(a.id);
  });

  it("a key already stored answers its task, as createTask does; the same key of another tenant is another key", async () => {
    const key = `stored-${randomUUID()}`;
    const earlier = await store.createTask(newTask(), key);
    const [mine, theirs] = [newTask(), newTask({ tenant: "acme" })];
    const outcomes = await store.createTasks([{ task: mine, idempotencyKey: key }, { task: theirs, idempotencyKey: key }]);
    expect(outcomes[0]).toEqual({ ok: true, result: { task: earlier.task, created: false } });
    expect(created(outcomes[1])).toMatchObject({ id: theirs.id, created: true });
    expect(await store.getTask(mine.id)).toBeNull();
  });

  it("one bad item gets its own error; the others are committed", async () => {
    const existing = newTask();
    await store.createTask(existing);
    const [good1, good2] = [newTask(), newTask()];
    // A task id already taken: the unique constraint refuses that row, as it refuses a lone createTask of it.
    const lone = await store.createTask({ ...newTask(), id: existing.id }).then(
      () => undefined,
      (err: unknown) => err as { type?: string; message?: string },
    );
    const outcomes = await store.createTasks([{ task: good1 }, { task: { ...newTask(), id: existing.id } }, { task: good2 }]);
    expect(created(outcomes[0]).id).toBe(good1.id);
    expect(created(outcomes[2]).id).toBe(good2.id);
    expect(outcomes[1]).toMatchObject({ ok: false, error: { type: lone?.type, message: lone?.message } });
    expect(lone?.type).toBe("internal_error");
    expect(await store.getTask(good1.id)).not.toBeNull();
    expect(await store.getTask(good2.id)).not.toBeNull();
  });

  it("an input JSON cannot write is that item's ValidationError", async () => {
    const good = newTask();
    const outcomes = await store.createTasks([{ task: newTask({ input: { n: 10n } }) }, { task: good }]);
    expect(outcomes[0]).toMatchObject({ ok: false, error: { type: "validation_error" } });
    expect(created(outcomes[1]).id).toBe(good.id);
  });
}

for (const backend of backends) {
  describe.skipIf(!backend.ready)(`createTasks on ${backend.name}`, () => batchContract(backend));
}

describe("createTasks when the batched insert fails", () => {
  /** A store over a pool whose every query fails with `err`, counting the queries. */
  function failingStore(err: Error): { store: PgTaskStore; queries: () => number } {
    let n = 0;
    const pool = {
      query: () => {
        n++;
        return Promise.reject(err);
      },
    } as unknown as pg.Pool;
    return { store: new PgTaskStore(pool), queries: () => n };
  }

  it("an error of the database, not of an item (the connection lost), is every item's, with no insert tried again per item", async () => {
    const { store, queries } = failingStore(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }));
    const outcomes = await store.createTasks([{ task: newTask() }, { task: newTask() }, { task: newTask() }]);
    expect(outcomes.map((o) => (o.ok ? "ok" : o.error.type))).toEqual(["unavailable", "unavailable", "unavailable"]);
    expect(queries()).toBe(1);
  });

  it("a constraint error is some item's: each item is inserted alone", async () => {
    const { store, queries } = failingStore(Object.assign(new Error("duplicate key value violates unique constraint"), { code: "23505" }));
    const outcomes = await store.createTasks([{ task: newTask() }, { task: newTask() }, { task: newTask() }]);
    expect(outcomes.every((o) => !o.ok)).toBe(true);
    expect(queries()).toBe(4);
  });
});
