/**
 * `TaskWorker`: one planner slot's handling of a wake-up, with real leases
 * (`MemoryLeaseManager`, on a fake monotonic clock where expiry matters), a real
 * store (PGlite in memory), a real tool registry and a scripted model.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Errors } from "moleculer";
import { z } from "zod";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import { TaskWorker, type WakeUpOutcome, type WorkerHooks, type WorkerOptions } from "../../src/agent/taskWorker";
import type { StepEvent } from "../../src/agent/attempt";
import { drainWorker } from "../../src/agent/shutdown";
import { RETRY_BACKOFF, retryDelayMs } from "../../src/agent/settle";
import type { StepRecord, TaskRecord, WakeUp } from "../../src/contracts";
import { ProviderRequestError, RateLimitedError, StaleFenceError, UnavailableError } from "../../src/errors";
import { MemoryLeaseManager } from "../../src/lease/memory";
import type { LeaseManager } from "../../src/lease/types";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse, type ScriptedTurn } from "../../src/llm/scriptedModel";
import type { LlmClient } from "../../src/llm/client";
import { NO_CAPS } from "../../src/store/fairClaim";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { useMemoryStore } from "../helpers/memoryStore";
import type { TaskStore } from "../../src/store/types";
import { ToolRegistry } from "../../src/tools/registry";
import type { ToolContext } from "../../src/tools/tool";

const FINAL = { order_id: "ORD-1005", routed: true, warehouse_id: "WH-MUC", reason: "nearest warehouse with full stock" };
const finalTurn: ScriptedTurn = { content: [text(JSON.stringify(FINAL))] };
const routeTurn: ScriptedTurn = { content: [toolUse("tu_route", "route_order", { order_id: "ORD-1005", warehouse_id: "WH-MUC" })] };

const AGENT = parseAgentFile(
  [
    "---",
    "name: order-router",
    "tools: [route_order]",
    "tiers:",
    "  reason:",
    "    model: claude-haiku-5-5",
    "    max_tokens: 512",
    "default_tier: reason",
    "budgets:",
    "  max_steps: 10",
    "result: json",
    "---",
    "You route orders.",
  ].join("\n"),
  "inline:order-router.md",
);

/** `route_order`, whose body the test controls; every execution is recorded with its idempotency key. */
function routeTool(body: (ctx: ToolContext, nth: number) => Promise<void> = async () => undefined) {
  const keys: string[] = [];
  const registry = new ToolRegistry().register({
    name: "route_order",
    description: "route an order",
    sideEffect: true,
    input: z.object({ order_id: z.string(), warehouse_id: z.string() }),
    run: async (input, ctx) => {
      keys.push(ctx.idempotencyKey);
      await body(ctx, keys.length);
      return { ...input, confirmation: `RT-${ctx.idempotencyKey}` };
    },
  });
  return { registry, keys };
}

let store: PgTaskStore;
useMemoryStore((s) => (store = s), { failQueuedBeforeEach: true });

// A wake-up claims the fairest queued task, whichever it names: each test starts with an empty queue, so the
// task it names is the one it runs. What an earlier test left queued is failed out of the way.

const quiet = { info: () => undefined, warn: () => undefined };

/** These tests retry a task at once; the backoff has a test of its own. */
const NO_BACKOFF = { baseMs: 0, maxMs: 0 };

interface WorkerSetup {
  llm: LlmClient;
  registry: ToolRegistry;
  leases: LeaseManager;
  store?: TaskStore;
  opts?: Partial<WorkerOptions>;
  hooks?: WorkerHooks;
  wakeUps?: { publish(w: WakeUp): Promise<void> };
  onStep?: (e: StepEvent) => void;
}

function worker(s: WorkerSetup): TaskWorker {
  return new TaskWorker(
    {
      store: s.store ?? store,
      leases: s.leases,
      agents: new AgentCatalog([AGENT]),
      llm: s.llm,
      tools: s.registry,
      toolSpecs: async (agent) => s.registry.specs(agent.tools),
      prices: new PriceTable(),
      logger: quiet,
      retry: { baseDelayMs: 1, maxDelayMs: 5, maxProviderRetries: 1, maxRateLimitWaitMs: 1_000 },
      ...(s.wakeUps ? { wakeUps: s.wakeUps } : {}),
      ...(s.onStep ? { onStep: s.onStep } : {}),
    },
    // A frozen lease-deadline clock unless a test passes its own: these tests move lease time by hand.
    { owner: "planner-a", leaseTtlMs: 5_000, leaseRenewMs: 60_000, maxAttempts: 3, defaultMaxSteps: 20, now: () => 0, retryBackoff: NO_BACKOFF, ...s.opts },
    s.hooks,
  );
}

async function newTask(): Promise<string> {
  const id = randomUUID();
  await store.createTask({ id, agent: "order-router", input: { order_id: "ORD-1005" }, priority: "normal", metadata: {}, prompt_version: "test" });
  return id;
}

async function getTask(id: string): Promise<TaskRecord> {
  const t = await store.getTask(id);
  if (!t) throw new Error(`task ${id} vanished`);
  return t;
}

const shape = (steps: StepRecord[]) => steps.map((s) => `${s.step}:${s.kind}@${s.fence}`);

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

async function deadLetterOf(id: string) {
  return (await store.listDeadLetters(1000)).find((d) => d.task_id === id);
}

/** The real store with every call of the methods named in `log` recorded (once it has returned), in order. */
function recordingStore(log: string[], methods: ReadonlyArray<"getTask" | "claimNext" | "appendStep" | "finishTask" | "finishWithStep">): TaskStore {
  const spied: Partial<TaskStore> = {};
  for (const m of methods) {
    const real = store[m].bind(store) as (...args: unknown[]) => Promise<unknown>;
    Object.assign(spied, {
      [m]: async (...args: unknown[]) => {
        const r = await real(...args);
        const last = m === "finishWithStep" ? (args[3] as { step: { step: number } }) : undefined;
        log.push(m === "appendStep" ? `appendStep:${(args[2] as { step: number }).step}` : last ? `${m}+${last.step.step}` : m);
        return r;
      },
    });
  }
  return Object.assign(Object.create(store) as TaskStore, spied);
}

describe("task worker - store round trips", () => {
  it("claims at once for an ordinary wake-up: no read of the task before (or after) the claim that takes it", async () => {
    const id = await newTask();
    const { registry } = routeTool();
    const log: string[] = [];
    const w = worker({ llm: new ScriptedModel([finalTurn]), registry, leases: new MemoryLeaseManager(), store: recordingStore(log, ["getTask", "claimNext"]) });

    expect(await w.handle(id, undefined, "submitted")).toBe("succeeded");
    expect(log).toEqual(["claimNext"]);
    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: FINAL });
  });

  it("reads the named task only when the claim found nothing, to name the outcome", async () => {
    const { registry } = routeTool();
    const log: string[] = [];
    const w = worker({ llm: new ScriptedModel([]), registry, leases: new MemoryLeaseManager(), store: recordingStore(log, ["getTask", "claimNext"]) });

    expect(await w.handle(randomUUID(), undefined, "submitted")).toBe("ignored_unknown");
    expect(log).toEqual(["claimNext", "getTask"]);
  });

  it("writes the final answer with the task's end (no appendStep of its own), announcing its step before the settled hook", async () => {
    const id = await newTask();
    const { registry } = routeTool();
    const log: string[] = [];
    const w = worker({
      llm: new ScriptedModel([routeTurn, finalTurn]),
      registry,
      leases: new MemoryLeaseManager(),
      store: recordingStore(log, ["appendStep", "finishTask", "finishWithStep"]),
      onStep: (e) => log.push(`step:${e.step}`),
      hooks: { onSettled: (_t, o) => log.push(`settled:${o}`) },
    });

    expect(await w.handle(id, undefined, "submitted")).toBe("succeeded");
    expect(log).toEqual(["appendStep:1", "step:1", "appendStep:2", "step:2", "finishWithStep+3", "step:3", "settled:succeeded"]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1", "2:tool@1", "3:llm@1"]);
    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: FINAL, steps: 3 });
  });

  it("with a checkpoint service that predates finishWithStep, writes the final step, then the task's end, then announces the step", async () => {
    const id = await newTask();
    const { registry } = routeTool();
    const log: string[] = [];
    const older = Object.assign(recordingStore(log, ["appendStep", "finishTask"]), {
      // What the broker answers for an action no node serves.
      finishWithStep: () => Promise.reject(new Errors.ServiceNotFoundError({ action: "checkpoint.finishWithStep" })),
    });
    const w = worker({
      llm: new ScriptedModel([
        { ...routeTurn, usage: { input_tokens: 300, output_tokens: 40 } },
        { ...finalTurn, usage: { input_tokens: 500, output_tokens: 60 } },
      ]),
      registry,
      leases: new MemoryLeaseManager(),
      store: older,
      onStep: (e) => log.push(`step:${e.step}`),
      hooks: { onSettled: (_t, o) => log.push(`settled:${o}`) },
    });

    expect(await w.handle(id, undefined, "submitted")).toBe("succeeded");
    expect(log).toEqual(["appendStep:1", "step:1", "appendStep:2", "step:2", "appendStep:3", "finishTask", "step:3", "settled:succeeded"]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1", "2:tool@1", "3:llm@1"]);
    const task = await getTask(id);
    expect(task).toMatchObject({ status: "succeeded", result: FINAL, steps: 3 });
    // The last turn's usage is counted, by its appendStep.
    expect(task?.usage).toMatchObject({ input_tokens: 800, output_tokens: 100 });
  });
});

describe("task worker - settling an attempt", () => {
  it("runs a wake-up to success, reports it through the hooks and frees the lease", async () => {
    const id = await newTask();
    const { registry, keys } = routeTool();
    const model = new ScriptedModel([routeTurn, finalTurn]);
    const leases = new MemoryLeaseManager();
    const settled: Array<[string, WakeUpOutcome]> = [];
    const started: Array<[string, number, number]> = [];
    const w = worker({ llm: model, registry, leases, hooks: { onStarted: (t, a, r) => started.push([t, a, r]), onSettled: (t, o) => settled.push([t, o]) } });

    expect(await w.handle(id)).toBe("succeeded");

    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: FINAL, attempts: 1, steps: 3 });
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1", "2:tool@1", "3:llm@1"]);
    expect(keys).toEqual([`${id}:2`]);
    expect(started).toEqual([[id, 1, 1]]);
    expect(settled).toEqual([[id, "succeeded"]]);
    expect(await leases.held([id])).toEqual([false]);
    expect(w.activeTasks).toBe(0);
  });

  it("drops wake-ups for an unknown task, a finished task and a task another planner holds, without claiming them", async () => {
    const { registry } = routeTool();
    const model = new ScriptedModel([finalTurn]);
    const leases = new MemoryLeaseManager();
    const w = worker({ llm: model, registry, leases });

    expect(await w.handle(randomUUID())).toBe("ignored_unknown");

    const done = await newTask();
    expect(await w.handle(done)).toBe("succeeded");
    expect(await w.handle(done)).toBe("ignored_terminal");
    expect((await getTask(done)).attempts).toBe(1);

    const held = await newTask();
    expect(await leases.acquire(held, "planner-b", 5_000)).toBe(true);
    // The claim comes before the lease: the task was claimed (fence 1), then handed back unstarted and uncounted.
    expect(await w.handle(held)).toBe("ignored_leased");
    expect(await getTask(held)).toMatchObject({ status: "queued", attempts: 0, fence: 1 });
    // The other planner's lease is untouched.
    expect(await leases.release(held, "planner-b")).toBe(true);
    expect(model.requests).toHaveLength(1);
  });

  it("fails the task and dead-letters it on a non-retryable ProviderRequestError", async () => {
    const id = await newTask();
    const { registry } = routeTool();
    const model = new ScriptedModel([new ProviderRequestError("prompt is too long: 210000 tokens > 200000 maximum"), finalTurn]);
    const leases = new MemoryLeaseManager();

    expect(await worker({ llm: model, registry, leases }).handle(id)).toBe("failed");

    expect(model.requests).toHaveLength(1);
    const error = { type: "provider_request_error", message: "prompt is too long: 210000 tokens > 200000 maximum" };
    expect(await getTask(id)).toMatchObject({ status: "failed", error });
    expect((await deadLetterOf(id))?.error).toEqual(error);
    expect(await leases.held([id])).toEqual([false]);
  });

  it("releases the task on a retryable infrastructure error, and dead-letters it as attempts_exhausted once maxAttempts are spent", async () => {
    const id = await newTask();
    const { registry, keys } = routeTool(async () => {
      throw new UnavailableError("routing database unreachable");
    });
    const model = new ScriptedModel([routeTurn]);
    const leases = new MemoryLeaseManager();
    const w = worker({ llm: model, registry, leases, opts: { maxAttempts: 2 } });

    expect(await w.handle(id)).toBe("released");
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 1, error: null });
    expect(await leases.held([id])).toEqual([false]);

    expect(await w.handle(id)).toBe("released");
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 2 });

    // The wake-up after the last allowed attempt claims the task only to fail it.
    expect(await w.handle(id)).toBe("failed");
    const error = { type: "attempts_exhausted", message: "gave up after 2 attempts" };
    expect(await getTask(id)).toMatchObject({ status: "failed", attempts: 3, error });
    expect(await deadLetterOf(id)).toMatchObject({ error, attempts: 3 });
    expect(await w.handle(id)).toBe("ignored_terminal");

    // The model's turn was checkpointed by the first attempt and never asked again; the tool ran once per attempt, same key.
    expect(model.requests).toHaveLength(1);
    expect(keys).toEqual([`${id}:2`, `${id}:2`]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1"]);
  });
});

describe("task worker - wake-ups are tickets", () => {
  it("a task's own wake-up, arriving after another ticket claimed it but before that planner took its lease, does not take it over", async () => {
    const id = await newTask();
    // Another planner's ticket claimed the task; its lease is not taken yet.
    const claim = await store.claimNext("planner-b", NO_CAPS);
    expect(claim?.task.id).toBe(id);
    const { registry } = routeTool();
    const leases = new MemoryLeaseManager();
    const model = new ScriptedModel([routeTurn, finalTurn]);
    expect(await worker({ llm: model, registry, leases }).handle(id, undefined, "submitted")).toBe("ignored_unclaimable");
    expect(model.requests).toHaveLength(0);
    expect(await getTask(id)).toMatchObject({ status: "running", attempts: 1, fence: claim?.fence });
    expect(await leases.held([id])).toEqual([false]);
  });
});

describe("task worker - a reaper's ticket", () => {
  it("a reaper's wake-up naming a task another planner holds still claims a queued task", async () => {
    const queued = [await newTask(), await newTask()];
    // The reaper named `held` while it was queued; another ticket claimed it since, and its planner holds the lease.
    // Tasks created in the same millisecond are claimed in id order: `held` is whichever went first.
    const claim = await store.claimNext("planner-b", NO_CAPS);
    const held = claim?.task.id ?? "";
    expect(queued).toContain(held);
    const waiting = queued.find((id) => id !== held) ?? "";
    const leases = new MemoryLeaseManager();
    expect(await leases.acquire(held, "planner-b:attempt", 60_000)).toBe(true);
    const { registry } = routeTool();
    expect(await worker({ llm: new ScriptedModel([routeTurn, finalTurn]), registry, leases }).handle(held, undefined, "reaped")).toBe("succeeded");
    expect(await getTask(waiting)).toMatchObject({ status: "succeeded", attempts: 1 });
    expect(await getTask(held)).toMatchObject({ status: "running", attempts: 1, fence: claim?.fence });
  });
});

describe("task worker - retry backoff", () => {
  it("a task released after a passing failure is not claimed before its backoff, and gets its own wake-up when it is over", async () => {
    const id = await newTask();
    let failRoute = true;
    const { registry } = routeTool(async () => {
      if (failRoute) throw new UnavailableError("routing database unreachable");
    });
    const leases = new MemoryLeaseManager();
    const published: Array<{ w: WakeUp; at: number }> = [];
    const wakeUps = { publish: async (w: WakeUp) => void published.push({ w, at: Date.now() }) };
    const w = worker({ llm: new ScriptedModel([routeTurn, finalTurn]), registry, leases, wakeUps, opts: { retryBackoff: { baseMs: 400, maxMs: 400 } } });

    const releasedAt = Date.now();
    expect(await w.handle(id)).toBe("released");
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 1 });
    // Inside the backoff: a wake-up (another task's, a duplicate) finds nothing it may claim.
    expect(await w.handle(id)).toBe("ignored_unclaimable");
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 1 });

    // The task's own wake-up comes once the backoff (200-400 ms with jitter) is over, not from the reaper.
    while (published.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(published[0]?.w).toEqual({ taskId: id, reason: "retry" });
    expect(published[0]!.at - releasedAt).toBeGreaterThanOrEqual(200);
    failRoute = false;
    expect(await w.handle(id)).toBe("succeeded");
    expect(await getTask(id)).toMatchObject({ status: "succeeded", attempts: 2 });
  });

  it("backs off exponentially with jitter, never below what the error asks for, at most the cap", () => {
    const half = () => 0;
    const full = () => 1;
    expect([1, 2, 3, 4].map((n) => retryDelayMs(n, new UnavailableError("x"), RETRY_BACKOFF, full))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(retryDelayMs(1, new UnavailableError("x"), RETRY_BACKOFF, half)).toBe(500);
    expect(retryDelayMs(20, new UnavailableError("x"), RETRY_BACKOFF, full)).toBe(60_000);
    expect(retryDelayMs(1, new RateLimitedError("slow down", { retryAfter: 7 }), RETRY_BACKOFF, half)).toBe(7_000);
  });
});

describe("task worker - a rolling deploy", () => {
  it("releases a task whose model turn ran out of rate-limit allowance uncounted: waiting its turn is not the task's failure", async () => {
    const id = await newTask();
    const { registry } = routeTool(async () => undefined);
    // The gateway refuses every call (the limit binds for longer than the turn's allowance of 1 s here).
    const refusing = new ScriptedModel(Array.from({ length: 40 }, () => new RateLimitedError("rate limit reached", { retryAfter: 0.3 })));
    expect(await worker({ llm: refusing, registry, leases: new MemoryLeaseManager() }).handle(id)).toBe("released");
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 0, error: null });
  });

  it("releases a task whose checkpoint is newer than this build, uncounted and not failed; a newer planner then finishes it", async () => {
    const id = await newTask();
    let failRoute = true;
    const { registry } = routeTool(async () => {
      if (failRoute) throw new UnavailableError("routing database unreachable");
    });
    const leases = new MemoryLeaseManager();
    // A first attempt checkpoints the model's turn, then ends on a passing failure.
    expect(await worker({ llm: new ScriptedModel([routeTurn]), registry, leases }).handle(id)).toBe("released");
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 1, steps: 1 });

    // An older planner reads that checkpoint as written by a newer build (format version 2).
    const newerSteps = Object.assign(Object.create(store) as PgTaskStore, {
      listSteps: async (taskId: string) => (await store.listSteps(taskId)).map((st) => ({ ...st, schema_version: st.schema_version + 1 })),
    });
    const old = new ScriptedModel([finalTurn]);
    expect(await worker({ llm: old, registry, leases, store: newerSteps }).handle(id)).toBe("released");
    expect(old.requests).toHaveLength(0);
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 1, error: null });
    expect(await deadLetterOf(id)).toBeUndefined();

    failRoute = false;
    expect(await worker({ llm: new ScriptedModel([finalTurn]), registry, leases }).handle(id)).toBe("succeeded");
    expect(await getTask(id)).toMatchObject({ status: "succeeded", attempts: 2, result: FINAL });
  });
});

describe("task worker - graceful stop", () => {
  it("lets the running step finish and checkpoint, then releases the task and its lease; a successor resumes it", async () => {
    const id = await newTask();
    const toolStarted = gate();
    const slow = gate();
    const { registry, keys } = routeTool(async (_ctx, nth) => {
      if (nth > 1) return;
      toolStarted.open();
      await slow.wait;
    });
    const model = new ScriptedModel([routeTurn, finalTurn]);
    const leases = new MemoryLeaseManager();
    const w = worker({ llm: model, registry, leases });

    const handling = w.handle(id);
    await toolStarted.wait;
    // Queued only now: the first wake-up's ticket must have taken `id`, the one task then queued.
    const other = await newTask();
    w.stop(new Error("SIGTERM"));
    expect(await w.handle(other)).toBe("ignored_stopping");
    expect(w.activeTasks).toBe(1);
    slow.open();

    expect(await handling).toBe("released");
    expect(await w.drain(1_000)).toBe(true);
    // A graceful release hands the attempt back: a shutdown is not the task's fault.
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 0, fence: 1, steps: 2 });
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1", "2:tool@1"]);
    expect(await leases.held([id])).toEqual([false]);
    expect(model.requests).toHaveLength(1);
    expect(await getTask(other)).toMatchObject({ status: "queued", attempts: 0 });

    const successorModel = new ScriptedModel([finalTurn]);
    expect(await worker({ llm: successorModel, registry, leases, opts: { owner: "planner-b" } }).handle(id)).toBe("succeeded");
    expect(successorModel.requests.map((r) => r.step)).toEqual([3]);
    expect(keys).toEqual([`${id}:2`]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1", "2:tool@1", "3:llm@2"]);
  });

  it("does not start a task whose wake-up arrived just before stop()", async () => {
    const id = await newTask();
    const { registry } = routeTool();
    const model = new ScriptedModel([routeTurn, finalTurn]);
    const leases = new MemoryLeaseManager();
    const w = worker({ llm: model, registry, leases });

    // handle() is past its stopping check and waiting on the store when the stop arrives.
    const handling = w.handle(id);
    w.stop(new Error("SIGTERM"));

    expect(await handling).toBe("ignored_stopping");
    expect(await w.drain(1_000)).toBe(true);
    expect(model.requests).toHaveLength(0);
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 0 });
    expect(await leases.held([id])).toEqual([false]);
  });

  it("drain() resolves only once the stopped task's lease is released", async () => {
    const id = await newTask();
    const toolStarted = gate();
    const slow = gate();
    const { registry } = routeTool(async () => {
      toolStarted.open();
      await slow.wait;
    });
    const inner = new MemoryLeaseManager();
    // A lease store that takes a while to answer, as Redis over a network does.
    const leases: LeaseManager = {
      acquire: (...a) => inner.acquire(...a),
      renew: (...a) => inner.renew(...a),
      renewMany: (...a) => inner.renewMany(...a),
      held: (...a) => inner.held(...a),
      close: () => inner.close(),
      release: async (...a) => {
        await new Promise((r) => setTimeout(r, 100));
        return inner.release(...a);
      },
    };
    const w = worker({ llm: new ScriptedModel([routeTurn]), registry, leases });

    const handling = w.handle(id);
    await toolStarted.wait;
    w.stop(new Error("SIGTERM"));
    slow.open();

    expect(await w.drain(2_000)).toBe(true);
    expect(await inner.held([id])).toEqual([false]);
    expect(await handling).toBe("released");
  });

  it("shutdown past the step drain - a model call in flight is abandoned, the task released uncounted and reported interrupted; a successor finishes it", async () => {
    const id = await newTask();
    const { registry, keys } = routeTool();
    const asked = gate();
    // A model that never answers in time; it honours the call's signal, as the planner's gateway call does.
    const slow: LlmClient = {
      complete: (_req, signal) =>
        new Promise((_resolve, reject) => {
          asked.open();
          signal?.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
        }),
    };
    const leases = new MemoryLeaseManager();
    const settled: Array<[string, WakeUpOutcome, string | undefined]> = [];
    const w = worker({ llm: slow, registry, leases, hooks: { onSettled: (t, o, d) => settled.push([t, o, d?.kind]) } });

    const handling = w.handle(id);
    await asked.wait;
    // No time for the step to finish: its call is aborted at once.
    expect(await drainWorker(w, { stepDrainMs: 0, releaseByMs: 5_000 }, new Error("SIGTERM"))).toBe(true);

    expect(await handling).toBe("released");
    // Reported interrupted: the planner publishes the task's wake-up at once.
    expect(settled).toEqual([[id, "released", "interrupted"]]);
    expect(await getTask(id)).toMatchObject({ status: "queued", attempts: 0, fence: 1, steps: 0 });
    expect(await leases.held([id])).toEqual([false]);

    const successorModel = new ScriptedModel([routeTurn, finalTurn]);
    expect(await worker({ llm: successorModel, registry, leases, opts: { owner: "planner-b" } }).handle(id)).toBe("succeeded");
    expect(await getTask(id)).toMatchObject({ status: "succeeded", attempts: 1, fence: 2 });
    expect(keys).toEqual([`${id}:2`]);
  });
});

describe("task worker - fencing", () => {
  it("gives each attempt its own lease: two slots of one planner neither share nor release each other's lease", async () => {
    const id = await newTask();
    let now = 0;
    const leases = new MemoryLeaseManager({ now: () => now });
    const firstInTool = gate();
    const firstResume = gate();
    const secondInTool = gate();
    const secondResume = gate();
    const { registry } = routeTool(async (_ctx, nth) => {
      if (nth === 1) {
        firstInTool.open();
        await firstResume.wait;
      } else if (nth === 2) {
        secondInTool.open();
        await secondResume.wait;
      }
    });
    // Both slots run on the same node: same owner id.
    const opts = { owner: "planner-a", leaseTtlMs: 1_000, now: () => now };
    const first = worker({ llm: new ScriptedModel([routeTurn, finalTurn]), registry, leases, opts });
    const second = worker({ llm: new ScriptedModel([routeTurn, finalTurn]), registry, leases, opts });

    const firstRun = first.handle(id);
    await firstInTool.wait;
    // The lease is held: no take-over, and the ticket finds no other queued task to claim.
    expect(await second.handle(id)).toBe("ignored_unclaimable");

    now += 5_000; // the first slot's lease lapses; the second slot takes the task over
    const secondRun = second.handle(id);
    await secondInTool.wait;
    firstResume.open();
    expect(await firstRun).toBe("abandoned");
    // The first slot's release must not have freed the lease the second slot now holds.
    expect(await leases.held([id])).toEqual([true]);
    expect(await leases.acquire(id, "planner-b", 1_000)).toBe(false);

    secondResume.open();
    expect(await secondRun).toBe("succeeded");
    expect(await leases.held([id])).toEqual([false]);
    expect(await getTask(id)).toMatchObject({ status: "succeeded", fence: 2 });
  });

  it("abandons a zombie whose tool call outlived its lease: its late checkpoint is refused and the successor's results stand", async () => {
    const id = await newTask();
    let now = 0;
    const leases = new MemoryLeaseManager({ now: () => now });
    const zombieInTool = gate();
    const zombieResume = gate();
    const { registry, keys } = routeTool(async (_ctx, nth) => {
      if (nth > 1) return;
      zombieInTool.open();
      await zombieResume.wait;
    });
    const zombieModel = new ScriptedModel([routeTurn, finalTurn]);
    const settled: WakeUpOutcome[] = [];
    const zombie = worker({ llm: zombieModel, registry, leases, opts: { leaseTtlMs: 1_000 }, hooks: { onSettled: (_t, o) => settled.push(o) } });
    const successorModel = new ScriptedModel([finalTurn]);
    const successor = worker({ llm: successorModel, registry, leases, opts: { owner: "planner-b", leaseTtlMs: 1_000 } });

    const zombieRun = zombie.handle(id);
    await zombieInTool.wait;
    now += 5_000; // the zombie is paused past its lease (GC pause, partition): the lease lapses
    expect(await successor.handle(id)).toBe("succeeded");
    zombieResume.open();

    expect(await zombieRun).toBe("abandoned");
    expect(settled).toEqual(["abandoned"]);
    // Both executions of the side effect carried the same key, so a deduping tool routes once.
    expect(keys).toEqual([`${id}:2`, `${id}:2`]);
    // Its next turn may have been asked while the tool's checkpoint was on its way (with this frozen lease clock no
    // lease check stops it): the refused checkpoint cut it short, and nothing of it was stored.
    expect(zombieModel.requests.length).toBeGreaterThanOrEqual(1);
    expect(zombieModel.requests.length).toBeLessThanOrEqual(2);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1", "2:tool@2", "3:llm@2"]);
    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: FINAL, fence: 2, attempts: 2 });
    expect(await deadLetterOf(id)).toBeUndefined();
  });

  it("abandons a zombie whose final write comes after a successor's claim: finishWithStep is refused with StaleFenceError", async () => {
    const id = await newTask();
    let now = 0;
    const leases = new MemoryLeaseManager({ now: () => now });
    const finishing = gate();
    const proceed = gate();
    const finishErrors: unknown[] = [];
    // The real store, with the zombie's final write held back until the successor has taken over.
    const zombieStore: TaskStore = Object.assign(Object.create(store) as TaskStore, {
      finishWithStep: async (...args: Parameters<TaskStore["finishWithStep"]>) => {
        finishing.open();
        await proceed.wait;
        return store.finishWithStep(...args).catch((err: unknown) => {
          finishErrors.push(err);
          throw err;
        });
      },
    });
    const { registry } = routeTool();
    const zombieModel = new ScriptedModel([{ content: [text(JSON.stringify({ ...FINAL, warehouse_id: "WH-FRA" }))] }]);
    const zombie = worker({ llm: zombieModel, registry, leases, store: zombieStore, opts: { leaseTtlMs: 1_000 } });
    const successorModel = new ScriptedModel([finalTurn]);
    const successor = worker({ llm: successorModel, registry, leases, opts: { owner: "planner-b", leaseTtlMs: 1_000 } });

    const zombieRun = zombie.handle(id);
    await finishing.wait;
    now += 5_000;
    expect(await successor.handle(id)).toBe("succeeded");
    proceed.open();

    expect(await zombieRun).toBe("abandoned");
    expect(finishErrors).toHaveLength(1);
    expect(finishErrors[0]).toBeInstanceOf(StaleFenceError);
    // The zombie's answer went with its terminal write, refused whole: the successor found no step 1 and asked
    // the model itself, as after a crash before a checkpoint. Nothing of the zombie's is stored.
    expect(successorModel.requests).toHaveLength(1);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@2"]);
    expect(await getTask(id)).toMatchObject({ status: "succeeded", fence: 2, result: FINAL });
  });

  it("stops at the next step boundary and abandons the task without releasing it when the heartbeat finds the lease lost", async () => {
    const id = await newTask();
    let now = 0;
    const leases = new MemoryLeaseManager({ now: () => now });
    const inTool = gate();
    const lost = gate();
    const { registry } = routeTool(async () => {
      inTool.open();
      await lost.wait;
    });
    const model = new ScriptedModel([routeTurn, finalTurn]);
    const w = worker({ llm: model, registry, leases, opts: { leaseTtlMs: 1_000, leaseRenewMs: 10 }, hooks: { onLeaseLost: () => lost.open() } });

    const handling = w.handle(id);
    await inTool.wait;
    now += 5_000;
    expect(await leases.acquire(id, "planner-b", 1_000)).toBe(true);

    expect(await handling).toBe("abandoned");
    // The step in flight was still ours to checkpoint (no successor had claimed); nothing after it ran.
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1", "2:tool@1"]);
    expect(model.requests).toHaveLength(1);
    expect(await getTask(id)).toMatchObject({ status: "running", fence: 1 });
    // The new holder's lease survives the zombie's compare-and-delete.
    expect(await leases.release(id, "planner-b")).toBe(true);
  });
});

describe("task worker - paused past the lease", () => {
  it("zombie - a worker that resumes after its lease may have lapsed starts no further model or tool call and abandons the task", async () => {
    const id = await newTask();
    let now = 0;
    const leases = new MemoryLeaseManager({ now: () => now });
    const paused = gate();
    const resume = gate();
    // The model's first answer (a route_order call) is checkpointed; the process then freezes before running the tool.
    const model: LlmClient = {
      complete: async (req) => {
        const r = await new ScriptedModel([routeTurn]).complete(req);
        paused.open();
        await resume.wait;
        return r;
      },
    };
    const { registry, keys } = routeTool();
    const w = worker({ llm: model, registry, leases, opts: { leaseTtlMs: 1_000, leaseRenewMs: 300, now: () => now } });

    const handling = w.handle(id);
    await paused.wait;
    now += 5_000; // frozen for five lease TTLs; its heartbeat has not run since
    resume.open();

    expect(await handling).toBe("abandoned");
    // The model step was checkpointed (nobody else held the task), but the tool it asked for never ran.
    expect(keys).toEqual([]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm@1"]);
    expect(await getTask(id)).toMatchObject({ status: "running", fence: 1 });
  });
});
