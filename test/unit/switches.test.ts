/**
 * switches - kill switches in one process, on a real store (PGlite in memory):
 * the board's view and its reads, the gate that holds a call of a paused tool or
 * model, claims that pass over a paused agent's or prompt version's tasks, the
 * control that stores, announces and acts on a change, and a real TaskWorker
 * under all of them.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import { InterceptorChain } from "../../src/agent/interceptors";
import { TaskWorker } from "../../src/agent/taskWorker";
import type { CompleteRequest, Switch, SwitchChangedEvent, SwitchKind, ToolCall, WakeUp } from "../../src/contracts";
import { AgentNotFoundError, RouteNotFoundError, TaskFinishedError, ValidationError } from "../../src/errors";
import { MemoryLeaseManager } from "../../src/lease/memory";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse } from "../../src/llm/scriptedModel";
import { NO_CAPS } from "../../src/store/fairClaim";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { claimsHonouringSwitches, SwitchBoard, SwitchControl, SwitchGate } from "../../src/switches";
import { Metrics } from "../../src/telemetry/metrics";
import { ToolRegistry } from "../../src/tools/registry";
import { useMemoryStore } from "../helpers/memoryStore";

let store: PgTaskStore;
useMemoryStore((s) => (store = s), { failQueuedBeforeEach: true });

interface LogLine {
  level: "info" | "warn";
  obj: Record<string, unknown>;
}

function recorder() {
  const lines: LogLine[] = [];
  const logger = {
    info: (obj: Record<string, unknown>) => void lines.push({ level: "info", obj }),
    warn: (obj: Record<string, unknown>) => void lines.push({ level: "warn", obj }),
  };
  return { lines, logger, events: (event: string) => lines.filter((l) => l.obj.event === event) };
}

/** A name of its own for each test: the switches table is shared by the file. */
const fresh = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

const set = (kind: SwitchKind, name: string, paused: boolean, inFlight: "drain" | "abort" = "drain") =>
  store.setSwitch({ kind, name, paused, in_flight: inFlight, by: "test-key" });

function boardOnStore(opts: { refreshMs?: number } = {}) {
  const log = recorder();
  return { board: new SwitchBoard({ load: () => store.listSwitches(), logger: log.logger }, opts), log };
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

const toolCall = (taskId: string, tool: string): ToolCall => ({ taskId, agent: "a", step: 2, tool, toolUseId: "tu_1", input: {}, idempotencyKey: `${taskId}:2` });
const modelRequest = (taskId: string, model: string): CompleteRequest => ({
  taskId,
  agent: "a",
  promptVersion: "pv",
  step: 1,
  tier: "t",
  model,
  maxTokens: 16,
  priority: "normal",
  system: "",
  messages: [{ role: "user", content: "hi" }],
  tools: [],
});

describe("switches - the board", () => {
  it("sees a change at its next read; the first read reports no transition, each later change is reported once", async () => {
    const agent = fresh("agent");
    await set("agent", agent, true);
    const { board } = boardOnStore();
    const seen: Array<[boolean | undefined, boolean]> = [];
    board.onChange((t) => t.after.name === agent && seen.push([t.before?.paused, t.after.paused]));

    expect(board.isPaused("agent", agent)).toBe(false);
    await board.refresh();
    expect(board.isPaused("agent", agent)).toBe(true);
    expect(board.exclusions().agents).toContain(agent);
    expect(seen).toEqual([]);

    await set("agent", agent, false);
    await board.refresh();
    await board.refresh();
    expect(board.isPaused("agent", agent)).toBe(false);
    expect(board.exclusions().agents).not.toContain(agent);
    expect(seen).toEqual([[true, false]]);
  });

  it("a refresh asked while a read is under way gets a read of its own after it, so it sees a change committed meanwhile", async () => {
    const reads: Array<ReturnType<typeof deferred<Switch[]>>> = [];
    const board = new SwitchBoard({ load: () => (reads.push(deferred<Switch[]>()), (reads.at(-1) as ReturnType<typeof deferred<Switch[]>>).promise), logger: recorder().logger });
    const first = board.refresh();
    const second = board.refresh();
    const third = board.refresh();
    expect(reads).toHaveLength(1);
    reads[0]?.resolve([]);
    await first;
    // The read under way may predate the change the callers heard of: one more read serves both.
    await expect.poll(() => reads.length).toBe(2);
    const paused: Switch = { kind: "tool", name: "route_order", paused: true, in_flight: "drain", updated_by: "k", updated_at: new Date().toISOString(), version: 1 };
    reads[1]?.resolve([paused]);
    await Promise.all([second, third]);
    expect(reads).toHaveLength(2);
    expect(board.isPaused("tool", "route_order")).toBe(true);
  });

  it("keeps the switches it last read while reads fail, and says so once", async () => {
    const tool = fresh("tool");
    await set("tool", tool, true);
    let failing = false;
    const log = recorder();
    const board = new SwitchBoard({ load: () => (failing ? Promise.reject(new Error("checkpoint unreachable")) : store.listSwitches()), logger: log.logger });
    await board.refresh();
    failing = true;
    await expect(board.refresh()).rejects.toThrow("checkpoint unreachable");
    await expect(board.refresh()).rejects.toThrow("checkpoint unreachable");
    expect(board.isPaused("tool", tool)).toBe(true);
    expect(log.events("switches.refresh_failed")).toHaveLength(1);
    failing = false;
    await board.refresh();
    expect(log.events("switches.refresh_recovered")).toHaveLength(1);
  });

  it("a wait while paused ends when the switch lifts, or with the signal's reason when that comes first", async () => {
    const tool = fresh("tool");
    await set("tool", tool, true);
    const { board } = boardOnStore();
    await board.refresh();
    const lifted = board.waitWhilePaused("tool", tool);
    const controller = new AbortController();
    const aborted = board.waitWhilePaused("tool", tool, controller.signal);
    const reason = new Error("task cancelled");
    controller.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    await set("tool", tool, false);
    await board.refresh();
    await expect(lifted).resolves.toBeUndefined();
    // Not paused: nothing to wait for.
    await expect(board.waitWhilePaused("tool", tool)).resolves.toBeUndefined();
  });

  it("reads every refreshMs once started, until the last of its users stops it", async () => {
    let reads = 0;
    const board = new SwitchBoard({ load: async () => (reads++, []), logger: recorder().logger }, { refreshMs: 5 });
    board.start();
    board.start();
    await expect.poll(() => reads).toBeGreaterThanOrEqual(3);
    board.stop();
    await expect.poll(() => reads).toBeGreaterThanOrEqual(5);
    board.stop();
    const stoppedAt = reads;
    await board.refresh();
    expect(reads).toBe(stoppedAt + 1);
  });
});

describe("switches - the gate before tool and model calls", () => {
  function gateOn(board: SwitchBoard) {
    const log = recorder();
    const cancels: Array<[string, string, string]> = [];
    const gate = new SwitchGate({ board, logger: log.logger, cancel: async (taskId, by, reason) => void cancels.push([taskId, by, reason]) });
    return { gate, log, cancels, chain: new InterceptorChain([gate.interceptor]) };
  }

  it("holds a call of a paused tool until the switch lifts, then makes it; a call of another tool goes through", async () => {
    const [paused, other] = [fresh("tool"), fresh("tool")];
    await set("tool", paused, true);
    const { board } = boardOnStore();
    await board.refresh();
    const { gate, log, chain } = gateOn(board);
    const made: string[] = [];
    const tools = chain.tools({ run: async (call) => (made.push(call.tool), { ok: true, output: null, duration_ms: 0 }) });

    const held = tools.run(toolCall("task-1", paused));
    await tools.run(toolCall("task-2", other));
    await expect.poll(() => log.events("switch.held").length).toBe(1);
    expect(made).toEqual([other]);
    expect(gate.tasksAt("tool", paused)).toEqual(["task-1"]);

    await set("tool", paused, false);
    await board.refresh();
    await held;
    expect(made).toEqual([other, paused]);
    expect(gate.tasksAt("tool", paused)).toEqual([]);
    expect(log.events("switch.resumed")[0]?.obj).toMatchObject({ taskId: "task-1", kind: "tool", name: paused });
  });

  it("holds the calls of a paused model, and only of that model", async () => {
    const [paused, other] = [fresh("model"), fresh("model")];
    await set("model", paused, true);
    const { board } = boardOnStore();
    await board.refresh();
    const { log, chain } = gateOn(board);
    const asked: string[] = [];
    const llm = chain.llm({ complete: async (req) => (asked.push(req.model), { id: "m", model: req.model, content: [], stop_reason: "end_turn", usage: { input_tokens: 1, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 }, duration_ms: 0 }) });
    const held = llm.complete(modelRequest("task-1", paused));
    await llm.complete(modelRequest("task-2", other));
    await expect.poll(() => log.events("switch.held").length).toBe(1);
    expect(asked).toEqual([other]);
    await set("model", paused, false);
    await board.refresh();
    await held;
    expect(asked).toEqual([other, paused]);
  });

  it("ends the wait with the call's abort reason (a cancel), and every wait at once on stop() (a shutdown), making no call", async () => {
    const tool = fresh("tool");
    await set("tool", tool, true);
    const { board } = boardOnStore();
    await board.refresh();
    const { gate, log, chain } = gateOn(board);
    let made = 0;
    const tools = chain.tools({ run: async () => (made++, { ok: true, output: null, duration_ms: 0 }) });

    const call = new AbortController();
    const cancelled = tools.run(toolCall("task-1", tool), call.signal);
    const shutDown = tools.run(toolCall("task-2", tool));
    await expect.poll(() => log.events("switch.held").length).toBe(2);
    const cancel = new TaskFinishedError("cancelled");
    call.abort(cancel);
    await expect(cancelled).rejects.toBe(cancel);
    const shutdown = new Error("planner is shutting down");
    gate.stop(shutdown);
    await expect(shutDown).rejects.toBe(shutdown);
    // After stop, a call of a paused tool does not even begin to wait.
    await expect(tools.run(toolCall("task-3", tool))).rejects.toBe(shutdown);
    expect(made).toBe(0);
    expect(gate.tasksAt("tool", tool)).toEqual([]);
  });

  it("a pause with in_flight=abort cancels the tasks waiting at it and those inside a call of it, as the switch's author; others are left alone", async () => {
    const [tool, other] = [fresh("tool"), fresh("tool")];
    const { board } = boardOnStore();
    await board.refresh();
    const { log, cancels, chain } = gateOn(board);
    const inside = deferred<void>();
    const tools = chain.tools({
      run: async (call) => {
        if (call.taskId !== "task-waiting") await inside.promise;
        return { ok: true, output: null, duration_ms: 0 };
      },
    });
    const running = tools.run(toolCall("task-inside", tool));
    const elsewhere = tools.run(toolCall("task-elsewhere", other));
    await set("tool", tool, true, "drain");
    await board.refresh();
    const waiting = tools.run(toolCall("task-waiting", tool));
    await expect.poll(() => log.events("switch.held").length).toBe(1);
    expect(cancels).toEqual([]);

    await set("tool", tool, true, "abort");
    await board.refresh();
    expect(cancels.map(([id]) => id).sort()).toEqual(["task-inside", "task-waiting"]);
    expect(cancels[0]?.[1]).toBe("test-key");
    expect(cancels[0]?.[2]).toContain(`tool/${tool}`);
    // Read again, the same change is not acted on twice.
    await board.refresh();
    expect(cancels).toHaveLength(2);

    inside.resolve();
    await Promise.all([running, elsewhere]);
    await set("tool", tool, false);
    await board.refresh();
    await waiting;
  });
});

describe("switches - claims", () => {
  const task = async (agent: string, promptVersion = "pv-1") => {
    const id = randomUUID();
    await store.createTask({ id, agent, input: {}, priority: "normal", metadata: {}, prompt_version: promptVersion });
    await new Promise((r) => setTimeout(r, 2));
    return id;
  };
  const status = async (id: string) => (await store.getTask(id))?.status;

  it("pass over a paused agent's and a paused prompt version's queued tasks, which stay queued; a ticket then claims another task", async () => {
    const [agent, version] = [fresh("agent"), fresh("abcdef01")];
    const pausedAgent = await task(agent);
    const pausedVersion = await task("order-router", version);
    const free = await task("order-router");
    await set("agent", agent, true);
    await set("prompt", version, true);
    const { board } = boardOnStore();
    const claims = claimsHonouringSwitches(store, board);

    expect((await claims.claimNext("planner-a", NO_CAPS))?.task.id).toBe(free);
    expect(await claims.claimNext("planner-a", NO_CAPS)).toBeNull();
    expect(await status(pausedAgent)).toBe("queued");
    expect(await status(pausedVersion)).toBe("queued");
    // The store unfiltered would have taken the oldest: the filter is what held them.
    expect((await store.claimNext("planner-x", NO_CAPS))?.task.id).toBe(pausedAgent);
  });

  it("a wake-up that reaches a planner whose board has not read the lift yet still claims: it reads the switches again", async () => {
    const agent = fresh("agent");
    const id = await task(agent);
    await set("agent", agent, true);
    const { board } = boardOnStore();
    await board.refresh();
    const claims = claimsHonouringSwitches(store, board);
    expect(await claims.claimNext("planner-a", NO_CAPS)).toBeNull();

    await set("agent", agent, false);
    // No refresh here: the board still has the agent paused.
    expect(board.isPaused("agent", agent)).toBe(true);
    expect((await claims.claimNext("planner-a", NO_CAPS))?.task.id).toBe(id);
  });
});

describe("switches - the control", () => {
  function control() {
    const log = recorder();
    const wakeUps: WakeUp[] = [];
    const announced: SwitchChangedEvent[] = [];
    const cancels: Array<[string, string, string]> = [];
    const c = new SwitchControl({
      store,
      agents: new AgentCatalog([AGENT]),
      wakeUps: { publish: async (w) => void wakeUps.push(w) },
      cancel: async (taskId, by, reason) => void cancels.push([taskId, by, reason]),
      announce: (e) => void announced.push(e),
      logger: log.logger,
      node: "intake-1",
    });
    return { c, log, wakeUps, announced, cancels };
  }

  it("refuses an unknown kind (404), a name its kind cannot have and a bad body (422, naming the field), a pause of an unknown agent (404)", async () => {
    const { c, announced } = control();
    await expect(c.set("planet", "mars", { paused: true }, "k")).rejects.toBeInstanceOf(RouteNotFoundError);
    await expect(c.set("tool", "no spaces", { paused: true }, "k")).rejects.toMatchObject({ code: 422, data: { field: "name" } });
    await expect(c.set("prompt", "not-a-hash", { paused: true }, "k")).rejects.toMatchObject({ code: 422, data: { field: "name" } });
    await expect(c.set("tool", "route_order", { paused: "yes" }, "k")).rejects.toMatchObject({ code: 422, data: { field: "paused" } });
    await expect(c.set("tool", "route_order", {}, "k")).rejects.toMatchObject({ code: 422, data: { field: "paused" } });
    await expect(c.set("tool", "route_order", { paused: true, in_flight: "later" }, "k")).rejects.toMatchObject({ code: 422, data: { field: "in_flight" } });
    await expect(c.set("tool", "route_order", { paused: false, in_flight: "abort" }, "k")).rejects.toMatchObject({ code: 422, data: { field: "in_flight" } });
    await expect(c.set("tool", "route_order", { paused: true, extra: 1 }, "k")).rejects.toBeInstanceOf(ValidationError);
    await expect(c.set("tool", "route_order", [true], "k")).rejects.toMatchObject({ code: 422, data: { field: "body" } });
    await expect(c.set("agent", "nobody", { paused: true }, "k")).rejects.toBeInstanceOf(AgentNotFoundError);
    expect(announced).toEqual([]);
  });

  it("stores each change with its history, logs who made it, and announces it", async () => {
    const { c, log, announced } = control();
    const model = fresh("claude");
    const first = await c.set("model", model, { paused: true }, "key-1");
    expect(first).toMatchObject({ kind: "model", name: model, paused: true, in_flight: "drain", updated_by: "key-1", version: 1 });
    const second = await c.set("model", model, { paused: false }, "key-2");
    expect(second).toMatchObject({ paused: false, updated_by: "key-2", version: 2 });
    expect(announced.map((e) => [e.name, e.paused, e.version, e.node])).toEqual([
      [model, true, 1, "intake-1"],
      [model, false, 2, "intake-1"],
    ]);
    expect(log.events("switch.changed").map((l) => [l.level, l.obj.by, l.obj.paused])).toEqual([
      ["info", "key-1", true],
      ["info", "key-2", false],
    ]);
    expect((await c.history(10, "model", model)).map((h) => [h.by, h.paused, h.version])).toEqual([
      ["key-2", false, 2],
      ["key-1", true, 1],
    ]);
    expect((await c.list()).find((s) => s.name === model)).toEqual(second);
  });

  it("lifting an agent wakes each of its queued tasks; pausing it with abort cancels its running tasks, and no other agent's", async () => {
    const { c, wakeUps, cancels } = control();
    const mine = [randomUUID(), randomUUID(), randomUUID()];
    const theirs = randomUUID();
    for (const id of [...mine, theirs]) await store.createTask({ id, agent: id === theirs ? "someone-else" : "order-router", input: {}, priority: "normal", metadata: {}, prompt_version: "pv" });
    await c.set("agent", "order-router", { paused: true }, "k");
    await c.set("agent", "order-router", { paused: false }, "k");
    expect(wakeUps.map((w) => w.taskId).sort()).toEqual([...mine].sort());

    // Two of them run; pausing with abort cancels exactly those.
    const running = [await store.claimTask(mine[0] as string, "planner-a"), await store.claimTask(mine[1] as string, "planner-a"), await store.claimTask(theirs, "planner-a")];
    expect(running.every((r) => r !== null)).toBe(true);
    expect(cancels).toEqual([]);
    await c.set("agent", "order-router", { paused: true, in_flight: "abort" }, "key-9");
    // (Earlier tests of this file left tasks of the agent running: those are cancelled too.)
    const cancelled = cancels.map(([id]) => id);
    expect(cancelled).toEqual(expect.arrayContaining([mine[0], mine[1]]));
    expect(cancelled).not.toContain(mine[2]);
    expect(cancelled).not.toContain(theirs);
    expect(cancels.every(([, by, reason]) => by === "key-9" && reason.includes("agent/order-router"))).toBe(true);
    await c.set("agent", "order-router", { paused: false }, "k");
  });
});

describe("switches - an abort's cancels", () => {
  it("a slow cancel (a planner cut off, its ack waited out) holds up only itself: the other running tasks are cancelled meanwhile", async () => {
    const version = randomUUID().replace(/-/g, "").slice(0, 12);
    const ids = Array.from({ length: 24 }, () => randomUUID());
    for (const id of ids) {
      await store.createTask({ id, agent: "order-router", input: {}, priority: "normal", metadata: {}, prompt_version: version });
      expect(await store.claimTask(id, "planner-a")).not.toBeNull();
    }
    const done: string[] = [];
    let slowOne: string | undefined;
    const c = new SwitchControl({
      store,
      agents: new AgentCatalog([AGENT]),
      wakeUps: { publish: async () => undefined },
      cancel: async (taskId) => {
        // The first cancel asked waits 300 ms for its planner; the rest are answered at once.
        if (slowOne === undefined) {
          slowOne = taskId;
          await new Promise((r) => setTimeout(r, 300));
        }
        done.push(taskId);
      },
      announce: () => undefined,
      logger: quiet,
      node: "intake-1",
    });
    await c.set("prompt", version, { paused: true, in_flight: "abort" }, "k");
    expect(done).toHaveLength(ids.length);
    expect(done.at(-1)).toBe(slowOne);
    await c.set("prompt", version, { paused: false }, "k");
  });
});

const AGENT = parseAgentFile(
  ["---", "name: order-router", "tools: [route_order]", "tiers:", "  reason: {model: claude-haiku-5-5, max_tokens: 512}", "default_tier: reason", "---", "You route orders."].join("\n"),
  "inline:order-router.md",
);

const routeTurn = { content: [toolUse("tu_route", "route_order", { order_id: "ORD-1005" })] };
const finalTurn = { content: [text("routed")] };
const quiet = { info: () => undefined, warn: () => undefined };

/** A real TaskWorker whose claims and calls pass the switches, on a board of its own. */
function workerSetup() {
  const { board } = boardOnStore();
  const log = recorder();
  const gate = new SwitchGate({ board, logger: log.logger, cancel: async () => undefined });
  const ran: string[] = [];
  const registry = new ToolRegistry().register({
    name: "route_order",
    description: "route an order",
    sideEffect: false,
    input: z.object({ order_id: z.string() }),
    run: async (input, ctx) => (ran.push(ctx.idempotencyKey), input),
  });
  const leases = new MemoryLeaseManager();
  const worker = new TaskWorker(
    {
      store: claimsHonouringSwitches(store, board),
      leases,
      agents: new AgentCatalog([AGENT]),
      llm: new ScriptedModel([routeTurn, finalTurn]),
      tools: registry,
      toolSpecs: async (agent) => registry.specs(agent.tools),
      prices: new PriceTable(),
      logger: quiet,
      interceptors: [gate.interceptor],
    },
    { owner: "planner-a", leaseTtlMs: 5_000, leaseRenewMs: 50, maxAttempts: 3, defaultMaxSteps: 20 },
  );
  return { board, gate, worker, leases, ran, log };
}

async function workerTask(): Promise<string> {
  const id = randomUUID();
  await store.createTask({ id, agent: "order-router", input: { order_id: "ORD-1005" }, priority: "normal", metadata: {}, prompt_version: AGENT.promptVersion });
  return id;
}

describe("switches - a task worker under them", () => {

  it("a wake-up while the agent is paused starts nothing, the task stays queued; after the lift it runs to success", async () => {
    const { board, worker, ran } = workerSetup();
    const id = await workerTask();
    await set("agent", "order-router", true);
    await board.refresh();
    expect(await worker.handle(id, undefined, "submitted")).toBe("ignored_unclaimable");
    expect(await store.getTask(id)).toMatchObject({ status: "queued", attempts: 0 });
    await set("agent", "order-router", false);
    await board.refresh();
    expect(await worker.handle(id, undefined, "released")).toBe("succeeded");
    expect(ran).toEqual([`${id}:2`]);
  });

  it("a task about to call a paused tool waits before it with its lease held and nothing run, and finishes once the tool is lifted", async () => {
    const { board, gate, worker, leases, ran, log } = workerSetup();
    const id = await workerTask();
    await set("tool", "route_order", true);
    await board.refresh();
    const handled = worker.handle(id, undefined, "submitted");
    await expect.poll(() => gate.tasksAt("tool", "route_order")).toEqual([id]);
    expect(log.events("switch.held")).toHaveLength(1);
    expect(await store.getTask(id)).toMatchObject({ status: "running", steps: 1 });
    expect(await leases.held([id])).toEqual([true]);
    expect(ran).toEqual([]);

    await set("tool", "route_order", false);
    await board.refresh();
    expect(await handled).toBe("succeeded");
    expect(ran).toEqual([`${id}:2`]);
    expect(await leases.held([id])).toEqual([false]);
  });
});

describe("switches - a held task and a shutdown", () => {
  it("a shutdown ends the wait at once: the task is handed back queued, its attempt uncounted, its tool never run", async () => {
    const { board, gate, worker, ran } = workerSetup();
    const id = await workerTask();
    await set("tool", "route_order", true);
    await board.refresh();
    const handled = worker.handle(id, undefined, "submitted");
    await expect.poll(() => gate.tasksAt("tool", "route_order")).toEqual([id]);
    // The planner's order (services/planner.service.ts): the worker stops taking work, then the gate lets go.
    worker.stop(new Error("planner is shutting down"));
    gate.stop(new Error("planner is shutting down"));
    expect(await handled).toBe("released");
    expect(await store.getTask(id)).toMatchObject({ status: "queued", attempts: 0 });
    expect(ran).toEqual([]);
    await set("tool", "route_order", false);
  });
});

describe("switches - the gauge", () => {
  it("exports clawfleet_switch_paused{kind,name} as the board last read it: 1 paused, 0 lifted", async () => {
    const metrics = new Metrics({ node: "n1" });
    const switches: Switch[] = [
      { kind: "agent", name: "order-router", paused: true, in_flight: "drain", updated_by: "k", updated_at: new Date().toISOString(), version: 3 },
      { kind: "tool", name: "route_order", paused: false, in_flight: "drain", updated_by: "k", updated_at: new Date().toISOString(), version: 2 },
    ];
    metrics.attachSwitchSource(() => switches);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^clawfleet_switch_paused\{kind="agent",name="order-router",node="n1"\} 1$/m);
    expect(text).toMatch(/^clawfleet_switch_paused\{kind="tool",name="route_order",node="n1"\} 0$/m);
  });
});
