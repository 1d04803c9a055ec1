/**
 * The agent loop (`runLoop`) against a scripted model, a real tool registry and a
 * real store (PGlite in memory). Each test claims a fresh task and checks what the
 * store holds afterwards, what the model was sent and how often each tool ran.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseAgentFile, type AgentDefinition } from "../../src/agent/definition";
import { runLoop, type LoopDeps, type RunOutcome, type StepEvent } from "../../src/agent/runLoop";
import type { CompleteRequest, MessageParam, NewStep, StepRecord, TaskRecord, UserBlock } from "../../src/contracts";
import { ProviderError, ProviderRequestError, RateLimitedError, StaleFenceError, UnavailableError } from "../../src/errors";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse, type Script, type ScriptedTurn } from "../../src/llm/scriptedModel";
import type { LlmClient } from "../../src/llm/client";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { useMemoryStore } from "../helpers/memoryStore";
import { ToolRegistry } from "../../src/tools/registry";
import type { ToolContext, ToolDefinition } from "../../src/tools/tool";

// ---------------------------------------------------------------- fixtures

const ORDER = {
  order_id: "ORD-1005",
  customer: "Farah Iyer",
  region: "eu-central",
  items: [
    { sku: "SKU-1023", quantity: 2 },
    { sku: "SKU-1010", quantity: 1 },
  ],
};
const STOCK: Record<string, { can_fill: boolean }> = { "WH-FRA": { can_fill: false }, "WH-MUC": { can_fill: true }, "WH-VIE": { can_fill: false } };
const FINAL = { order_id: "ORD-1005", routed: true, warehouse_id: "WH-MUC", reason: "nearest warehouse with full stock" };

function agentFile(over: { result?: "json" | "text"; maxSteps?: number; maxTokens?: number } = {}): AgentDefinition {
  const budgets = [
    over.maxSteps !== undefined ? `  max_steps: ${over.maxSteps}` : "",
    over.maxTokens !== undefined ? `  max_tokens: ${over.maxTokens}` : "",
  ].filter(Boolean);
  const md = [
    "---",
    "name: order-router",
    "description: routes orders in tests",
    "tools: [lookup_order, check_inventory, route_order, explode]",
    "tiers:",
    "  reason:",
    "    model: claude-haiku-5-5",
    "    max_tokens: 512",
    "default_tier: reason",
    ...(budgets.length > 0 ? ["budgets:", ...budgets] : []),
    `result: ${over.result ?? "json"}`,
    "---",
    "You route orders. Answer with one JSON object.",
    "",
  ].join("\n");
  return parseAgentFile(md, "inline:order-router.md");
}

interface Call {
  tool: string;
  input: unknown;
  key: string;
  step: number;
}

/** A registry with small test tools; `calls` records every execution that reached a tool's body. */
function makeTools(hooks: { inventory?: (warehouseId: string, ctx: ToolContext) => Promise<void>; lookup?: (ctx: ToolContext) => void } = {}) {
  const calls: Call[] = [];
  const record = (tool: string, input: unknown, ctx: ToolContext) => calls.push({ tool, input, key: ctx.idempotencyKey, step: ctx.step });
  const def = <I>(d: Pick<ToolDefinition<I>, "name" | "input" | "run"> & { sideEffect?: boolean }): ToolDefinition<I> => ({
    description: `test tool ${d.name}`,
    sideEffect: false,
    ...d,
  });
  const registry = new ToolRegistry()
    .register(
      def({
        name: "lookup_order",
        input: z.object({ order_id: z.string().regex(/^ORD-\d+$/) }),
        run: async (i, ctx) => {
          record("lookup_order", i, ctx);
          hooks.lookup?.(ctx);
          return ORDER;
        },
      }),
    )
    .register(
      def({
        name: "check_inventory",
        input: z.object({ warehouse_id: z.string() }),
        run: async (i, ctx) => {
          record("check_inventory", i, ctx);
          await hooks.inventory?.(i.warehouse_id, ctx);
          return { warehouse_id: i.warehouse_id, ...(STOCK[i.warehouse_id] ?? { can_fill: false }) };
        },
      }),
    )
    .register(
      def({
        name: "route_order",
        sideEffect: true,
        input: z.object({ order_id: z.string(), warehouse_id: z.string() }),
        run: async (i, ctx) => {
          record("route_order", i, ctx);
          return { ...i, confirmation: `RT-${ctx.idempotencyKey}` };
        },
      }),
    )
    .register(
      def({
        name: "explode",
        input: z.object({}),
        run: async (i, ctx) => {
          record("explode", i, ctx);
          throw new Error("the inventory service returned garbage");
        },
      }),
    )
    // Registered, but not in the agent's allow-list.
    .register(
      def({
        name: "refund_order",
        sideEffect: true,
        input: z.object({ order_id: z.string() }),
        run: async (i, ctx) => {
          record("refund_order", i, ctx);
          return { refunded: true };
        },
      }),
    );
  return { registry, calls, count: (tool: string) => calls.filter((c) => c.tool === tool).length };
}

// ---------------------------------------------------------------- harness

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

const logs: Array<{ obj: Record<string, unknown>; msg: string }> = [];
const logger = { info: (obj: Record<string, unknown>, msg: string) => logs.push({ obj, msg }), warn: (obj: Record<string, unknown>, msg: string) => logs.push({ obj, msg }) };

function deps(model: ScriptedModel, registry: ToolRegistry, events: StepEvent[] = []): LoopDeps {
  return {
    store,
    llm: model,
    tools: registry,
    toolSpecs: async (agent) => registry.specs(agent.tools),
    prices: new PriceTable(),
    logger,
    retry: { baseDelayMs: 1, maxDelayMs: 5, maxProviderRetries: 4, maxRateLimitWaitMs: 2_000 },
    onStep: (e) => events.push(e),
  };
}

async function newTask(input: unknown = { order_id: "ORD-1005" }): Promise<string> {
  const id = randomUUID();
  await store.createTask({ id, agent: "order-router", input, priority: "normal", metadata: {}, prompt_version: "test" });
  return id;
}

async function claim(id: string, owner = "planner-a"): Promise<{ task: TaskRecord; fence: number }> {
  const c = await store.claimTask(id, owner);
  if (!c) throw new Error(`could not claim ${id}`);
  return c;
}

async function run(d: LoopDeps, id: string, agent: AgentDefinition, signal = new AbortController().signal): Promise<RunOutcome> {
  const { task, fence } = await claim(id);
  return runLoop(d, { task, fence, agent, defaultMaxSteps: 20, signal });
}

async function getTask(id: string): Promise<TaskRecord> {
  const t = await store.getTask(id);
  if (!t) throw new Error(`task ${id} vanished`);
  return t;
}

const shape = (steps: StepRecord[]) => steps.map((s) => (s.kind === "llm" ? `${s.step}:llm` : `${s.step}:tool:${s.data.tool}`));
const toolSteps = (steps: StepRecord[]) => steps.flatMap((s) => (s.kind === "tool" ? [s] : []));

/**
 * The store, with each appendStep, finishTask and finishWithStep recorded in `log` once it has committed;
 * `hold`: a step's write waits for it first.
 */
function recordingStore(log: string[], hold: (step: NewStep) => Promise<void> | undefined = () => undefined): PgTaskStore {
  return Object.assign(Object.create(store) as PgTaskStore, {
    appendStep: async (...args: Parameters<PgTaskStore["appendStep"]>) => {
      await hold(args[2]);
      const r = await store.appendStep(...args);
      log.push(`append:${args[2].step}`);
      return r;
    },
    finishTask: async (...args: Parameters<PgTaskStore["finishTask"]>) => {
      await store.finishTask(...args);
      log.push(`finish:${args[2].status}`);
    },
    finishWithStep: async (...args: Parameters<PgTaskStore["finishWithStep"]>) => {
      await store.finishWithStep(...args);
      log.push(`finish:${args[2].status}+${args[3].step.step}`);
    },
  });
}

function lastUserBlocks(messages: readonly MessageParam[]): UserBlock[] {
  const last = messages[messages.length - 1];
  if (!last || last.role !== "user" || typeof last.content === "string") throw new Error("the last message is not a user message with blocks");
  return last.content;
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

const finalTurn = (answer: unknown = FINAL): ScriptedTurn => ({ content: [text(JSON.stringify(answer))] });

// ---------------------------------------------------------------- tests

describe("agent loop - happy path", () => {
  it("feeds a tool's output back as tool_result and checkpoints llm, tool, llm in order", async () => {
    const id = await newTask();
    const { registry, calls } = makeTools();
    const model = new ScriptedModel([
      { content: [text("Let me look the order up."), toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })], usage: { input_tokens: 300, output_tokens: 40 } },
      { content: [text(`Routed.\n${JSON.stringify(FINAL)}`)], usage: { input_tokens: 500, output_tokens: 60 } },
    ]);
    const events: StepEvent[] = [];

    const outcome = await run(deps(model, registry, events), id, agentFile());

    expect(outcome).toEqual({ kind: "succeeded", result: FINAL });
    const task = await getTask(id);
    expect(task.status).toBe("succeeded");
    expect(task.result).toEqual(FINAL);
    expect(task.steps).toBe(3);
    // haiku-5-5: $1 / $5 per million input / output tokens.
    expect(task.usage).toMatchObject({ input_tokens: 800, output_tokens: 100, cost_usd: (800 * 1 + 100 * 5) / 1e6 });

    const steps = await store.listSteps(id);
    expect(shape(steps)).toEqual(["1:llm", "2:tool:lookup_order", "3:llm"]);
    const [llm1, tool2, llm3] = steps;
    expect(llm1).toMatchObject({ kind: "llm", data: { model: "claude-haiku-5-5", tier: "reason", stop_reason: "tool_use" } });
    expect(llm1?.data).toMatchObject({ usage: { input_tokens: 300, output_tokens: 40 } });
    expect(tool2?.data).toMatchObject({ tool: "lookup_order", tool_use_id: "tu_1", input: { order_id: "ORD-1005" }, output: ORDER, ok: true, idempotency_key: `${id}:2` });
    expect(llm3?.data).toMatchObject({ stop_reason: "end_turn" });
    expect(calls).toEqual([{ tool: "lookup_order", input: { order_id: "ORD-1005" }, key: `${id}:2`, step: 2 }]);
    expect(events.map((e) => `${e.step}:${e.kind}`)).toEqual(["1:llm", "2:tool", "3:llm"]);

    // What the model was sent.
    expect(model.requests).toHaveLength(2);
    const [first, second] = model.requests;
    expect(first).toMatchObject({ taskId: id, agent: "order-router", step: 1, model: "claude-haiku-5-5", maxTokens: 512, tier: "reason" });
    expect(first?.system).toBe("You route orders. Answer with one JSON object.");
    expect(first?.tools.map((t) => t.name)).toEqual(["lookup_order", "check_inventory", "route_order", "explode"]);
    expect(first?.messages).toEqual([{ role: "user", content: JSON.stringify({ order_id: "ORD-1005" }) }]);
    expect(second?.step).toBe(3);
    expect(second?.messages).toEqual([
      { role: "user", content: JSON.stringify({ order_id: "ORD-1005" }) },
      { role: "assistant", content: [text("Let me look the order up."), toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "tu_1", content: JSON.stringify(ORDER) }] },
    ]);
  });

  it("keeps a json agent's non-JSON answer as text with a parse_error", async () => {
    const id = await newTask("route ORD-1005 please");
    const { registry } = makeTools();
    const model = new ScriptedModel([{ content: [text("I could not decide where to route it.")] }]);

    const outcome = await run(deps(model, registry), id, agentFile());

    const expected = { text: "I could not decide where to route it.", parse_error: "the final answer holds no JSON object" };
    expect(outcome).toEqual({ kind: "succeeded", result: expected });
    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: expected });
    // A string input is sent as it is.
    expect(model.requests[0]?.messages).toEqual([{ role: "user", content: "route ORD-1005 please" }]);
  });

  it("keeps a text agent's answer as text even when it looks like JSON", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const model = new ScriptedModel([finalTurn()]);

    await run(deps(model, registry), id, agentFile({ result: "text" }));

    expect((await getTask(id)).result).toEqual({ text: JSON.stringify(FINAL) });
  });
});

describe("agent loop - tool calls", () => {
  it("gives each parallel tool_use its own step and returns the results in call order", async () => {
    const id = await newTask();
    // The first call finishes last, so completion order differs from call order.
    const delays: Record<string, number> = { "WH-FRA": 60, "WH-MUC": 30, "WH-VIE": 0 };
    const { registry, calls } = makeTools({ inventory: (wh) => new Promise((r) => setTimeout(r, delays[wh] ?? 0)) });
    const model = new ScriptedModel([
      {
        content: [
          toolUse("tu_fra", "check_inventory", { warehouse_id: "WH-FRA" }),
          toolUse("tu_muc", "check_inventory", { warehouse_id: "WH-MUC" }),
          toolUse("tu_vie", "check_inventory", { warehouse_id: "WH-VIE" }),
        ],
      },
      finalTurn(),
    ]);

    const outcome = await run(deps(model, registry), id, agentFile());

    expect(outcome.kind).toBe("succeeded");
    const steps = await store.listSteps(id);
    expect(shape(steps)).toEqual(["1:llm", "2:tool:check_inventory", "3:tool:check_inventory", "4:tool:check_inventory", "5:llm"]);
    expect(toolSteps(steps).map((s) => [s.step, s.data.tool_use_id, s.data.idempotency_key])).toEqual([
      [2, "tu_fra", `${id}:2`],
      [3, "tu_muc", `${id}:3`],
      [4, "tu_vie", `${id}:4`],
    ]);
    expect(calls.map((c) => c.key).sort()).toEqual([`${id}:2`, `${id}:3`, `${id}:4`]);
    const results = lastUserBlocks(model.requests[1]?.messages ?? []);
    expect(results).toEqual([
      { type: "tool_result", tool_use_id: "tu_fra", content: JSON.stringify({ warehouse_id: "WH-FRA", can_fill: false }) },
      { type: "tool_result", tool_use_id: "tu_muc", content: JSON.stringify({ warehouse_id: "WH-MUC", can_fill: true }) },
      { type: "tool_result", tool_use_id: "tu_vie", content: JSON.stringify({ warehouse_id: "WH-VIE", can_fill: false }) },
    ]);
    expect(model.requests[1]?.step).toBe(5);
  });

  it("shows a tool that throws to the model as an is_error result, and the task can still succeed", async () => {
    const id = await newTask();
    const { registry, count } = makeTools();
    const model = new ScriptedModel([{ content: [toolUse("tu_x", "explode", {})] }, finalTurn()]);

    const outcome = await run(deps(model, registry), id, agentFile());

    expect(outcome.kind).toBe("succeeded");
    expect(count("explode")).toBe(1);
    expect(lastUserBlocks(model.requests[1]?.messages ?? [])).toEqual([
      { type: "tool_result", tool_use_id: "tu_x", content: JSON.stringify({ error: "the inventory service returned garbage" }), is_error: true },
    ]);
    const tool = toolSteps(await store.listSteps(id))[0];
    expect(tool?.data).toMatchObject({ ok: false, output: { error: "the inventory service returned garbage" } });
    expect((await getTask(id)).status).toBe("succeeded");
  });

  it("answers an unknown tool and a tool outside the agent's allow-list with is_error results, running neither", async () => {
    const id = await newTask();
    const { registry, calls } = makeTools();
    const model = new ScriptedModel([
      { content: [toolUse("tu_a", "teleport_order", { order_id: "ORD-1005" }), toolUse("tu_b", "refund_order", { order_id: "ORD-1005" })] },
      finalTurn(),
    ]);

    const outcome = await run(deps(model, registry), id, agentFile());

    expect(outcome.kind).toBe("succeeded");
    expect(calls).toEqual([]);
    const [a, b] = lastUserBlocks(model.requests[1]?.messages ?? []);
    expect(a).toMatchObject({ tool_use_id: "tu_a", is_error: true });
    expect(a?.type === "tool_result" && a.content).toContain('tool \\"teleport_order\\" is not available to agent order-router');
    expect(b).toMatchObject({ tool_use_id: "tu_b", is_error: true });
    expect(b?.type === "tool_result" && b.content).toContain("refund_order");
    expect(toolSteps(await store.listSteps(id)).map((s) => [s.step, s.data.tool, s.data.ok])).toEqual([
      [2, "teleport_order", false],
      [3, "refund_order", false],
    ]);
  });

  it("answers input that fails the tool's schema with an is_error result naming the field", async () => {
    const id = await newTask();
    const { registry, count } = makeTools();
    const model = new ScriptedModel([{ content: [toolUse("tu_1", "lookup_order", { order_id: 1005 })] }, finalTurn()]);

    await run(deps(model, registry), id, agentFile());

    expect(count("lookup_order")).toBe(0);
    const [block] = lastUserBlocks(model.requests[1]?.messages ?? []);
    expect(block).toMatchObject({ type: "tool_result", tool_use_id: "tu_1", is_error: true });
    const output = JSON.parse(block?.type === "tool_result" ? block.content : "null") as { error: string; issues: Array<{ path: string }> };
    expect(output.error).toBe("invalid input");
    expect(output.issues.map((i) => i.path)).toEqual(["order_id"]);
    expect((await getTask(id)).status).toBe("succeeded");
  });
});

describe("agent loop - budgets and model behaviour", () => {
  const lookupTurn = (turn: number) => ({ content: [toolUse(`tu_${turn}`, "lookup_order", { order_id: "ORD-1005" })] });
  const alwaysLookup: Script = (_req, turn) => lookupTurn(turn);

  it("fails with budget_exceeded once max_steps are spent by a model that never stops calling tools", async () => {
    const id = await newTask();
    const { registry, count } = makeTools();
    const model = new ScriptedModel(alwaysLookup);

    const outcome = await run(deps(model, registry), id, agentFile({ maxSteps: 4 }));

    expect(outcome).toEqual({ kind: "failed", error: { type: "budget_exceeded", message: "step budget of 4 spent before the agent finished" } });
    expect(model.requests.map((r) => r.step)).toEqual([1, 3]);
    expect(count("lookup_order")).toBe(2);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:lookup_order", "3:llm", "4:tool:lookup_order"]);
    const task = await getTask(id);
    expect(task.status).toBe("failed");
    expect(task.error).toEqual({ type: "budget_exceeded", message: "step budget of 4 spent before the agent finished" });
    expect((await store.listDeadLetters(100)).find((d) => d.task_id === id)?.error.type).toBe("budget_exceeded");
  });

  it("uses the worker's default step budget when the agent sets none", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const model = new ScriptedModel(alwaysLookup);
    const { task, fence } = await claim(id);

    const outcome = await runLoop(deps(model, registry), { task, fence, agent: agentFile(), defaultMaxSteps: 2, signal: new AbortController().signal });

    expect(outcome).toMatchObject({ kind: "failed", error: { type: "budget_exceeded" } });
    expect(model.requests).toHaveLength(1);
  });

  it("fails with budget_exceeded once the token budget is spent", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    // 120 tokens a turn against a budget of 250: the third turn crosses it, no fourth is made.
    const model = new ScriptedModel((_req, turn) => ({ ...lookupTurn(turn), usage: { input_tokens: 100, output_tokens: 20 } }));

    const outcome = await run(deps(model, registry), id, agentFile({ maxTokens: 250 }));

    expect(outcome).toEqual({ kind: "failed", error: { type: "budget_exceeded", message: "token budget of 250 spent before the agent finished" } });
    expect(model.requests).toHaveLength(3);
    const task = await getTask(id);
    expect(task).toMatchObject({ status: "failed", error: { type: "budget_exceeded" } });
    expect(task.usage.input_tokens + task.usage.output_tokens).toBe(360);
  });

  it("fails with a model_behavior_error when the answer is cut off at max_tokens", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const model = new ScriptedModel([{ content: [text('{"order_id": "ORD-1005", "rout')], stop_reason: "max_tokens" }]);

    const outcome = await run(deps(model, registry), id, agentFile());

    const error = { type: "model_behavior_error", message: "the model's answer was cut off at max_tokens (512)" };
    expect(outcome).toEqual({ kind: "failed", error });
    expect(await getTask(id)).toMatchObject({ status: "failed", error, result: null });
    expect(shape(await store.listSteps(id))).toEqual(["1:llm"]);
  });
});

describe("agent loop - the last checkpoint goes with the terminal write", () => {
  it("stores the final answer in the one finishWithStep that ends the task, and announces its step only after that commit", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const model = new ScriptedModel([
      { content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })], usage: { input_tokens: 300, output_tokens: 40 } },
      { content: [text(JSON.stringify(FINAL))], usage: { input_tokens: 500, output_tokens: 60 } },
    ]);
    const log: string[] = [];
    const d = { ...deps(model, registry), store: recordingStore(log), onStep: (e: StepEvent) => log.push(`step:${e.step}`) };

    expect(await run(d, id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });

    expect(log).toEqual(["append:1", "step:1", "append:2", "step:2", "finish:succeeded+3", "step:3"]);
    const steps = await store.listSteps(id);
    expect(shape(steps)).toEqual(["1:llm", "2:tool:lookup_order", "3:llm"]);
    expect(steps[2]).toMatchObject({ fence: 1, data: { stop_reason: "end_turn", usage: { input_tokens: 500, output_tokens: 60 }, content: [text(JSON.stringify(FINAL))] } });
    // The folded write adds the last turn's usage, as its own checkpoint did.
    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: FINAL, steps: 3, usage: { input_tokens: 800, output_tokens: 100 } });
  });

  it("stores a cut-off answer with the failure it ends the task on, in one write", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const model = new ScriptedModel([{ content: [text('{"order_id": "ORD-1005", "rout')], stop_reason: "max_tokens", usage: { input_tokens: 100, output_tokens: 512 } }]);
    const log: string[] = [];
    const d = { ...deps(model, registry), store: recordingStore(log), onStep: (e: StepEvent) => log.push(`step:${e.step}`) };

    expect((await run(d, id, agentFile())).kind).toBe("failed");

    expect(log).toEqual(["finish:failed+1", "step:1"]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm"]);
    expect(await getTask(id)).toMatchObject({ status: "failed", steps: 1, usage: { input_tokens: 100, output_tokens: 512 } });
    expect((await store.listDeadLetters(1000)).some((l) => l.task_id === id)).toBe(true);
  });
});

describe("agent loop - the next model turn is asked while the tool calls' checkpoints are stored", () => {
  /**
   * A model that logs each call as it starts (`label`), answering from `script`; `asked(step)` resolves once
   * that step has been asked, or after 2 s when it never is (as in a loop that waits for every write).
   */
  function askLog(log: string[], script: ScriptedModel, label = (req: CompleteRequest) => `ask:${req.step}`) {
    const seen = new Set<number>();
    const waiting = new Map<number, () => void>();
    const model: LlmClient = {
      complete: (req) => {
        log.push(label(req));
        seen.add(req.step);
        waiting.get(req.step)?.();
        return script.complete(req);
      },
    };
    const asked = (step: number) =>
      seen.has(step)
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            waiting.set(step, resolve);
            setTimeout(resolve, 2_000);
          });
    return { model, asked };
  }


  it("asks the model while the tool's checkpoint is on its way, and checkpoints the answer after it", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const log: string[] = [];
    const script = new ScriptedModel([{ content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] }, finalTurn()]);
    const { model, asked } = askLog(log, script);
    // The tool's checkpoint is held until the next turn has been asked.
    const held = recordingStore(log, (step) => (step.kind === "tool" ? asked(3) : undefined));
    const d: LoopDeps = { ...deps(script, registry), llm: model, store: held, onStep: (e: StepEvent) => log.push(`step:${e.step}`) };

    expect(await run(d, id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });

    expect(log).toEqual(["ask:1", "append:1", "step:1", "ask:3", "append:2", "step:2", "finish:succeeded+3", "step:3"]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:lookup_order", "3:llm"]);
  });

  it("a tiered agent asks its first turn while the classification's checkpoint is on its way", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const agent = parseAgentFile(
      [
        "---",
        "name: order-router",
        "tools: [lookup_order]",
        "tiers:",
        "  classify:",
        "    model: claude-haiku-5-5",
        "    max_tokens: 256",
        "  reason:",
        "    model: claude-sonnet-5-5",
        "    max_tokens: 512",
        "default_tier: reason",
        "router:",
        "  classify_tier: classify",
        "  simple_label: simple",
        "result: json",
        "---",
        "You route orders. Answer with one JSON object.",
        "",
      ].join("\n"),
      "inline:order-router.md",
    );
    const log: string[] = [];
    const script = new ScriptedModel([{ content: [text('{"complexity": "complex"}')] }, finalTurn()]);
    const { model, asked } = askLog(log, script, (req) => `ask:${req.step}:${req.model}`);
    // The classification's checkpoint is held until the first turn has been asked.
    const held = recordingStore(log, (step) => (step.step === 1 ? asked(2) : undefined));

    expect(await run({ ...deps(script, registry), llm: model, store: held }, id, agent)).toEqual({ kind: "succeeded", result: FINAL });

    expect(log).toEqual(["ask:1:claude-haiku-5-5", "ask:2:claude-sonnet-5-5", "append:1", "finish:succeeded+2"]);
    expect((await store.listSteps(id)).map((s) => (s.kind === "llm" ? `${s.step}:${s.data.tier}` : ""))).toEqual(["1:classify", "2:reason"]);
  });

  it("a tool checkpoint refused (the fence went stale) cuts the turn asked meanwhile short and ends the attempt with the refusal", async () => {
    const id = await newTask();
    // A successor claims the task while the tool runs: the tool's checkpoint, under the old fence, is refused.
    const { registry } = makeTools({ inventory: async () => void (await claim(id, "planner-b")) });
    let cutShort: unknown;
    const model: LlmClient = {
      complete: (req, signal) => {
        if (req.step === 1) return new ScriptedModel([{ content: [toolUse("tu_1", "check_inventory", { warehouse_id: "WH-MUC" })] }]).complete(req);
        // The next turn answers only when cut short.
        return new Promise((_resolve, reject) => {
          const stop = () => {
            cutShort = signal?.reason;
            reject(signal?.reason instanceof Error ? signal.reason : new Error("cut short"));
          };
          if (signal?.aborted) stop();
          else signal?.addEventListener("abort", stop, { once: true });
        });
      },
    };
    const { task, fence } = await claim(id);

    await expect(runLoop({ ...deps(new ScriptedModel([]), registry), llm: model }, { task, fence, agent: agentFile(), defaultMaxSteps: 20, signal: new AbortController().signal })).rejects.toBeInstanceOf(
      StaleFenceError,
    );
    expect(cutShort).toBeInstanceOf(StaleFenceError);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm"]);
  });

  it("a tool checkpoint that fails while the turn's other call still runs is handled; the turn asked meanwhile is cut short once, not made again", async () => {
    const id = await newTask();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      // The first call's checkpoint fails at once (a retryable store error); the second call runs 100 ms more.
      const { registry } = makeTools({ inventory: (warehouseId) => (warehouseId === "WH-VIE" ? new Promise((resolve) => setTimeout(resolve, 100)) : Promise.resolve()) });
      const failing: PgTaskStore = Object.assign(Object.create(store) as PgTaskStore, {
        appendStep: async (...args: Parameters<PgTaskStore["appendStep"]>) => {
          if (args[2].step === 2) throw new UnavailableError("the database went away", { operation: "appendStep" });
          return store.appendStep(...args);
        },
      });
      const asked: number[] = [];
      const model: LlmClient = {
        complete: (req, signal) => {
          if (req.step === 1) {
            const both = [toolUse("tu_1", "check_inventory", { warehouse_id: "WH-FRA" }), toolUse("tu_2", "check_inventory", { warehouse_id: "WH-VIE" })];
            return new ScriptedModel([{ content: both }]).complete(req);
          }
          asked.push(req.step);
          // The next turn answers only when cut short.
          return new Promise((_resolve, reject) => {
            const stop = () => reject(signal?.reason instanceof Error ? signal.reason : new Error("cut short"));
            if (signal?.aborted) stop();
            else signal?.addEventListener("abort", stop, { once: true });
          });
        },
      };

      await expect(run({ ...deps(new ScriptedModel([]), registry), llm: model, store: failing }, id, agentFile())).rejects.toBeInstanceOf(UnavailableError);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
      expect(asked.length).toBeLessThanOrEqual(1);
      expect(shape(await store.listSteps(id))).toEqual(["1:llm", "3:tool:check_inventory"]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("a stop while the tool's checkpoint is stored finds the next turn asked: its answer is checkpointed, then the attempt stops", async () => {
    const id = await newTask();
    const { registry, count } = makeTools();
    const stop = new AbortController();
    const log: string[] = [];
    const script = new ScriptedModel([{ content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] }, { content: [toolUse("tu_2", "check_inventory", { warehouse_id: "WH-MUC" })] }]);
    const { model, asked } = askLog(log, script);
    // The tool's checkpoint is held until the next turn has been asked; the stop comes with its step event.
    const held = recordingStore(log, (step) => (step.kind === "tool" ? asked(3) : undefined));
    const d: LoopDeps = { ...deps(script, registry), llm: model, store: held, onStep: (e: StepEvent) => e.step === 2 && stop.abort(new Error("shutting down")) };

    expect((await run(d, id, agentFile(), stop.signal)).kind).toBe("interrupted");

    expect(log).toEqual(["ask:1", "append:1", "ask:3", "append:2", "append:3"]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:lookup_order", "3:llm"]);
    // Stopped at the step boundary after the answer: its tool call is owed to whoever resumes the task.
    expect(count("check_inventory")).toBe(0);
  });
});

describe("agent loop - calls that change nothing are made before their turn's checkpoint, and stored with it", () => {
  /** The loop's deps, told by the executor which tools are side effects, as the planner's are. */
  const told = (model: LlmClient, registry: ToolRegistry, d: Partial<LoopDeps> = {}): LoopDeps => ({
    ...deps(new ScriptedModel([]), registry),
    llm: model,
    sideEffectTools: async () => new Set(["route_order", "refund_order"]),
    // Held as long as the calls take here, however slow the machine; the hold running out has its own test.
    holdTurnMs: 60_000,
    ...d,
  });

  /** `recordingStore`, with each appendSteps recorded too (`appendSteps:1,2,…`) once it has committed. */
  function withSteps(log: string[], base: PgTaskStore = recordingStore(log)): PgTaskStore {
    return Object.assign(Object.create(base) as PgTaskStore, {
      appendSteps: async (...args: Parameters<PgTaskStore["appendSteps"]>) => {
        await store.appendSteps(...args);
        log.push(`appendSteps:${args[2].map((s) => s.step.step).join(",")}`);
      },
    });
  }

  it("runs a turn's calls first, then stores the turn and every result in one appendSteps, announced in step order", async () => {
    const id = await newTask();
    const log: string[] = [];
    // WH-FRA, asked first, answers last: the results are still stored and announced in step order.
    const { registry, calls } = makeTools({
      lookup: () => void log.push("tool:lookup_order"),
      inventory: async (w) => {
        if (w === "WH-FRA") await new Promise((r) => setTimeout(r, 30));
        log.push(`tool:${w}`);
      },
    });
    const model = new ScriptedModel([
      { content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })], usage: { input_tokens: 300, output_tokens: 40 } },
      { content: [toolUse("tu_2", "check_inventory", { warehouse_id: "WH-FRA" }), toolUse("tu_3", "check_inventory", { warehouse_id: "WH-MUC" })], usage: { input_tokens: 400, output_tokens: 50 } },
      { content: [text(JSON.stringify(FINAL))], usage: { input_tokens: 500, output_tokens: 60 } },
    ]);
    const d = told(model, registry, { store: withSteps(log), onStep: (e) => log.push(`step:${e.step}`) });

    expect(await run(d, id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });

    expect(log).toEqual([
      "tool:lookup_order",
      "appendSteps:1,2",
      "step:1",
      "step:2",
      "tool:WH-MUC",
      "tool:WH-FRA",
      "appendSteps:3,4,5",
      "step:3",
      "step:4",
      "step:5",
      "finish:succeeded+6",
      "step:6",
    ]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:lookup_order", "3:llm", "4:tool:check_inventory", "5:tool:check_inventory", "6:llm"]);
    expect(calls.map((c) => c.key)).toEqual([`${id}:2`, `${id}:4`, `${id}:5`]);
    expect(await getTask(id)).toMatchObject({ steps: 6, usage: { input_tokens: 1200, output_tokens: 150 } });
  });

  it("calls that outlast the hold have their turn checkpointed alone first, its results after it", async () => {
    const id = await newTask();
    const log: string[] = [];
    let turnStored!: () => void;
    const stored = new Promise<void>((r) => (turnStored = r));
    // The call answers only once its turn is stored: it outlasts any hold.
    const { registry } = makeTools({
      inventory: async (w) => {
        await Promise.race([stored, new Promise((r) => setTimeout(r, 5_000))]);
        log.push(`tool:${w}`);
      },
    });
    const base = recordingStore(log);
    const watched = Object.assign(Object.create(base) as PgTaskStore, {
      appendStep: async (...args: Parameters<PgTaskStore["appendStep"]>) => {
        const r = await base.appendStep(...args);
        if (args[2].step === 1) turnStored();
        return r;
      },
    });
    const model = new ScriptedModel([{ content: [toolUse("tu_1", "check_inventory", { warehouse_id: "WH-MUC" })] }, finalTurn()]);
    const d = told(model, registry, { store: withSteps(log, watched), onStep: (e) => log.push(`step:${e.step}`), holdTurnMs: 5 });

    expect(await run(d, id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });

    expect(log).toEqual(["append:1", "step:1", "tool:WH-MUC", "append:2", "step:2", "finish:succeeded+3", "step:3"]);
    expect(await getTask(id)).toMatchObject({ steps: 3 });
  });

  it("checkpoints a turn with a side-effect call, its ledger row with it, before the call runs", async () => {
    const id = await newTask();
    const log: string[] = [];
    const { registry } = makeTools({ lookup: () => void log.push("tool:lookup_order") });
    const model = new ScriptedModel([
      { content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" }), toolUse("tu_2", "route_order", { order_id: "ORD-1005", warehouse_id: "WH-MUC" })] },
      finalTurn(),
    ]);
    const d = told(model, registry, { store: withSteps(log) });

    expect(await run(d, id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });

    expect(log.slice(0, 2)).toEqual(["append:1", "tool:lookup_order"]);
    expect(log.filter((l) => l.startsWith("appendSteps"))).toEqual([]);
    expect(await store.getToolCall(`${id}:3`)).toMatchObject({ starts: 1 });
  });

  it("checkpoints every turn before its calls while the executor has not said which tools are side effects", async () => {
    const id = await newTask();
    const log: string[] = [];
    const { registry } = makeTools({ lookup: () => void log.push("tool:lookup_order") });
    const model = new ScriptedModel([{ content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] }, finalTurn()]);
    const d = told(model, registry, { store: withSteps(log), sideEffectTools: async () => undefined });

    expect(await run(d, id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });

    expect(log.slice(0, 3)).toEqual(["append:1", "tool:lookup_order", "append:2"]);
  });

  it("a checkpoint service that predates appendSteps gets the turn, then each result, one by one in step order", async () => {
    const id = await newTask();
    const log: string[] = [];
    const { registry } = makeTools();
    const model = new ScriptedModel([
      { content: [toolUse("tu_1", "check_inventory", { warehouse_id: "WH-FRA" }), toolUse("tu_2", "check_inventory", { warehouse_id: "WH-MUC" })] },
      finalTurn(),
    ]);
    const missing = Object.assign(new Error("Service 'checkpoint.appendSteps' is not found."), { name: "ServiceNotFoundError", data: { action: "checkpoint.appendSteps" } });
    const old = Object.assign(Object.create(recordingStore(log)) as PgTaskStore, { appendSteps: async () => Promise.reject(missing) });
    const d = told(model, registry, { store: old, onStep: (e) => log.push(`step:${e.step}`) });

    expect(await run(d, id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });

    expect(log).toEqual(["append:1", "append:2", "append:3", "step:1", "step:2", "step:3", "finish:succeeded+4", "step:4"]);
  });

  it("a write that fails loses the turn and its results: whoever resumes asks the model again and makes the calls again", async () => {
    const id = await newTask();
    const { registry, count } = makeTools();
    const turns = [{ content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] }, finalTurn()];
    const failing = Object.assign(Object.create(store) as PgTaskStore, { appendSteps: async () => Promise.reject(new UnavailableError("the database went away")) });
    const first = new ScriptedModel(turns);

    await expect(run(told(first, registry, { store: failing }), id, agentFile())).rejects.toBeInstanceOf(UnavailableError);
    expect(await store.listSteps(id)).toEqual([]);
    expect(await getTask(id)).toMatchObject({ steps: 0, usage: { input_tokens: 0 } });

    const second = new ScriptedModel(turns);
    expect(await run(told(second, registry), id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });
    expect(second.requests.map((r) => r.step)).toEqual([1, 3]);
    expect(count("lookup_order")).toBe(2);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:lookup_order", "3:llm"]);
  });

  it("a call that fails on the way to its tool ends the attempt with the turn and the other results stored; only it is made again", async () => {
    const id = await newTask();
    const { registry, count } = makeTools();
    const sent: Array<{ tool: string; unstored: unknown }> = [];
    let down = true;
    // The way to WH-MUC's tool is broken once (as a side-effect tool refuses a call whose turn is not stored).
    const tools = {
      run: async (call: Parameters<ToolRegistry["run"]>[0]) => {
        sent.push({ tool: `${call.tool}:${JSON.stringify(call.input)}`, unstored: call.unstored });
        if (down && (call.input as { warehouse_id?: string }).warehouse_id === "WH-MUC") {
          down = false;
          throw new UnavailableError("the executor is restarting");
        }
        return registry.run(call);
      },
    };
    const turn = { content: [toolUse("tu_1", "check_inventory", { warehouse_id: "WH-FRA" }), toolUse("tu_2", "check_inventory", { warehouse_id: "WH-MUC" })] };

    await expect(run(told(new ScriptedModel([turn]), registry, { tools }), id, agentFile())).rejects.toBeInstanceOf(UnavailableError);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:check_inventory"]);
    expect(sent.every((c) => c.unstored === true)).toBe(true);

    const resumed = new ScriptedModel([finalTurn()]);
    expect(await run(told(resumed, registry, { tools }), id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });
    expect(resumed.requests.map((r) => r.step)).toEqual([4]);
    expect(count("check_inventory")).toBe(2);
    // The resumed call's turn is stored: it goes as any other.
    expect(sent.at(-1)).toEqual({ tool: 'check_inventory:{"warehouse_id":"WH-MUC"}', unstored: undefined });
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:check_inventory", "3:tool:check_inventory", "4:llm"]);
  });

  it("a stop while the calls run leaves the turn and their results stored: the resumed attempt makes neither again", async () => {
    const id = await newTask();
    const stop = new AbortController();
    const { registry, count } = makeTools({ lookup: () => stop.abort(new Error("shutting down")) });
    const model = new ScriptedModel([{ content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] }]);

    expect(await run(told(model, registry), id, agentFile(), stop.signal)).toMatchObject({ kind: "interrupted" });
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:lookup_order"]);

    const resumed = new ScriptedModel([finalTurn()]);
    expect(await run(told(resumed, registry), id, agentFile())).toEqual({ kind: "succeeded", result: FINAL });
    expect(resumed.requests.map((r) => r.step)).toEqual([3]);
    expect(count("lookup_order")).toBe(1);
  });
});

describe("agent loop - resume", () => {
  it("resumes after a tool step without calling the model or the tool again for checkpointed steps", async () => {
    const id = await newTask();
    const controller = new AbortController();
    // The tool completes, but the attempt is told to stop (as on SIGTERM) while it runs.
    const { registry, count } = makeTools({ lookup: () => controller.abort(new Error("shutting down")) });
    const agent = agentFile();
    const firstModel = new ScriptedModel([{ content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] }]);

    const first = await run(deps(firstModel, registry), id, agent, controller.signal);
    expect(first.kind).toBe("interrupted");
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:lookup_order"]);

    // A new claim (new fence), a fresh model process: only step 3 is owed.
    const secondModel = new ScriptedModel([finalTurn()]);
    const second = await run(deps(secondModel, registry), id, agent);

    expect(second).toEqual({ kind: "succeeded", result: FINAL });
    expect(firstModel.requests).toHaveLength(1);
    expect(secondModel.requests).toHaveLength(1);
    expect(secondModel.requests[0]?.step).toBe(3);
    const resumed = secondModel.requests[0]?.messages ?? [];
    expect(resumed.slice(0, 2)).toEqual([
      { role: "user", content: JSON.stringify({ order_id: "ORD-1005" }) },
      { role: "assistant", content: [toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] },
    ]);
    // jsonb does not keep key order, so the replayed result is compared as JSON, not as bytes.
    const [replayed] = lastUserBlocks(resumed);
    expect(replayed).toMatchObject({ type: "tool_result", tool_use_id: "tu_1" });
    expect(replayed).not.toHaveProperty("is_error");
    expect(JSON.parse(replayed?.type === "tool_result" ? replayed.content : "null")).toEqual(ORDER);
    expect(count("lookup_order")).toBe(1);
    const steps = await store.listSteps(id);
    expect(shape(steps)).toEqual(["1:llm", "2:tool:lookup_order", "3:llm"]);
    expect(steps.map((s) => s.fence)).toEqual([1, 1, 2]);
    const task = await getTask(id);
    expect(task).toMatchObject({ status: "succeeded", attempts: 2, fence: 2 });
    expect(task.usage.input_tokens).toBe(200);
    expect(logs.some((l) => l.obj.taskId === id && l.obj.event === "task.resumed" && l.obj.step === 3)).toBe(true);
  });

  it("runs the owed tool calls of a checkpointed model turn without calling the model for that turn again", async () => {
    const id = await newTask();
    const controller = new AbortController();
    const { registry, calls } = makeTools();
    const agent = agentFile();
    // The stop arrives while the model is answering: the answer is checkpointed, its tool calls are not made.
    const firstModel = new ScriptedModel(() => {
      controller.abort(new Error("shutting down"));
      return { content: [toolUse("tu_1", "route_order", { order_id: "ORD-1005", warehouse_id: "WH-MUC" })] };
    });

    expect((await run(deps(firstModel, registry), id, agent, controller.signal)).kind).toBe("interrupted");
    expect(shape(await store.listSteps(id))).toEqual(["1:llm"]);
    expect(calls).toEqual([]);

    const secondModel = new ScriptedModel([finalTurn()]);
    expect((await run(deps(secondModel, registry), id, agent)).kind).toBe("succeeded");

    expect(firstModel.requests).toHaveLength(1);
    expect(secondModel.requests.map((r) => r.step)).toEqual([3]);
    expect(calls).toEqual([{ tool: "route_order", input: { order_id: "ORD-1005", warehouse_id: "WH-MUC" }, key: `${id}:2`, step: 2 }]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "2:tool:route_order", "3:llm"]);
  });

  it("re-runs only the owed calls of a parallel turn, with the same idempotency keys, and keeps call order", async () => {
    const id = await newTask();
    let backendDown = true;
    const muc = gate();
    // Attempt 1: WH-MUC answers and is checkpointed; WH-FRA and WH-VIE then fail with an infrastructure error.
    const { registry, calls } = makeTools({
      inventory: async (wh) => {
        if (!backendDown) return;
        if (wh === "WH-MUC") return;
        await muc.wait;
        throw new UnavailableError("inventory back end unreachable");
      },
    });
    const agent = agentFile();
    const turn: ScriptedTurn = {
      content: [
        text("Checking the three eu-central warehouses."),
        toolUse("tu_fra", "check_inventory", { warehouse_id: "WH-FRA" }),
        toolUse("tu_muc", "check_inventory", { warehouse_id: "WH-MUC" }),
        toolUse("tu_vie", "check_inventory", { warehouse_id: "WH-VIE" }),
      ],
    };
    const firstModel = new ScriptedModel([turn]);
    const firstDeps = deps(firstModel, registry);
    firstDeps.onStep = (e) => {
      if (e.kind === "tool") muc.open();
    };

    await expect(run(firstDeps, id, agent)).rejects.toBeInstanceOf(UnavailableError);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm", "3:tool:check_inventory"]);

    backendDown = false;
    const secondModel = new ScriptedModel([finalTurn()]);
    const outcome = await run(deps(secondModel, registry), id, agent);

    expect(outcome.kind).toBe("succeeded");
    expect(firstModel.requests).toHaveLength(1);
    expect(secondModel.requests.map((r) => r.step)).toEqual([5]);
    const byWarehouse = (wh: string) => calls.filter((c) => (c.input as { warehouse_id: string }).warehouse_id === wh).map((c) => c.key);
    expect(byWarehouse("WH-MUC")).toEqual([`${id}:3`]);
    expect(byWarehouse("WH-FRA")).toEqual([`${id}:2`, `${id}:2`]);
    expect(byWarehouse("WH-VIE")).toEqual([`${id}:4`, `${id}:4`]);
    expect(lastUserBlocks(secondModel.requests[0]?.messages ?? []).map((b) => (b.type === "tool_result" ? b.tool_use_id : b.type))).toEqual([
      "tu_fra",
      "tu_muc",
      "tu_vie",
    ]);
    const steps = await store.listSteps(id);
    expect(shape(steps)).toEqual(["1:llm", "2:tool:check_inventory", "3:tool:check_inventory", "4:tool:check_inventory", "5:llm"]);
    expect(steps.map((s) => s.fence)).toEqual([1, 2, 1, 2, 2]);
  });

  it("finishes a task whose final answer was checkpointed without calling the model again", async () => {
    const id = await newTask();
    const controller = new AbortController();
    const { registry } = makeTools();
    const agent = agentFile();
    const firstModel = new ScriptedModel(() => {
      controller.abort(new Error("shutting down"));
      return finalTurn();
    });
    expect((await run(deps(firstModel, registry), id, agent, controller.signal)).kind).toBe("interrupted");

    const secondModel = new ScriptedModel([]);
    const outcome = await run(deps(secondModel, registry), id, agent);

    expect(outcome).toEqual({ kind: "succeeded", result: FINAL });
    expect(secondModel.requests).toHaveLength(0);
    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: FINAL, steps: 1 });
  });

  it("finishes a task from a version-1 checkpoint log (fixture) without calling the model or any tool", async () => {
    const fx = JSON.parse(fs.readFileSync(path.join(__dirname, "../fixtures/checkpoints/order-router.v1.json"), "utf8")) as {
      task: { input: unknown };
      steps: StepRecord[];
    };
    const id = await newTask(fx.task.input);
    const writer = await claim(id, "planner-old");
    for (const s of fx.steps) {
      const step = { kind: s.kind, step: s.step, data: s.data } as NewStep;
      await store.appendStep(id, writer.fence, step, s.kind === "llm" ? s.data.usage : undefined);
    }
    expect((await store.listSteps(id)).map((s) => [s.step, s.schema_version])).toEqual(fx.steps.map((s) => [s.step, 1]));
    const { registry, calls } = makeTools();
    const model = new ScriptedModel([]);

    // The old planner died after its last checkpoint; this build takes over.
    const outcome = await run(deps(model, registry), id, agentFile());

    const answer = { order_id: "ORD-1005", routed: true, warehouse_id: "WH-MUC", reason: "WH-FRA (nearest) is short of SKU-1023 by 2; WH-MUC can fill the whole order." };
    expect(outcome).toEqual({ kind: "succeeded", result: answer });
    expect(model.requests).toHaveLength(0);
    expect(calls).toEqual([]);
    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: answer, steps: 13, usage: { input_tokens: 11720, output_tokens: 579 } });
  });
});

describe("agent loop - fencing", () => {
  it("refuses every write of a zombie whose fence was superseded, and the successor's results stand", async () => {
    const id = await newTask();
    const { registry, count } = makeTools();
    const agent = agentFile();
    const zombie = await claim(id, "planner-a");
    const successor = await claim(id, "planner-b");
    expect(successor.fence).toBe(zombie.fence + 1);

    const zombieModel = new ScriptedModel([{ content: [toolUse("tu_z", "route_order", { order_id: "ORD-1005", warehouse_id: "WH-FRA" })] }]);
    await expect(
      runLoop(deps(zombieModel, registry), { task: zombie.task, fence: zombie.fence, agent, defaultMaxSteps: 20, signal: new AbortController().signal }),
    ).rejects.toBeInstanceOf(StaleFenceError);
    // The zombie's LLM checkpoint was refused, so it never got as far as the side effect.
    expect(count("route_order")).toBe(0);
    await expect(store.finishTask(id, zombie.fence, { status: "failed", error: { type: "x", message: "zombie" } })).rejects.toBeInstanceOf(StaleFenceError);
    expect(await store.listSteps(id)).toEqual([]);

    const successorModel = new ScriptedModel([{ content: [toolUse("tu_s", "route_order", { order_id: "ORD-1005", warehouse_id: "WH-MUC" })] }, finalTurn()]);
    const outcome = await runLoop(deps(successorModel, registry), {
      task: successor.task,
      fence: successor.fence,
      agent,
      defaultMaxSteps: 20,
      signal: new AbortController().signal,
    });

    expect(outcome.kind).toBe("succeeded");
    await expect(store.finishTask(id, zombie.fence, { status: "failed", error: { type: "x", message: "zombie" } })).rejects.toBeInstanceOf(StaleFenceError);
    const steps = await store.listSteps(id);
    expect(steps.map((s) => s.fence)).toEqual([successor.fence, successor.fence, successor.fence]);
    expect(toolSteps(steps)[0]?.data.input).toEqual({ order_id: "ORD-1005", warehouse_id: "WH-MUC" });
    expect(await getTask(id)).toMatchObject({ status: "succeeded", result: FINAL });
  });
});

describe("agent loop - model retries", () => {
  it("waits out a RateLimitedError for its retryAfter and then succeeds", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const model = new ScriptedModel([new RateLimitedError("slow down", { retryAfter: 0.05 }), finalTurn()]);

    const started = performance.now();
    const outcome = await run(deps(model, registry), id, agentFile());

    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(outcome.kind).toBe("succeeded");
    expect(model.requests.map((r) => r.step)).toEqual([1, 1]);
    expect(shape(await store.listSteps(id))).toEqual(["1:llm"]);
  });

  it("retries a retryable ProviderError a few times, then succeeds", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const overloaded = () => new ProviderError("provider overloaded", { status: 529 });
    const model = new ScriptedModel([overloaded(), overloaded(), overloaded(), finalTurn()]);

    const outcome = await run(deps(model, registry), id, agentFile());

    expect(outcome.kind).toBe("succeeded");
    expect(model.requests).toHaveLength(4);
    expect((await getTask(id)).status).toBe("succeeded");
  });

  it("gives up on ProviderError after maxProviderRetries, ending the attempt with the error", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const model = new ScriptedModel(() => new ProviderError("provider overloaded"));
    const d = { ...deps(model, registry), retry: { baseDelayMs: 1, maxDelayMs: 2, maxProviderRetries: 2 } };

    await expect(run(d, id, agentFile())).rejects.toBeInstanceOf(ProviderError);
    expect(model.requests).toHaveLength(3);
    expect(await store.listSteps(id)).toEqual([]);
  });

  it("does not retry a non-retryable ProviderRequestError", async () => {
    const id = await newTask();
    const { registry } = makeTools();
    const model = new ScriptedModel([new ProviderRequestError("prompt is too long"), finalTurn()]);

    await expect(run(deps(model, registry), id, agentFile())).rejects.toBeInstanceOf(ProviderRequestError);
    expect(model.requests).toHaveLength(1);
  });
});
