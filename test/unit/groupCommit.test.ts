/**
 * The group commit's policy (src/store/groupCommit.ts) beyond what the intake's
 * batcher tests show (test/unit/createBatcher.test.ts): an item a batch answers
 * `alone` is sent alone after the batch's other items are answered; an item whose
 * key is on the wire waits for that write; a batch that
 * fails as a whole is told (a hook that
 * throws changes nothing) and sent item by item; `drain` answers everything
 * submitted; and the store's checkpoints (src/store/pgTaskStore.ts) answer a batch
 * whose connection was lost with the lone write's error, without sending each
 * again, while one the database refused (a timeout) goes item by item.
 */
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors";
import { GroupCommit, type ItemOutcome } from "../../src/store/groupCommit";
import { PgTaskStore } from "../../src/store/pgTaskStore";

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A group commit of "task/step" items keyed by their task, recording its batches: `held`'s lone write waits
 * for `first`, every other goes at once; a batch answers every item.
 */
function keyedByTask(held: string, opts: { maxBatch?: number; maxWaitMs: number }) {
  const first = deferred<string>();
  const batches: string[][] = [];
  const commits = new GroupCommit<string, string>(
    {
      operation: "test",
      one: (item) => (item === held ? first.promise : Promise.resolve(`lone ${item}`)),
      many: async (items) => {
        batches.push([...items]);
        return items.map((i): ItemOutcome<string> => ({ ok: true, result: `batched ${i}` }));
      },
      keyOf: (item) => item.split("/")[0] as string,
    },
    opts,
  );
  return { first, batches, commits };
}

describe("GroupCommit", () => {
  it("answers a batch's items first, then sends alone the ones it answered so", async () => {
    const lone = new Map<string, ReturnType<typeof deferred<string>>>();
    const first = deferred<string>();
    const commits = new GroupCommit<string, string>({
      operation: "test",
      one: (item) => {
        if (item === "a") return first.promise;
        const d = deferred<string>();
        lone.set(item, d);
        return d.promise;
      },
      many: async (items) => items.map((i): ItemOutcome<string> => (i === "c" ? { alone: true } : { ok: true, result: `batched ${i}` })),
    });
    const answered: string[] = [];
    const all = ["a", "b", "c", "d"].map((i) => commits.submit(i).then((r) => void answered.push(r)));
    first.resolve("alone a");
    await expect.poll(() => answered).toEqual(["alone a", "batched b", "batched d"]);
    await expect.poll(() => lone.has("c")).toBe(true);
    lone.get("c")?.resolve("alone c");
    await Promise.all(all);
    expect(answered).toEqual(["alone a", "batched b", "batched d", "alone c"]);
  });

  it("tells of a batch that failed as a whole and sends its items one by one", async () => {
    const failures: Array<[string, number]> = [];
    const sent: string[] = [];
    const commits = new GroupCommit<string, string>({
      operation: "test",
      one: async (item) => {
        sent.push(item);
        if (item === "y") throw new Error("y refused");
        return `lone ${item}`;
      },
      many: async () => {
        throw new Error("batch refused");
      },
      onBatchFailed: (err, n) => failures.push([(err as Error).message, n]),
    });
    const results = await Promise.allSettled(["w", "x", "y", "z"].map((i) => commits.submit(i)));
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual(["lone w", "lone x", "y refused", "lone z"]);
    expect(failures).toEqual([["batch refused", 3]]);
    expect(sent.sort()).toEqual(["w", "x", "y", "z"]);
  });

  it("a hook that throws does not keep a failed batch's items from their lone writes, nor drain from ending", async () => {
    const commits = new GroupCommit<string, string>({
      operation: "test",
      one: async (item) => `lone ${item}`,
      many: async () => {
        throw new Error("batch refused");
      },
      onBatchFailed: () => {
        throw new Error("the hook broke");
      },
    });
    const all = Promise.all(["p", "q", "r"].map((i) => commits.submit(i)));
    await commits.drain();
    await expect(all).resolves.toEqual(["lone p", "lone q", "lone r"]);
  });

  it("measures only the items that wait: one sent alone at once is not sized", async () => {
    const sized: string[] = [];
    const first = deferred<string>();
    const commits = new GroupCommit<string, string>({
      operation: "test",
      one: (item) => (item === "a" ? first.promise : Promise.resolve(`lone ${item}`)),
      many: async (items) => items.map((i): ItemOutcome<string> => ({ ok: true, result: `batched ${i}` })),
      sizeOf: (item) => {
        sized.push(item);
        return 1;
      },
    });
    const a = commits.submit("a");
    const waiting = [commits.submit("b"), commits.submit("c")];
    expect(sized).toEqual(["b", "c"]);
    first.resolve("lone a");
    expect(await Promise.all([a, ...waiting])).toEqual(["lone a", "batched b", "batched c"]);
    // Idle again (the batch has given back its place on the wire): the next one goes alone, unmeasured.
    await commits.drain();
    expect(await commits.submit("d")).toBe("lone d");
    expect(sized).toEqual(["b", "c"]);
  });

  it("an item whose key is on the wire waits for that write, past maxWaitMs, and then goes with the others that waited for it", async () => {
    // Items are "task/step": the key is the task. a/1 holds task a's row until it is answered.
    const { first, batches, commits } = keyedByTask("a/1", { maxWaitMs: 1 });
    const answered: string[] = [];
    const all = ["a/1", "a/2", "b/1", "a/3", "c/1"].map((i) => commits.submit(i).then((r) => void answered.push(r)));
    // The others' write goes after maxWaitMs without a's: b's and c's go together, a/1 still on the wire.
    await expect.poll(() => batches).toEqual([["b/1", "c/1"]]);
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).toEqual(["batched b/1", "batched c/1"]);
    first.resolve("lone a/1");
    await Promise.all(all);
    expect(batches).toEqual([["b/1", "c/1"], ["a/2", "a/3"]]);
    expect(answered).toEqual(["batched b/1", "batched c/1", "lone a/1", "batched a/2", "batched a/3"]);
  });

  it("a key is on the wire until its own item is answered, not until its batch's lone re-sends of other keys are", async () => {
    // x/1's row is held elsewhere: the batch answers it `alone`, and its lone write waits.
    const xAlone = deferred<string>();
    const first = deferred<string>();
    const commits = new GroupCommit<string, string>(
      {
        operation: "test",
        one: (item) => (item === "x/1" ? xAlone.promise : item === "z/1" ? first.promise : Promise.resolve(`lone ${item}`)),
        many: async (items) => items.map((i): ItemOutcome<string> => (i === "x/1" ? { alone: true } : { ok: true, result: `batched ${i}` })),
        keyOf: (item) => item.split("/")[0] as string,
      },
      { maxWaitMs: 1 },
    );
    const z = commits.submit("z/1");
    const a1 = commits.submit("a/1");
    const x = commits.submit("x/1");
    first.resolve("lone z/1");
    expect(await a1).toBe("batched a/1");
    // a/1 is answered; x/1's lone write still waits. a's next checkpoint goes without waiting for x's.
    let a2: string | undefined;
    void commits.submit("a/2").then((r) => (a2 = r));
    await expect.poll(() => a2).toMatch(/a\/2$/);
    xAlone.resolve("lone x/1");
    expect(await Promise.all([z, x])).toEqual(["lone z/1", "lone x/1"]);
  });

  it("held items do not fill a batch: the others wait for maxWaitMs and go together", async () => {
    const { first, batches, commits } = keyedByTask("a/0", { maxBatch: 3, maxWaitMs: 20 });
    const all = ["a/0", "a/1", "a/2", "a/3", "b/1", "c/1"].map((i) => commits.submit(i));
    // Three of a's wait behind a/0: were they counted, b/1 and c/1 would each go at once, alone.
    await expect.poll(() => batches).toEqual([["b/1", "c/1"]]);
    first.resolve("lone a/0");
    await Promise.all(all);
    expect(batches).toEqual([["b/1", "c/1"], ["a/1", "a/2", "a/3"]]);
  });

  it("drain answers every item submitted, those still waiting included", async () => {
    const commits = new GroupCommit<number, number>(
      { operation: "test", one: async (n) => n, many: async (items) => items.map((n) => ({ ok: true, result: -n })) },
      { maxInFlight: 1, maxWaitMs: 60_000, maxBatch: 2 },
    );
    const answers: number[] = [];
    for (let n = 1; n <= 7; n++) void commits.submit(n).then((r) => answers.push(r));
    await commits.drain();
    expect(answers.sort((a, b) => a - b)).toEqual([-7, -6, -5, -4, -3, -2, 1]);
  });
});

describe("checkpoints committed together - a batch that fails", () => {
  const ids = ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"];
  const step = (id: string) => ({ step: 1, kind: "tool" as const, data: { tool: "t", tool_use_id: "tu", input: {}, output: {}, ok: true, duration_ms: 1, idempotency_key: `${id}:1` } });

  /** Three checkpoints through a store whose pool answers every one-row statement and fails the batch with `batchError`. */
  async function run(batchError: Error): Promise<{ results: PromiseSettledResult<unknown>[]; texts: string[]; failures: number[] }> {
    const texts: string[] = [];
    const failures: number[] = [];
    const pool = {
      query: async (text: string) => {
        texts.push(text);
        if (/unnest/.test(text)) throw batchError;
        return { rows: [{ step: 1 }], rowCount: 1 };
      },
    } as unknown as pg.Pool;
    const store = new PgTaskStore(pool, { groupCommit: true, onBatchFailed: (_err, items) => failures.push(items) });
    const results = await Promise.allSettled(ids.map((id) => store.appendStep(id, 1, step(id))));
    return { results, texts, failures };
  }

  it("answers every checkpoint of a batch whose connection failed with the lone write's error, not sending each again", async () => {
    const { results, texts, failures } = await run(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }));
    expect(failures).toEqual([2]);
    expect(results[0]?.status).toBe("fulfilled");
    expect(results.slice(1).map((r) => r.status === "rejected" && r.reason instanceof UnavailableError)).toEqual([true, true]);
    // The first alone, then the one batch: nothing sent again.
    expect(texts).toHaveLength(2);
  });

  it("sends each checkpoint of a batch the database refused (a statement timeout: nothing written) again alone", async () => {
    const { results, texts, failures } = await run(Object.assign(new Error("canceling statement due to statement timeout"), { code: "57014" }));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    expect(texts.filter((t) => /unnest/.test(t))).toHaveLength(1);
    expect(texts).toHaveLength(4);
    expect(failures).toEqual([2]);
  });
});
