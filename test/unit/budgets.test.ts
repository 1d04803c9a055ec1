/**
 * budgets - the reservation arithmetic (no model call that could overshoot a budget is made, so a task is
 * never more than one call over), the submit's ceiling, the daily cap's cache and Retry-After, the wrap-up
 * conversation, and the loop under budgets against a scripted model and a real store (PGlite in memory):
 * finish and fail modes, a second attempt that counts the first one's usage, the wall clock before a tool
 * starts, and a tiered agent whose classification its budget cannot afford.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseAgentFile, type AgentDefinition } from "../../src/agent/definition";
import { runLoop, type LoopDeps } from "../../src/agent/runLoop";
import {
  addSpent,
  DailyCostGate,
  effectiveBudgets,
  noSpending,
  overshootBy,
  secondsUntilUtcMidnight,
  stepsSpent,
  tokensSpent,
  wallSpent,
  worstCase,
  wrapUpMaxTokens,
  wrapUpMessages,
  WRAP_UP_MIN_TOKENS,
  type Spent,
} from "../../src/budgets";
import type { CompleteRequest, MessageParam, StepRecord, TaskBudgets, TaskRecord } from "../../src/contracts";
import { DailyBudgetExhaustedError, ValidationError } from "../../src/errors";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse, type Script } from "../../src/llm/scriptedModel";
import { InputTokenEstimator } from "../../src/ratelimit";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { ToolRegistry } from "../../src/tools/registry";
import { useMemoryStore } from "../helpers/memoryStore";

const prices = new PriceTable();
const HAIKU = "claude-haiku-5-5";

// ---------------------------------------------------------------- the arithmetic

describe("budgets - reservation arithmetic", () => {
  it("prices a call's worst case at the model's dearest prompt rate (cache writes) plus its max_tokens of output", () => {
    // claude-haiku-5-5: $1/M input, $1.25/M cache writes, $5/M output.
    expect(worstCase(prices, HAIKU, 1000, 500)).toEqual({ inputTokens: 1000, outputTokens: 500, costUsd: 0.00125 + 0.0025 });
    expect(worstCase(prices, "no-such-model", 1000, 500).costUsd).toBe(0);
  });

  it("lets a call that lands exactly on a limit through and refuses one a token or a cent over, naming the budget", () => {
    const spent: Spent = { inputTokens: 900, outputTokens: 300, costUsd: 0.5 };
    const call = { inputTokens: 100, outputTokens: 200, costUsd: 0.25 };
    expect(overshootBy({ max_input_tokens: 1000, max_output_tokens: 500, max_cost_usd: 0.75 }, spent, call)).toBeUndefined();
    expect(overshootBy({ max_input_tokens: 999 }, spent, call)?.budget).toBe("max_input_tokens");
    expect(overshootBy({ max_output_tokens: 499 }, spent, call)?.budget).toBe("max_output_tokens");
    expect(overshootBy({ max_cost_usd: 0.74 }, spent, call)).toMatchObject({ budget: "max_cost_usd", limit: 0.74 });
    expect(overshootBy({ max_cost_usd: 0.74 }, spent, call)?.message).toMatch(/^cost budget of \$0\.74 would be exceeded by the next model call/);
    expect(overshootBy({}, spent, call)).toBeUndefined();
  });

  it("counts steps and the older max_tokens on what was spent, and wall time from the first start", () => {
    expect(stepsSpent(4, 4)).toBeUndefined();
    expect(stepsSpent(4, 5)).toMatchObject({ budget: "max_steps", message: "step budget of 4 spent before the agent finished" });
    expect(tokensSpent(250, { inputTokens: 200, outputTokens: 49, costUsd: 0 })).toBeUndefined();
    expect(tokensSpent(250, { inputTokens: 200, outputTokens: 50, costUsd: 0 })?.budget).toBe("max_tokens");
    expect(tokensSpent(undefined, { inputTokens: 1e9, outputTokens: 1e9, costUsd: 0 })).toBeUndefined();
    expect(wallSpent(60, 1_000_000, 1_000_000 + 59_999)).toBeUndefined();
    expect(wallSpent(60, 1_000_000, 1_000_000 + 60_000)).toMatchObject({ budget: "max_wall_seconds", limit: 60 });
    expect(wallSpent(undefined, 0, 1e15)).toBeUndefined();
  });

  it("clamps the wrap-up's max_tokens to what remains of an output budget that ran out, within [floor, tier]", () => {
    const spent = (outputTokens: number): Spent => ({ ...noSpending(), outputTokens });
    expect(wrapUpMaxTokens(2048, { max_output_tokens: 1000 }, spent(400), "max_output_tokens")).toBe(600);
    expect(wrapUpMaxTokens(2048, { max_output_tokens: 1000 }, spent(990), "max_output_tokens")).toBe(WRAP_UP_MIN_TOKENS);
    expect(wrapUpMaxTokens(100, { max_output_tokens: 1000 }, spent(990), "max_output_tokens")).toBe(100);
    expect(wrapUpMaxTokens(2048, { max_output_tokens: 1000 }, spent(0), "max_output_tokens")).toBe(1000);
    // Another budget ran out: the tier's own.
    expect(wrapUpMaxTokens(2048, { max_output_tokens: 1000, max_cost_usd: 1 }, spent(400), "max_cost_usd")).toBe(2048);
  });

  /**
   * A task as the loop drives it: a call is made only while its worst case fits; each spends at most its worst
   * case (a prompt no larger than estimated, no more output than max_tokens). Then the wrap-up, unreserved.
   */
  const callArb = fc.record({ input: fc.integer({ min: 1, max: 5_000 }), maxTokens: fc.integer({ min: 1, max: 4_096 }), use: fc.double({ min: 0, max: 1, noNaN: true }) });
  const budgetsArb = fc.record(
    {
      max_input_tokens: fc.integer({ min: 1, max: 60_000 }),
      max_output_tokens: fc.integer({ min: 1, max: 20_000 }),
      max_cost_usd: fc.double({ min: 0.0001, max: 0.5, noNaN: true }),
    },
    { requiredKeys: [] },
  );

  it("property: regular calls never take a task past any reserved budget, and the wrap-up is the only call over, by at most one call", () => {
    fc.assert(
      fc.property(budgetsArb, fc.array(callArb, { minLength: 1, maxLength: 60 }), (budgets: TaskBudgets, calls) => {
        let spent = noSpending();
        let made = 0;
        for (const c of calls) {
          const worst = worstCase(prices, HAIKU, c.input, c.maxTokens);
          if (overshootBy(budgets, spent, worst)) break;
          const actual = { input_tokens: Math.floor(c.input * c.use), output_tokens: Math.floor(c.maxTokens * c.use), cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
          spent = addSpent(spent, { inputTokens: actual.input_tokens, outputTokens: actual.output_tokens, costUsd: prices.cost(HAIKU, actual) });
          made++;
        }
        const within = (s: Spent, slack: Spent) =>
          s.inputTokens <= (budgets.max_input_tokens ?? Infinity) + slack.inputTokens &&
          s.outputTokens <= (budgets.max_output_tokens ?? Infinity) + slack.outputTokens &&
          s.costUsd <= (budgets.max_cost_usd ?? Infinity) + slack.costUsd + 1e-12;
        expect(within(spent, noSpending())).toBe(true);
        if (made === calls.length) return;
        // The wrap-up: the next call's prompt, max_tokens clamped if the output budget ran out, spent in full.
        const next = calls[made] as (typeof calls)[number];
        const ex = overshootBy(budgets, spent, worstCase(prices, HAIKU, next.input, next.maxTokens));
        if (!ex) throw new Error("the loop stopped without a budget refusing the call");
        const wrapUp = worstCase(prices, HAIKU, next.input, wrapUpMaxTokens(next.maxTokens, budgets, spent, ex.budget));
        expect(within(addSpent(spent, wrapUp), wrapUp)).toBe(true);
        if (ex.budget === "max_output_tokens") expect(spent.outputTokens + wrapUp.outputTokens).toBeLessThanOrEqual((budgets.max_output_tokens ?? 0) + WRAP_UP_MIN_TOKENS);
      }),
      { numRuns: 500 },
    );
  });

  it("property: a call is refused only when its worst case would not fit", () => {
    fc.assert(
      fc.property(budgetsArb, callArb, fc.integer({ min: 0, max: 60_000 }), fc.integer({ min: 0, max: 20_000 }), (budgets: TaskBudgets, c, inTok, outTok) => {
        const spent = { inputTokens: inTok, outputTokens: outTok, costUsd: prices.cost(HAIKU, { input_tokens: inTok, output_tokens: outTok, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 }) };
        const worst = worstCase(prices, HAIKU, c.input, c.maxTokens);
        const fits =
          spent.inputTokens + worst.inputTokens <= (budgets.max_input_tokens ?? Infinity) &&
          spent.outputTokens + worst.outputTokens <= (budgets.max_output_tokens ?? Infinity) &&
          spent.costUsd + worst.costUsd <= (budgets.max_cost_usd ?? Infinity);
        expect(overshootBy(budgets, spent, worst) === undefined).toBe(fits);
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------- the ceiling, the daily cap, the wrap-up's conversation

describe("budgets - a submit's budgets under the agent's ceiling", () => {
  const agent = { name: "spender", budgets: { max_steps: 10, max_cost_usd: 0.5, on_exhausted: "fail" as const } };

  it("takes the agent's budgets as defaults and lets a submit lower them, set ones the agent leaves open, and pick on_exhausted", () => {
    expect(effectiveBudgets(agent, undefined)).toEqual({ max_steps: 10, max_cost_usd: 0.5, on_exhausted: "fail" });
    expect(effectiveBudgets(agent, { max_cost_usd: 0.1, max_output_tokens: 5000, on_exhausted: "finish" })).toEqual({
      max_steps: 10,
      max_cost_usd: 0.1,
      max_output_tokens: 5000,
      on_exhausted: "finish",
    });
    expect(effectiveBudgets({ name: "open", budgets: {} }, undefined)).toEqual({ on_exhausted: "fail" });
  });

  it("refuses a value over the agent's with a ValidationError (422) naming the field", () => {
    const err = (() => {
      try {
        effectiveBudgets(agent, { max_cost_usd: 0.51 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(422);
    expect((err as ValidationError).data).toMatchObject({ field: "budgets.max_cost_usd", max: 0.5 });
    expect(() => effectiveBudgets(agent, { max_steps: 11 })).toThrow(/budgets\.max_steps/);
  });

  it("reads every budget from an agent file, max_tokens kept, unknown keys refused", () => {
    const file = (budgets: string) =>
      ["---", "name: spender", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 256}", "default_tier: main", budgets, "---", "Spend."].join("\n");
    const a = parseAgentFile(
      file("budgets: {max_steps: 7, max_tokens: 900, max_input_tokens: 800, max_output_tokens: 300, max_cost_usd: 0.02, max_wall_seconds: 30, on_exhausted: finish, max_daily_cost_usd: 5}"),
      "inline",
    );
    expect(a.budgets).toEqual({ max_steps: 7, max_tokens: 900, max_input_tokens: 800, max_output_tokens: 300, max_cost_usd: 0.02, max_wall_seconds: 30, on_exhausted: "finish" });
    expect(a).toMatchObject({ maxSteps: 7, maxTokens: 900, maxDailyCostUsd: 5 });
    expect(parseAgentFile(file(""), "inline").budgets).toEqual({ on_exhausted: "fail" });
    expect(() => parseAgentFile(file("budgets: {max_cost: 1}"), "inline")).toThrow(/budgets/);
    expect(() => parseAgentFile(file("budgets: {on_exhausted: shrug}"), "inline")).toThrow(/budgets\.on_exhausted/);
  });
});

describe("budgets - the daily cost cap", () => {
  const DAY = 86_400_000;
  const noon = Date.UTC(2031, 4, 6, 12, 0, 0);

  it("reads an agent's sum at most once per TTL and day, and reads again once either passes", async () => {
    let clock = noon;
    const asked: Array<{ agent: string; since: string }> = [];
    const gate = new DailyCostGate(
      async (agent, since) => {
        asked.push({ agent, since });
        return 0.01;
      },
      { now: () => clock, ttlMs: 1000 },
    );
    await gate.admit("a", 1);
    await gate.admit("a", 1);
    clock += 999;
    await gate.admit("a", 1);
    expect(asked).toEqual([{ agent: "a", since: "2031-05-06T00:00:00.000Z" }]);
    await gate.admit("b", 1);
    clock += 1;
    await gate.admit("a", 1);
    expect(asked).toHaveLength(3);
    clock = Date.UTC(2031, 4, 7, 0, 0, 0, 200);
    await gate.admit("a", 1);
    expect(asked.at(-1)).toEqual({ agent: "a", since: "2031-05-07T00:00:00.000Z" });
  });

  it("refuses once the day's cost reached the cap, with retryAfter until 00:00 UTC", async () => {
    const clock = noon + 30 * 60_000 + 500;
    const gate = new DailyCostGate(async () => 2, { now: () => clock });
    await expect(gate.admit("a", 2.5)).resolves.toBeUndefined();
    const err = await gate.admit("a", 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DailyBudgetExhaustedError);
    expect((err as DailyBudgetExhaustedError).code).toBe(429);
    expect((err as DailyBudgetExhaustedError).data).toMatchObject({ agent: "a", spent_usd: 2, max_daily_cost_usd: 2, retryAfter: 41_400 });
    expect(secondsUntilUtcMidnight(noon)).toBe(12 * 3600);
    expect(secondsUntilUtcMidnight(noon - 12 * 3600_000 + DAY - 1)).toBe(1);
  });

  it("does not keep a failed read: the next submit asks again", async () => {
    let calls = 0;
    const gate = new DailyCostGate(async () => {
      calls++;
      if (calls === 1) throw new Error("database away");
      return 0;
    });
    await expect(gate.admit("a", 1)).rejects.toThrow("database away");
    await expect(gate.admit("a", 1)).resolves.toBeUndefined();
    expect(calls).toBe(2);
  });
});

describe("budgets - the wrap-up's conversation", () => {
  it("carries tool calls and results as text, so a request without tools is valid, and ends with the instruction", () => {
    const messages: MessageParam[] = [
      { role: "user", content: "route ORD-1" },
      { role: "assistant", content: [text("looking"), toolUse("tu_1", "lookup_order", { order_id: "ORD-1" })] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "tu_1", content: '{"ok":1}' }] },
      { role: "assistant", content: [toolUse("tu_2", "check_inventory", { w: "X" })] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "tu_2", content: "down", is_error: true }] },
    ];
    const out = wrapUpMessages(messages, "max_cost_usd");
    expect(JSON.stringify(out)).not.toMatch(/tool_use|tool_result/);
    expect(out.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant", "user"]);
    expect(out[1]).toEqual({ role: "assistant", content: [text("looking"), text('[called tool lookup_order with input {"order_id":"ORD-1"}]')] });
    expect(out[4]?.content).toEqual([text("[check_inventory failed: down]"), expect.objectContaining({ type: "text", text: expect.stringMatching(/^The cost budget for this task is spent/) })]);
    // The checkpointed conversation is left as it was.
    expect(messages[4]?.content).toHaveLength(1);
    expect(wrapUpMessages([{ role: "user", content: "hi" }], "max_steps")[0]?.content).toEqual([text("hi"), expect.objectContaining({ type: "text" })]);
  });
});

// ---------------------------------------------------------------- the loop under budgets

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

const logs: Array<{ obj: Record<string, unknown>; msg: string }> = [];
const logger = { info: (obj: Record<string, unknown>, msg: string) => logs.push({ obj, msg }), warn: (obj: Record<string, unknown>, msg: string) => logs.push({ obj, msg }) };

function agentWith(budgets: string, extra: string[] = []): AgentDefinition {
  const md = [
    "---",
    "name: spender",
    "tools: [lookup]",
    "tiers:",
    "  classify: {model: claude-haiku-5-5, max_tokens: 64}",
    "  main: {model: claude-haiku-5-5, max_tokens: 512}",
    "default_tier: main",
    ...extra,
    `budgets: ${budgets}`,
    "---",
    "You look things up, then answer.",
  ].join("\n");
  return parseAgentFile(md, "inline:spender.md");
}

function tools(onRun: () => void = () => undefined) {
  let runs = 0;
  const registry = new ToolRegistry().register({
    name: "lookup",
    description: "looks a thing up",
    sideEffect: false,
    input: z.object({ q: z.string() }),
    run: async (i) => {
      runs++;
      onRun();
      return { found: i.q };
    },
  });
  return { registry, runs: () => runs };
}

function deps(model: ScriptedModel, registry: ToolRegistry, extra: Partial<LoopDeps> = {}): LoopDeps {
  return {
    store,
    llm: model,
    tools: registry,
    toolSpecs: async (agent) => registry.specs(agent.tools),
    prices,
    logger,
    retry: { baseDelayMs: 1, maxDelayMs: 5, maxProviderRetries: 2, maxRateLimitWaitMs: 1000 },
    estimator: new InputTokenEstimator(),
    ...extra,
  };
}

async function newTask(budgets?: TaskBudgets): Promise<string> {
  const id = randomUUID();
  await store.createTask({ id, agent: "spender", input: "find x", priority: "normal", metadata: {}, prompt_version: "test", ...(budgets ? { budgets } : {}) });
  return id;
}

async function claim(id: string): Promise<{ task: TaskRecord; fence: number }> {
  const c = await store.claimTask(id, "planner-a");
  if (!c) throw new Error(`could not claim ${id}`);
  return c;
}

async function getTask(id: string): Promise<TaskRecord> {
  const t = await store.getTask(id);
  if (!t) throw new Error(`task ${id} vanished`);
  return t;
}

/** 200 output tokens a turn, always asking for one more lookup. */
const lookups: Script = (req, turn) =>
  req.tools.length === 0
    ? { content: [text("Out of budget: x is probably here.")], usage: { input_tokens: 100, output_tokens: 30 } }
    : { content: [toolUse(`tu_${turn}`, "lookup", { q: `x${turn}` })], usage: { input_tokens: 100, output_tokens: 200 } };

const hasToolBlocks = (r: CompleteRequest) => JSON.stringify(r.messages).match(/"tool_use"|"tool_result"/) !== null;
const llmSteps = (steps: StepRecord[]) => steps.filter((s): s is Extract<StepRecord, { kind: "llm" }> => s.kind === "llm");

describe("budgets - the loop", () => {
  it("finish: refuses the call whose max_tokens could pass the output budget, then makes exactly one tool-less wrap-up turn and succeeds with budget_exhausted", async () => {
    const id = await newTask();
    const { registry, runs } = tools();
    const model = new ScriptedModel(lookups);
    // 1100 output tokens, 512 a call at most: calls at 0, 200 and 400 spent fit; at 600 the next could reach 1112.
    const { task, fence } = await claim(id);
    const outcome = await runLoop(deps(model, registry), { task, fence, agent: agentWith("{max_output_tokens: 1100, on_exhausted: finish}"), defaultMaxSteps: 50, signal: new AbortController().signal });

    expect(outcome).toEqual({ kind: "succeeded", result: { text: "Out of budget: x is probably here." }, budgetExhausted: "max_output_tokens" });
    expect(model.requests).toHaveLength(4);
    expect(runs()).toBe(3);
    const wrapUps = model.requests.filter((r) => r.tools.length === 0);
    expect(wrapUps).toHaveLength(1);
    const wrapUp = model.requests[3] as CompleteRequest;
    expect(wrapUp).toMatchObject({ tools: [], step: 7, maxTokens: 1100 - 600 });
    expect(hasToolBlocks(wrapUp)).toBe(false);
    expect(JSON.stringify(wrapUp.messages.at(-1))).toContain("The output-token budget for this task is spent");
    const t = await getTask(id);
    expect(t).toMatchObject({ status: "succeeded", budget_exhausted: "max_output_tokens", result: { text: "Out of budget: x is probably here." } });
    expect(t.usage.output_tokens).toBe(630);
    const steps = await store.listSteps(id);
    expect(llmSteps(steps).map((s) => s.data.budget_exhausted ?? null)).toEqual([null, null, null, "max_output_tokens"]);
  });

  it("fail: the task fails with budget_exceeded naming the budget, and the refused call is not made", async () => {
    const id = await newTask();
    const { registry } = tools();
    const model = new ScriptedModel(lookups);
    const { task, fence } = await claim(id);
    const outcome = await runLoop(deps(model, registry), { task, fence, agent: agentWith("{max_output_tokens: 1100}"), defaultMaxSteps: 50, signal: new AbortController().signal });

    expect(outcome).toMatchObject({ kind: "failed", error: { type: "budget_exceeded", message: expect.stringMatching(/^output-token budget of 1100 would be exceeded/) } });
    expect(model.requests).toHaveLength(3);
    const t = await getTask(id);
    expect(t).toMatchObject({ status: "failed", error: { type: "budget_exceeded" }, budget_exhausted: null });
    expect(t.usage.output_tokens).toBe(600);
  });

  it("runs under the budgets stored with the task, not the agent file's", async () => {
    const id = await newTask({ max_output_tokens: 700, on_exhausted: "fail" });
    const { registry } = tools();
    const model = new ScriptedModel(lookups);
    const { task, fence } = await claim(id);
    const outcome = await runLoop(deps(model, registry), { task, fence, agent: agentWith("{max_output_tokens: 1100, on_exhausted: finish}"), defaultMaxSteps: 50, signal: new AbortController().signal });
    expect(outcome).toMatchObject({ kind: "failed", error: { type: "budget_exceeded" } });
    // 700: a call at 0 fits (512), one at 200 spent would reach 712.
    expect(model.requests).toHaveLength(1);
  });

  it("a second attempt counts what the first spent: the budget stops the task where one attempt would have", async () => {
    const id = await newTask({ max_output_tokens: 1100, on_exhausted: "finish" });
    const { registry } = tools();
    const agent = agentWith("{}");
    // Attempt 1 stops at the step boundary after its first model turn (a shutdown); the next one runs its tool call.
    const first = new ScriptedModel(lookups);
    const stop = new AbortController();
    const a1 = await claim(id);
    const out1 = await runLoop(deps(first, registry, { onStep: (e) => e.step === 1 && stop.abort("shutdown") }), { task: a1.task, fence: a1.fence, agent, defaultMaxSteps: 50, signal: stop.signal });
    expect(out1.kind).toBe("interrupted");
    expect(first.requests).toHaveLength(1);

    const second = new ScriptedModel((req, turn) => lookups(req, turn + 1));
    const a2 = await claim(id);
    expect(a2.task).toMatchObject({ attempts: 2, usage: { output_tokens: 200 } });
    const out2 = await runLoop(deps(second, registry), { task: a2.task, fence: a2.fence, agent, defaultMaxSteps: 50, signal: new AbortController().signal });

    expect(out2).toMatchObject({ kind: "succeeded", budgetExhausted: "max_output_tokens" });
    // Two regular calls (at 200 and 400 spent) and the wrap-up; forgetting attempt 1 would have allowed a third.
    expect(second.requests.map((r) => r.tools.length > 0)).toEqual([true, true, false]);
    expect(second.requests[2]?.maxTokens).toBe(500);
    expect((await getTask(id)).usage.output_tokens).toBe(630);
  });

  it("wall time: a tool is not started once the time is spent; its call is answered 'not made' in the checkpoints, and the wrap-up follows", async () => {
    const id = await newTask();
    const { registry, runs } = tools();
    const { task, fence } = await claim(id);
    let clock = Date.parse(task.started_at ?? "");
    // The model's first answer takes 61 s of a 60 s budget: the tool it asks for must not start.
    const model = new ScriptedModel((req, turn) => {
      clock += 61_000;
      return lookups(req, turn);
    });
    const agent = agentWith("{max_wall_seconds: 60, on_exhausted: finish}");
    const outcome = await runLoop(deps(model, registry, { now: () => clock }), { task, fence, agent, defaultMaxSteps: 50, signal: new AbortController().signal });

    expect(outcome).toMatchObject({ kind: "succeeded", budgetExhausted: "max_wall_seconds" });
    expect(runs()).toBe(0);
    expect(model.requests.map((r) => r.tools.length > 0)).toEqual([true, false]);
    const steps = await store.listSteps(id);
    expect(steps.map((s) => `${s.step}:${s.kind}`)).toEqual(["1:llm", "2:tool", "3:llm"]);
    expect(steps[1]).toMatchObject({ kind: "tool", data: { ok: false, output: { error: expect.stringMatching(/^not made: wall-time budget of 60 s spent/) } } });

  });

  it("a wrap-up checkpointed before the attempt's terminal write: the next attempt ends the task the same way, calling nothing", async () => {
    const id = await newTask();
    const { registry } = tools();
    const agent = agentWith("{max_output_tokens: 1100, on_exhausted: finish}");
    const a1 = await claim(id);
    // The attempt's end is never written (its process died after the wrap-up's checkpoint).
    await runLoop(deps(new ScriptedModel(lookups), registry), { task: a1.task, fence: a1.fence, agent, defaultMaxSteps: 50, signal: new AbortController().signal, settle: async () => undefined });
    expect((await getTask(id)).status).toBe("running");

    const none = new ScriptedModel([]);
    const a2 = await claim(id);
    const outcome = await runLoop(deps(none, registry), { task: a2.task, fence: a2.fence, agent, defaultMaxSteps: 50, signal: new AbortController().signal });
    expect(outcome).toEqual({ kind: "succeeded", result: { text: "Out of budget: x is probably here." }, budgetExhausted: "max_output_tokens" });
    expect(none.requests).toHaveLength(0);
    expect(await getTask(id)).toMatchObject({ status: "succeeded", budget_exhausted: "max_output_tokens" });
  });

  it("a tiered agent whose budget cannot afford the classification wraps up at step 1 on its default tier", async () => {
    const id = await newTask();
    const { registry } = tools();
    const model = new ScriptedModel(lookups);
    const { task, fence } = await claim(id);
    const agent = agentWith("{max_output_tokens: 50, on_exhausted: finish}", ["router: {classify_tier: classify}"]);
    const outcome = await runLoop(deps(model, registry), { task, fence, agent, defaultMaxSteps: 50, signal: new AbortController().signal });
    expect(outcome).toMatchObject({ kind: "succeeded", budgetExhausted: "max_output_tokens" });
    expect(model.requests).toHaveLength(1);
    expect(model.requests[0]).toMatchObject({ step: 1, tier: "main", tools: [], maxTokens: WRAP_UP_MIN_TOKENS });
  });
});
