/**
 * The group commit of new tasks (src/queue/createBatcher.ts): a lone create goes
 * at once through `createTask`; what arrives while a call is on the wire goes
 * together as one `createTasks`, at the latest after `maxWaitMs` or at `maxBatch`;
 * each caller gets its own item's answer or error, and a call that fails as a
 * whole is sent again item by item; a batch is capped by its serialized size.
 */
import { randomUUID } from "node:crypto";
import { Errors } from "moleculer";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { CreateTaskItem, CreateTaskOutcome, CreateTaskResult, NewTask, TaskRecord } from "../../src/contracts";
import { RateLimitedError, StaleFenceError, ValidationError } from "../../src/errors";
import { CreateBatcher } from "../../src/queue/createBatcher";

const newTask = (): NewTask => ({ id: randomUUID(), agent: "echo", input: "hi", priority: "normal", metadata: {}, prompt_version: "pv-1" });

const resultOf = (task: NewTask, created = true): CreateTaskResult => ({ task: { ...task, status: "queued" } as unknown as TaskRecord, created });

interface Call {
  method: "createTask" | "createTasks";
  items: CreateTaskItem[];
  answer: (outcomes?: CreateTaskOutcome[]) => void;
  fail: (err: unknown) => void;
}

/** A store whose calls wait until the test answers them. */
function heldStore() {
  const calls: Call[] = [];
  const store = {
    createTask: (task: NewTask, idempotencyKey?: string) =>
      new Promise<CreateTaskResult>((resolve, reject) => {
        calls.push({ method: "createTask", items: [idempotencyKey === undefined ? { task } : { task, idempotencyKey }], answer: () => resolve(resultOf(task)), fail: reject });
      }),
    createTasks: (items: readonly CreateTaskItem[]) =>
      new Promise<CreateTaskOutcome[]>((resolve, reject) => {
        calls.push({
          method: "createTasks",
          items: [...items],
          answer: (outcomes) => resolve(outcomes ?? items.map((i) => ({ ok: true as const, result: resultOf(i.task) }))),
          fail: reject,
        });
      }),
  };
  return { store, calls };
}

const settle = <T>(p: Promise<T>) => p.then((value) => ({ value }), (error: unknown) => ({ error }));
const flushMicrotasks = () => new Promise<void>((r) => setImmediate(r));

describe("CreateBatcher", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("sends a lone create at once, through createTask, with no wait", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 1000 });
    const t = newTask();
    const p = b.create(t, "key-1");
    // No timer has run: it went synchronously.
    expect(calls.map((c) => c.method)).toEqual(["createTask"]);
    expect(calls[0]?.items).toEqual([{ task: t, idempotencyKey: "key-1" }]);
    calls[0]?.answer();
    expect((await p).task.id).toBe(t.id);
  });

  it("coalesces what arrives while a call is on the wire into one createTasks, sent when that call comes back", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 1000 });
    const first = b.create(newTask());
    const rest = Array.from({ length: 5 }, () => newTask());
    const later = rest.map((t) => b.create(t));
    expect(calls).toHaveLength(1);
    calls[0]?.answer();
    await first;
    await flushMicrotasks();
    expect(calls.map((c) => c.method)).toEqual(["createTask", "createTasks"]);
    expect(calls[1]?.items.map((i) => i.task.id)).toEqual(rest.map((t) => t.id));
    calls[1]?.answer();
    // Each caller gets its own task.
    expect((await Promise.all(later)).map((r) => r.task.id)).toEqual(rest.map((t) => t.id));
  });

  it("does not hold an item longer than maxWaitMs behind a call that is slow to come back", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 2 });
    void b.create(newTask());
    void b.create(newTask());
    void b.create(newTask());
    expect(calls).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(calls).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(calls.map((c) => [c.method, c.items.length])).toEqual([
      ["createTask", 1],
      ["createTasks", 2],
    ]);
  });

  it("sends a full batch at once, and no more than maxInFlight calls at a time", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxBatch: 3, maxWaitMs: 1000, maxInFlight: 2 });
    const all = Array.from({ length: 10 }, () => b.create(newTask()));
    // 1 alone (nothing on the wire), then a full batch of 3; the rest wait for a call to come back.
    expect(calls.map((c) => c.items.length)).toEqual([1, 3]);
    calls[0]?.answer();
    await flushMicrotasks();
    expect(calls.map((c) => c.items.length)).toEqual([1, 3, 3]);
    calls[1]?.answer();
    calls[2]?.answer();
    await flushMicrotasks();
    expect(calls.map((c) => c.items.length)).toEqual([1, 3, 3, 3]);
    calls[3]?.answer();
    expect(await Promise.all(all)).toHaveLength(10);
  });

  it("answers each item with its own outcome, an error restored as its class, in the order sent", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 1000 });
    void b.create(newTask());
    const [a, bad, c] = [newTask(), newTask(), newTask()];
    const answers = [a, bad, c].map((t, i) => settle(b.create(t, i === 2 ? "k" : undefined)));
    calls[0]?.answer();
    await flushMicrotasks();
    calls[1]?.answer([
      { ok: true, result: resultOf(a) },
      { ok: false, error: { type: "stale_fence", message: "fence moved", data: { id: bad.id } } },
      { ok: true, result: resultOf(a, false) },
    ]);
    const [ra, rbad, rc] = await Promise.all(answers);
    expect(ra).toEqual({ value: resultOf(a) });
    expect((rbad as { error: unknown }).error).toBeInstanceOf(StaleFenceError);
    expect((rbad as { error: StaleFenceError }).error).toMatchObject({ message: "fence moved", data: { id: bad.id } });
    expect(rc).toEqual({ value: resultOf(a, false) });
  });

  it("a call that fails as a whole is sent again item by item: each item gets what its lone createTask answers", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 1000 });
    void b.create(newTask());
    const [x, y] = [newTask(), newTask()];
    const answers = [x, y].map((t) => settle(b.create(t)));
    calls[0]?.answer();
    await flushMicrotasks();
    calls[1]?.fail(new RateLimitedError("busy"));
    await flushMicrotasks();
    expect(calls.slice(2).map((c) => [c.method, c.items[0]?.task.id])).toEqual([
      ["createTask", x.id],
      ["createTask", y.id],
    ]);
    const down = new RateLimitedError("still busy");
    calls[2]?.fail(down);
    calls[3]?.answer();
    expect(await Promise.all(answers)).toEqual([{ error: down }, { value: resultOf(y) }]);
  });

  it("with a checkpoint service that has no createTasks action, every item is answered by its lone createTask", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 1000 });
    void b.create(newTask());
    const tasks = [newTask(), newTask(), newTask()];
    const answers = tasks.map((t, i) => settle(b.create(t, i === 1 ? "key-1" : undefined)));
    calls[0]?.answer();
    await flushMicrotasks();
    expect(calls[1]?.method).toBe("createTasks");
    // What the broker answers for an action no node serves.
    calls[1]?.fail(new Errors.ServiceNotFoundError({ action: "checkpoint.createTasks" }));
    await flushMicrotasks();
    expect(calls.slice(2).map((c) => [c.method, c.items[0]])).toEqual([
      ["createTask", { task: tasks[0] }],
      ["createTask", { task: tasks[1], idempotencyKey: "key-1" }],
      ["createTask", { task: tasks[2] }],
    ]);
    for (const c of calls.slice(2)) c.answer();
    expect((await Promise.all(answers)).map((r) => (r as { value: CreateTaskResult }).value.task.id)).toEqual(tasks.map((t) => t.id));
  });

  it("caps a batch by its serialized size: what would pass the cap goes in the next batch", async () => {
    const { store, calls } = heldStore();
    const sized = (chars: number): NewTask => ({ ...newTask(), input: "x".repeat(chars) });
    const b = new CreateBatcher(store, { maxWaitMs: 1000, maxBatchBytes: 10_000 });
    void b.create(newTask());
    // Each about 3 KB: three fit in 10 KB, a fourth would not. Three make a full batch, sent at once.
    const all = Array.from({ length: 5 }, () => b.create(sized(3_000)));
    expect(calls.map((c) => [c.method, c.items.length])).toEqual([
      ["createTask", 1],
      ["createTasks", 3],
    ]);
    calls[0]?.answer();
    await flushMicrotasks();
    expect(calls.map((c) => [c.method, c.items.length])).toEqual([
      ["createTask", 1],
      ["createTasks", 3],
      ["createTasks", 2],
    ]);
    calls[1]?.answer();
    calls[2]?.answer();
    expect(await Promise.all(all)).toHaveLength(5);
  });

  it("an item bigger than the size cap goes alone, through createTask, even among others", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 1000, maxBatchBytes: 10_000 });
    void b.create(newTask());
    const [small1, big, small2] = [newTask(), { ...newTask(), input: "x".repeat(20_000) }, newTask()];
    const all = [small1, big, small2].map((t) => b.create(t));
    calls[0]?.answer();
    await flushMicrotasks();
    calls[1]?.answer();
    await flushMicrotasks();
    calls[2]?.answer();
    await flushMicrotasks();
    expect(calls.slice(1).map((c) => [c.method, c.items.map((i) => i.task.id)])).toEqual([
      ["createTask", [small1.id]],
      ["createTask", [big.id]],
      ["createTask", [small2.id]],
    ]);
    calls[3]?.answer();
    expect((await Promise.all(all)).map((r) => r.task.id)).toEqual([small1.id, big.id, small2.id]);
  });

  it("a batch refused for its params is sent again item by item, each with its own answer", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 1000 });
    void b.create(newTask());
    const [good, bad] = [newTask(), newTask()];
    const answers = [good, bad].map((t) => settle(b.create(t)));
    calls[0]?.answer();
    await flushMicrotasks();
    calls[1]?.fail(new ValidationError("invalid params"));
    await flushMicrotasks();
    expect(calls.slice(2).map((c) => [c.method, c.items[0]?.task.id])).toEqual([
      ["createTask", good.id],
      ["createTask", bad.id],
    ]);
    calls[2]?.answer();
    calls[3]?.fail(new ValidationError("this one"));
    const [rg, rb] = await Promise.all(answers);
    expect(rg).toEqual({ value: resultOf(good) });
    expect((rb as { error: Error }).error.message).toBe("this one");
  });

  it("with nothing on the wire again, the next lone create goes at once", async () => {
    const { store, calls } = heldStore();
    const b = new CreateBatcher(store, { maxWaitMs: 1000 });
    const p = b.create(newTask());
    calls[0]?.answer();
    await p;
    await flushMicrotasks();
    void b.create(newTask());
    expect(calls.map((c) => c.method)).toEqual(["createTask", "createTask"]);
  });
});
