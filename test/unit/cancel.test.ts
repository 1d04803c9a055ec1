/**
 * cancel - a task cancelled while a planner runs it: the attempt's own calls are
 * aborted (and no other attempt's), no model or tool call starts once the planner
 * has taken the abort, the attempt ends without a write and is never retried, and
 * the aborted model call's input is still charged to the task. Intake's side
 * answers 404/409 as the contract says, tells the planner that runs the task, and
 * emits `clawfleet.task.cancelled` once. Real store (PGlite in memory), real
 * leases, real tool registry.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { ServiceBroker } from "moleculer";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import { TaskWorker, type WakeUpOutcome } from "../../src/agent/taskWorker";
import { AttemptCancel, Canceller, RecentIds, cancelBodyOf } from "../../src/cancel";
import { TASK_EVENT_SCHEMAS, TaskCancelledControlSchema } from "../../src/contracts";
import type { CompleteRequest, TaskCancelledControl, TaskEventName, TaskRecord, ToolCall, ToolResult, WakeUp } from "../../src/contracts";
import { LeaseLostError, TaskCancelledError, TaskFinishedError, TaskNotFoundError, ValidationError } from "../../src/errors";
import { MemoryLeaseManager } from "../../src/lease/memory";
import type { LlmClient } from "../../src/llm/client";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse, type ScriptedTurn } from "../../src/llm/scriptedModel";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { ToolRegistry } from "../../src/tools/registry";
import type { ToolRunner } from "../../src/tools/tool";
import { useMemoryStore } from "../helpers/memoryStore";

const AGENT = parseAgentFile(
  ["---", "name: slow-worker", "tools: [lookup]", "tiers:", "  main:", "    model: claude-haiku-4-5", "    max_tokens: 256", "default_tier: main", "---", "Look things up."].join("\n"),
  "inline:slow-worker.md",
);

const lookupTurn: ScriptedTurn = { content: [toolUse("tu_1", "lookup", { q: "x" })] };
const finalTurn: ScriptedTurn = { content: [text("done")] };

let store: PgTaskStore;
useMemoryStore((s) => (store = s), { failQueuedBeforeEach: true });

const quiet = { info: () => undefined, warn: () => undefined };

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** `lookup`, run in process; every start is recorded. */
function lookupTools(): { registry: ToolRegistry; starts: string[] } {
  const starts: string[] = [];
  const registry = new ToolRegistry().register({
    name: "lookup",
    description: "looks a thing up",
    sideEffect: false,
    input: z.object({ q: z.string() }),
    run: async (input, ctx) => {
      starts.push(ctx.idempotencyKey);
      return { found: input.q };
    },
  });
  return { registry, starts };
}

/**
 * A model whose calls last until their signal aborts (`honour: false`: until `answer()`, whatever the signal
 * says, as a provider's answer already on its way would).
 */
function hangingModel(opts: { honour: boolean } = { honour: true }) {
  const calls: Array<{ req: CompleteRequest; signal: AbortSignal | undefined }> = [];
  const started = gate();
  let answer: (turn: ScriptedTurn) => void = () => undefined;
  const llm: LlmClient = {
    complete: (req, signal) =>
      new Promise((resolve, reject) => {
        calls.push({ req, signal });
        answer = (turn) => resolve(new ScriptedModel([turn]).complete(req));
        if (opts.honour) signal?.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
        started.open();
      }),
  };
  return { llm, calls, started: started.wait, answer: (turn: ScriptedTurn) => answer(turn) };
}

function worker(llm: LlmClient, tools: ToolRunner & Partial<Pick<ToolRegistry, "specs">>, wakeUps: WakeUp[] = [], s: PgTaskStore = store): TaskWorker {
  return new TaskWorker(
    {
      store: s,
      leases: new MemoryLeaseManager(),
      agents: new AgentCatalog([AGENT]),
      llm,
      tools,
      toolSpecs: async (agent) => (tools.specs ? tools.specs(agent.tools) : lookupTools().registry.specs(agent.tools)),
      prices: new PriceTable(),
      logger: quiet,
      wakeUps: { publish: async (w) => void wakeUps.push(w) },
      retry: { baseDelayMs: 1, maxDelayMs: 5, maxProviderRetries: 1 },
    },
    { owner: "planner-a", leaseTtlMs: 5_000, leaseRenewMs: 60_000, maxAttempts: 3, defaultMaxSteps: 20, now: () => 0, retryBackoff: { baseMs: 0, maxMs: 0 } },
  );
}

async function newTask(tenant?: string): Promise<string> {
  const id = randomUUID();
  await store.createTask({ id, agent: "slow-worker", input: "look", priority: "normal", metadata: {}, prompt_version: "test", ...(tenant ? { tenant } : {}) });
  return id;
}

async function getTask(id: string): Promise<TaskRecord> {
  const t = await store.getTask(id);
  if (!t) throw new Error(`task ${id} vanished`);
  return t;
}

/** What intake does: the store's cancel, then the planner's abort. */
async function cancelOn(w: TaskWorker, id: string): Promise<void> {
  const r = await store.cancelTask(id, undefined, "test", "no longer needed");
  expect(r.outcome).toBe("cancelled");
  w.abortTask(id, "no longer needed");
}

describe("cancel - the planner's attempt", () => {
  it("cancel - a model call in flight is aborted with the cancel; the attempt ends cancelled, writes nothing and is not retried; its input is charged", async () => {
    const id = await newTask();
    const model = hangingModel();
    const { registry, starts } = lookupTools();
    const wakeUps: WakeUp[] = [];
    const w = worker(model.llm, registry, wakeUps);

    const handled = w.handle(id);
    await model.started;
    await cancelOn(w, id);
    expect(await handled).toBe<WakeUpOutcome>("cancelled");

    expect(model.calls).toHaveLength(1);
    expect(model.calls[0]?.signal?.aborted).toBe(true);
    expect(model.calls[0]?.signal?.reason).toBeInstanceOf(TaskCancelledError);
    expect(starts).toEqual([]);
    const task = await getTask(id);
    // Still cancelled (not released back to the queue, not failed), its attempt not given back, nothing checkpointed.
    expect(task).toMatchObject({ status: "cancelled", attempts: 1, steps: 0, error: null, cancelled_by: "test", cancel_reason: "no longer needed" });
    expect(await store.listSteps(id)).toEqual([]);
    expect(task.usage.input_tokens).toBeGreaterThan(0);
    expect(task.usage.output_tokens).toBe(0);
    expect(wakeUps).toEqual([]);
    expect(w.activeTasks).toBe(0);
  });

  it("cancel - a tool call in flight is asked to stop through the attempt's call signal; its result is not checkpointed and no model call follows", async () => {
    const id = await newTask();
    const model = new ScriptedModel([lookupTurn, finalTurn]);
    const toolStarted = gate();
    const signals: Array<AbortSignal | undefined> = [];
    const tools: ToolRunner = {
      run: (_call: ToolCall, signal?: AbortSignal) =>
        new Promise<ToolResult>((_resolve, reject) => {
          signals.push(signal);
          signal?.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
          toolStarted.open();
        }),
    };
    const w = worker(model, Object.assign(tools, { specs: (names: readonly string[]) => lookupTools().registry.specs(names) }));

    const handled = w.handle(id);
    await toolStarted.wait;
    await cancelOn(w, id);
    expect(await handled).toBe("cancelled");

    expect(signals[0]?.aborted).toBe(true);
    expect(model.requests).toHaveLength(1);
    expect((await store.listSteps(id)).map((s) => `${s.step}:${s.kind}`)).toEqual(["1:llm"]);
    expect(await getTask(id)).toMatchObject({ status: "cancelled", steps: 1 });
  });

  it("cancel - a model answer that arrives after the abort starts none of the tools it asks for, and its usage is still charged", async () => {
    const id = await newTask();
    const model = hangingModel({ honour: false });
    const { registry, starts } = lookupTools();
    const w = worker(model.llm, registry);

    const handled = w.handle(id);
    await model.started;
    await cancelOn(w, id);
    // The provider's answer was already on its way: a tool_use the attempt must not act on.
    model.answer({ content: [toolUse("tu_late", "lookup", { q: "late" })], usage: { input_tokens: 321, output_tokens: 45 } });
    expect(await handled).toBe("cancelled");

    expect(starts).toEqual([]);
    expect(await store.listSteps(id)).toEqual([]);
    expect((await getTask(id)).usage).toMatchObject({ input_tokens: 321, output_tokens: 45 });
  });

  it("cancel - an abort that comes between the claim and the attempt's start is kept: the attempt makes no call at all", async () => {
    const id = await newTask();
    const model = new ScriptedModel([lookupTurn, finalTurn]);
    const { registry, starts } = lookupTools();
    const ref: { w?: TaskWorker } = {};
    // The claim commits, then the cancel and its abort land before the attempt is registered.
    const racing = Object.assign(Object.create(store) as PgTaskStore, {
      claimNext: async (...args: Parameters<PgTaskStore["claimNext"]>) => {
        const claim = await store.claimNext(...args);
        if (claim) await cancelOn(ref.w as TaskWorker, claim.task.id);
        return claim;
      },
    });
    const w = (ref.w = worker(model, registry, [], racing));

    expect(await w.handle(id)).toBe("cancelled");
    expect(model.requests).toHaveLength(0);
    expect(starts).toEqual([]);
    expect(await getTask(id)).toMatchObject({ status: "cancelled", steps: 0 });
  });

  it("cancel - only the cancelled task's calls are aborted: another attempt of the same planner runs on to success", async () => {
    const [victim, other] = [await newTask(), await newTask()];
    const calls: Array<{ taskId: string; signal: AbortSignal | undefined }> = [];
    const bothStarted = gate();
    const release = gate();
    const llm: LlmClient = {
      complete: async (req, signal) => {
        calls.push({ taskId: req.taskId, signal });
        if (calls.length === 2) bothStarted.open();
        await new Promise<void>((resolve, reject) => {
          void release.wait.then(resolve);
          signal?.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
        });
        return new ScriptedModel([finalTurn]).complete(req);
      },
    };
    const { registry } = lookupTools();
    const w = worker(llm, registry);

    const handled = [w.handle(victim), w.handle(other)];
    await bothStarted.wait;
    const victimId = calls[0]?.taskId as string;
    const otherId = calls[1]?.taskId as string;
    await cancelOn(w, victimId);
    release.open();
    expect(await Promise.all(handled)).toEqual(expect.arrayContaining(["cancelled", "succeeded"]));

    expect(calls.find((c) => c.taskId === victimId)?.signal?.aborted).toBe(true);
    expect(calls.find((c) => c.taskId === otherId)?.signal?.aborted).toBe(false);
    expect(await getTask(otherId)).toMatchObject({ status: "succeeded", steps: 1 });
    expect(await getTask(victimId)).toMatchObject({ status: "cancelled", steps: 0 });
  });

  it("cancel - a shutdown past its drain still aborts every attempt's calls through the process-wide signal", async () => {
    const id = await newTask();
    const model = hangingModel();
    const { registry } = lookupTools();
    const w = worker(model.llm, registry);

    const handled = w.handle(id);
    await model.started;
    w.stop(new Error("shutting down"));
    w.abortCalls(new Error("drain over"));
    expect(await handled).toBe("released");
    expect(model.calls[0]?.signal?.aborted).toBe(true);
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 0 });
  });
});

describe("cancel - a lost lease", () => {
  it("cancel - a lease lost while a model call is in flight aborts that call's signal, with the LeaseLostError: the dead attempt's call leaves the gateway's queue", async () => {
    const id = await newTask();
    let now = 0;
    const leases = new MemoryLeaseManager({ now: () => now });
    const model = hangingModel();
    const { registry } = lookupTools();
    const w = new TaskWorker(
      {
        store,
        leases,
        agents: new AgentCatalog([AGENT]),
        llm: model.llm,
        tools: registry,
        toolSpecs: async (agent) => registry.specs(agent.tools),
        prices: new PriceTable(),
        logger: quiet,
        wakeUps: { publish: async () => undefined },
        retry: { baseDelayMs: 1, maxDelayMs: 5, maxProviderRetries: 1 },
      },
      { owner: "planner-a", leaseTtlMs: 1_000, leaseRenewMs: 10, maxAttempts: 3, defaultMaxSteps: 20, now: () => 0, retryBackoff: { baseMs: 0, maxMs: 0 } },
    );

    const handled = w.handle(id);
    await model.started;
    const signal = model.calls[0]?.signal;
    expect(signal?.aborted).toBe(false);
    // The lease lapses and another planner takes it: the next renewal finds it lost.
    now += 5_000;
    expect(await leases.acquire(id, "planner-b", 1_000)).toBe(true);
    const aborted = await new Promise<unknown>((resolve) => {
      const timer = setTimeout(() => resolve("still in flight"), 2_000);
      signal?.addEventListener("abort", () => (clearTimeout(timer), resolve(signal.reason)), { once: true });
    });
    expect(aborted).toBeInstanceOf(LeaseLostError);
    expect(await handled).toBe("abandoned");
    expect(model.calls).toHaveLength(1);
    expect(await leases.release(id, "planner-b")).toBe(true);
  });
});

describe("cancel - the interceptor", () => {
  it("cancel - refuses a model or tool call synchronously once aborted, before the next link is reached", async () => {
    const steps = new AbortController();
    const cancel = new AttemptCancel({ store, prices: new PriceTable(), logger: quiet }, randomUUID(), steps, new AbortController().signal);
    let reached = 0;
    cancel.abort("stop");
    const call = { taskId: cancel.taskId } as ToolCall;
    expect(() => cancel.interceptor.toolCall?.(call, async () => ((reached += 1), { ok: true, output: null, duration_ms: 0 }))).toThrow(TaskCancelledError);
    await expect(cancel.interceptor.modelCall?.({} as CompleteRequest, async () => ((reached += 1), {}) as never)).rejects.toBeInstanceOf(TaskCancelledError);
    expect(reached).toBe(0);
    expect(steps.signal.reason).toBeInstanceOf(TaskCancelledError);
    expect(cancel.callSignal.aborted).toBe(true);
  });
});

describe("cancel - intake's side", () => {
  function canceller(opts: { abortFails?: boolean } = {}) {
    const aborts: Array<{ node: string; taskId: string; timeoutMs: number }> = [];
    const broadcasts: TaskCancelledControl[] = [];
    const events: Array<{ name: TaskEventName; payload: unknown }> = [];
    const c = new Canceller({
      store,
      abortOn: async (node, taskId, _reason, timeoutMs) => {
        aborts.push({ node, taskId, timeoutMs });
        if (opts.abortFails) throw new Error("Request timed out");
      },
      broadcast: (e) => broadcasts.push(e),
      events: { sink: (name, payload) => events.push({ name, payload }), node: "intake-1" },
      logger: quiet,
    });
    return { c, aborts, broadcasts, events };
  }

  it("cancel - a running task: the planner holding it is asked, the control event is broadcast and clawfleet.task.cancelled emitted once; again is the same answer and nothing more", async () => {
    const id = await newTask();
    const claim = await store.claimNext("planner-7", { default: null, tenants: {} });
    expect(claim?.task.id).toBe(id);
    const { c, aborts, broadcasts, events } = canceller();

    expect(await c.cancel({ taskId: id, by: "key-1", reason: "wrong input" })).toEqual({ id, status: "cancelled" });
    expect(aborts).toEqual([{ node: "planner-7", taskId: id, timeoutMs: expect.any(Number) }]);
    expect(broadcasts).toEqual([expect.objectContaining({ task_id: id, previous_status: "running", by: "key-1", reason: "wrong input", node: "intake-1" })]);
    expect(events.map((e) => e.name)).toEqual(["clawfleet.task.cancelled"]);
    expect(events[0]?.payload).toMatchObject({ task_id: id, status: "cancelled", node: "intake-1" });
    expect(TASK_EVENT_SCHEMAS["clawfleet.task.cancelled"].safeParse(events[0]?.payload).success).toBe(true);
    expect(broadcasts.every((b) => TaskCancelledControlSchema.safeParse(b).success)).toBe(true);
    expect(await getTask(id)).toMatchObject({ status: "cancelled", fence: (claim?.fence ?? 0) + 1, cancelled_by: "key-1", cancel_reason: "wrong input" });

    expect(await c.cancel({ taskId: id.toUpperCase(), by: "key-2" })).toEqual({ id, status: "cancelled" });
    expect([aborts.length, broadcasts.length, events.length]).toEqual([1, 1, 1]);
    expect((await getTask(id)).cancelled_by).toBe("key-1");
  });

  it("cancel - a queued task is cancelled without asking any planner, and is never claimed", async () => {
    const id = await newTask();
    const { c, aborts, broadcasts } = canceller();
    await c.cancel({ taskId: id, by: "key-1" });
    expect(aborts).toEqual([]);
    expect(broadcasts).toHaveLength(1);
    expect(await store.claimNext("planner-a", { default: null, tenants: {} })).toBeNull();
    expect(await store.claimTask(id, "planner-a")).toBeNull();
    expect(await getTask(id)).toMatchObject({ status: "cancelled", attempts: 0 });
  });

  it("cancel - a planner that does not answer in time does not fail the cancel", async () => {
    const id = await newTask();
    await store.claimNext("planner-gone", { default: null, tenants: {} });
    const { c, aborts } = canceller({ abortFails: true });
    expect(await c.cancel({ taskId: id, by: "key-1" })).toEqual({ id, status: "cancelled" });
    expect(aborts).toHaveLength(1);
  });

  it("cancel - a planner that is alive but slow to answer is waited for: the cancel is answered after its ack", async () => {
    // A real broker's call with a timeout, as intake makes it; the planner takes 150 ms (a busy event loop).
    const broker = new ServiceBroker({ logger: false, nodeID: "planner-busy" });
    let acked = false;
    broker.createService({ name: "planner", actions: { abortTask: async () => (await sleep(150), (acked = true), { running: true }) } });
    await broker.start();
    try {
      const id = await newTask();
      expect((await store.claimNext(broker.nodeID, { default: null, tenants: {} }))?.task.id).toBe(id);
      const warned: unknown[] = [];
      const c = new Canceller({
        store,
        abortOn: (nodeID, taskId, _reason, timeout) => broker.call("planner.abortTask", { taskId }, { nodeID, timeout, retries: 0 }),
        broadcast: () => undefined,
        logger: { info: () => undefined, warn: (o) => warned.push(o) },
      });
      expect(await c.cancel({ taskId: id, by: "key-1" })).toEqual({ id, status: "cancelled" });
      expect({ acked, warned }).toEqual({ acked: true, warned: [] });
    } finally {
      await broker.stop();
    }
  });

  it("cancel - a finished task is task_finished (409) naming its status; an unknown task, another tenant's or a malformed id is task_not_found", async () => {
    const id = await newTask();
    const claim = await store.claimNext("planner-a", { default: null, tenants: {} });
    await store.finishTask(id, claim?.fence ?? 0, { status: "succeeded", result: "ok" });
    const { c, events } = canceller();
    const finished = await c.cancel({ taskId: id, by: "k" }).catch((e: unknown) => e);
    expect(finished).toBeInstanceOf(TaskFinishedError);
    expect(finished).toMatchObject({ code: 409, type: "task_finished", data: { status: "succeeded" } });

    const mine = await newTask("tenant-a");
    for (const [taskId, tenant] of [[randomUUID(), undefined], [mine, "tenant-b"], ["not-a-task", undefined]] as const) {
      const err = await c.cancel({ taskId, by: "k", ...(tenant ? { tenant } : {}) }).catch((e: unknown) => e);
      expect(err, taskId).toBeInstanceOf(TaskNotFoundError);
    }
    expect(await getTask(mine)).toMatchObject({ status: "queued" });
    expect(events).toEqual([]);
    expect(await getTask(id)).toMatchObject({ status: "succeeded" });
  });

  it("cancel - the body is optional; a reason must be a string, and nothing else may be sent", () => {
    expect(cancelBodyOf(undefined)).toEqual({});
    expect(cancelBodyOf({})).toEqual({});
    expect(cancelBodyOf({ reason: "dup" })).toEqual({ reason: "dup" });
    expect(() => cancelBodyOf({ reason: 7 })).toThrow(ValidationError);
    expect(() => cancelBodyOf({ reason: "x", force: true })).toThrow(ValidationError);
    expect(() => cancelBodyOf("stop")).toThrow(ValidationError);
  });
});

describe("cancel - recently cancelled ids", () => {
  it("cancel - an id is remembered for its TTL, and the oldest go first past the bound", () => {
    let now = 0;
    const ids = new RecentIds({ ttlMs: 100, max: 2, now: () => now });
    ids.add("a");
    now = 50;
    ids.add("b");
    expect([ids.has("a"), ids.has("b")]).toEqual([true, true]);
    ids.add("c");
    expect([ids.has("a"), ids.has("b"), ids.has("c")]).toEqual([false, true, true]);
    now = 151;
    expect([ids.has("b"), ids.has("c")]).toEqual([false, false]);
  });
});
