/**
 * Premarked calls from the planner's side (src/agent/premark.ts, toolDispatch.ts): which calls of a model
 * turn get their ledger row with the turn's checkpoint, and that the dispatch of exactly those, once, by the
 * attempt that wrote it, tells the executor so; the executor (real, over the real ledger in PGlite) then
 * writes no start of its own.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import type { Attempt } from "../../src/agent/attempt";
import { AgentCatalog, parseAgentFile, type AgentDefinition } from "../../src/agent/definition";
import type { PendingToolUse } from "../../src/agent/replay";
import { ToolCallLedger } from "../../src/agent/toolCallLedger";
import { runLoop, type LoopDeps } from "../../src/agent/runLoop";
import { dispatchTools } from "../../src/agent/toolDispatch";
import { emptyUsage, type ContentBlock, type ToolCall, type ToolCallMark } from "../../src/contracts";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse } from "../../src/llm/scriptedModel";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { ToolExecutor } from "../../src/tools/executor";
import { ToolRegistry } from "../../src/tools/registry";
import { LocalToolSource } from "../../src/tools/sources/local";
import { useMemoryStore } from "../helpers/memoryStore";

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

const AGENT = parseAgentFile(
  [
    "---",
    "name: shop",
    "tools: [route_order, lookup_order, refund]",
    "tiers:",
    "  main:",
    "    model: m",
    "    max_tokens: 100",
    "default_tier: main",
    "approval:",
    "  tools: [refund]",
    "---",
    "Route the order.",
  ].join("\n"),
  "inline:shop.md",
);
const SIDE_EFFECTS: ReadonlySet<string> = new Set(["route_order", "refund", "not_listed"]);

const use = (id: string, name: string): ContentBlock => ({ type: "tool_use", id, name, input: { order_id: "ORD-1" } });
/** A turn at step 1 asking for four calls: steps 2 to 5. */
const CONTENT: ContentBlock[] = [
  { type: "text", text: "routing" },
  use("tu_a", "lookup_order"),
  use("tu_b", "route_order"),
  use("tu_c", "refund"),
  use("tu_d", "not_listed"),
];

/** A planner attempt over the real store, with a real executor behind a ledger that counts its commits. */
async function attempt(agent: AgentDefinition = AGENT) {
  const routed: string[] = [];
  const registry = new ToolRegistry()
    .register({ name: "route_order", description: "routes", sideEffect: true, input: z.object({ order_id: z.string() }), run: async (i) => (routed.push(i.order_id), { routed: i.order_id }) })
    .register({ name: "lookup_order", description: "looks up", sideEffect: false, input: z.object({ order_id: z.string() }), run: async () => ({ found: true }) });
  const n = { started: 0, finished: 0 };
  const sent: ToolCall[] = [];
  const exec = new ToolExecutor({
    sources: [new LocalToolSource(registry)],
    agents: new AgentCatalog([agent]),
    ledger: {
      toolCallStarted: (...args: Parameters<PgTaskStore["toolCallStarted"]>) => (n.started++, store.toolCallStarted(...args)),
      toolCallFinished: (...args: Parameters<PgTaskStore["toolCallFinished"]>) => (n.finished++, store.toolCallFinished(...args)),
      getToolCall: (key: string) => store.getToolCall(key),
    },
    maxUnknownOutcomes: 3,
    logger: { warn: () => undefined },
  });
  const id = randomUUID();
  await store.createTask({ id, agent: agent.name, input: "go", priority: "normal", metadata: {}, prompt_version: agent.promptVersion });
  const claim = await store.claimTask(id, "planner-a");
  if (!claim) throw new Error("claim failed");
  const a: Attempt = {
    task: claim.task,
    fence: claim.fence,
    agent,
    labels: { agent: agent.name, prompt_version: agent.promptVersion },
    signal: new AbortController().signal,
    callSignal: new AbortController().signal,
    store,
    llm: { complete: () => Promise.reject(new Error("no model in this test")) },
    tools: { run: (call, signal) => (sent.push(call), exec.run(call, signal)) },
    prices: new PriceTable(),
    retry: {},
    logger: { info: () => undefined, warn: () => undefined },
    progress: { steps: 0, toolCalls: 0 },
    stepCheckpointed: () => undefined,
  };
  const turn = { kind: "llm" as const, step: 1, data: { model: "m", tier: "main", stop_reason: "tool_use", usage: emptyUsage(), content: CONTENT, duration_ms: 1 } };
  const checkpoint = (marks: readonly ToolCallMark[]) => store.appendStep(id, claim.fence, turn, undefined, marks);
  return { a, id, n, sent, routed, checkpoint };
}

const pendingOf = (content: readonly ContentBlock[]): PendingToolUse[] =>
  content.flatMap((b) => (b.type === "tool_use" ? [b] : [])).map((b, i) => ({ step: 2 + i, id: b.id, name: b.name, input: b.input }));

describe("premark - the planner's side", () => {
  it("marks the turn's side-effect calls that no approval gates and the agent lists, under the keys and steps the loop gives them", async () => {
    const { a, id } = await attempt();
    const ledger = new ToolCallLedger();
    expect(ledger.premarks.marksFor(a, 1, CONTENT)).toEqual([]); // not known yet: nothing is marked
    ledger.premarks.know(SIDE_EFFECTS);
    expect(ledger.premarks.marksFor(a, 1, CONTENT)).toEqual([{ idempotencyKey: `${id}:3`, step: 3, tool: "route_order" }]);
  });

  it("the call premarked with the checkpoint is dispatched premarked once, and the executor writes no start for it", async () => {
    const { a, id, n, sent, routed, checkpoint } = await attempt();
    const ledger = new ToolCallLedger();
    ledger.premarks.know(SIDE_EFFECTS);
    const marks = ledger.premarks.marksFor(a, 1, CONTENT);
    ledger.premarks.committed(marks, await checkpoint(marks));
    expect(await store.getToolCall(`${id}:3`)).toEqual({ starts: 1, outcome: null });

    const pending = pendingOf(CONTENT).filter((p) => p.name !== "refund" && p.name !== "not_listed");
    await (await dispatchTools(a, pending, ledger, new Map())).stored;
    expect(sent.map((c) => [c.tool, c.premarked])).toEqual([
      ["lookup_order", undefined],
      ["route_order", true],
    ]);
    expect(n).toEqual({ started: 0, finished: 1 });
    expect(await store.getToolCall(`${id}:3`)).toEqual({ starts: 1, outcome: { ok: true, output: { routed: "ORD-1" } } });
    expect(routed).toEqual(["ORD-1"]);
    // Only the first dispatch is premarked.
    expect(ledger.premarks.take(3)).toBe(false);
  });

  it("a resumed attempt dispatches the same call unmarked: it counts a start, and the recorded outcome answers", async () => {
    const first = await attempt();
    const ledger = new ToolCallLedger();
    ledger.premarks.know(SIDE_EFFECTS);
    const marks = ledger.premarks.marksFor(first.a, 1, CONTENT);
    ledger.premarks.committed(marks, await first.checkpoint(marks));
    // The attempt ends before its dispatch; the next one (a new ledger) replays the turn and dispatches the call.
    const route = pendingOf(CONTENT).filter((p) => p.name === "route_order");
    const resumed = new ToolCallLedger();
    resumed.premarks.know(SIDE_EFFECTS);
    await (await dispatchTools(first.a, route, resumed, new Map())).stored;
    expect(first.sent.map((c) => c.premarked)).toEqual([undefined]);
    expect(first.n).toEqual({ started: 1, finished: 1 });
    expect(await store.getToolCall(`${first.id}:3`)).toMatchObject({ starts: 2 });
  });

  it("a store that does not say it wrote the marks (an older checkpoint service) premarks nothing", async () => {
    const { a, n, sent } = await attempt();
    const ledger = new ToolCallLedger();
    ledger.premarks.know(SIDE_EFFECTS);
    ledger.premarks.committed(ledger.premarks.marksFor(a, 1, CONTENT), undefined);
    await (await dispatchTools(a, pendingOf(CONTENT).filter((p) => p.name === "route_order"), ledger, new Map())).stored;
    expect(sent.map((c) => c.premarked)).toEqual([undefined]);
    expect(n).toEqual({ started: 1, finished: 1 });
  });
});

/**
 * A premark whose call never goes out (the attempt stops, or runs out of wall time, between the turn's
 * checkpoint and the dispatch) must not count as an unknown outcome: with at most one unknown outcome
 * allowed, a false one fails a task whose tool never ran.
 */
describe("premark - calls never dispatched", () => {
  const ROUTER = (budgets?: string) =>
    parseAgentFile(
      [
        "---",
        "name: router",
        "tools: [route_order]",
        "tiers:",
        "  main: {model: claude-haiku-4-5, max_tokens: 100}",
        "default_tier: main",
        ...(budgets ? [`budgets: ${budgets}`] : []),
        "---",
        "Route the order.",
      ].join("\n"),
      "inline:router.md",
    );

  /** A planner over the real store and a real executor that allows one unknown outcome; `hooks` see each checkpoint. */
  function planner(agent: AgentDefinition, opts: { afterTurnCheckpoint?: () => void; duringTurn?: () => void; unmark?: boolean; now?: () => number } = {}) {
    const routed: string[] = [];
    const registry = new ToolRegistry().register({
      name: "route_order",
      description: "routes",
      sideEffect: true,
      input: z.object({ order_id: z.string() }),
      run: async (i) => (routed.push(i.order_id), { routed: i.order_id }),
    });
    const exec = new ToolExecutor({ sources: [new LocalToolSource(registry)], agents: new AgentCatalog([agent]), ledger: store, maxUnknownOutcomes: 1, logger: { warn: () => undefined } });
    // The first turn asks for the call; any later one (the call's result in hand) answers.
    const model = new ScriptedModel((req) => {
      if (req.messages.length === 1) {
        opts.duringTurn?.();
        return { content: [toolUse("tu_1", "route_order", { order_id: "ORD-1" })] };
      }
      return { content: [text("routed")] };
    });
    const loopStore: LoopDeps["store"] = {
      listSteps: (...args) => store.listSteps(...args),
      appendStep: async (...args) => {
        const answer = await store.appendStep(...args);
        if (args[2].kind === "llm" && args[2].step === 1) opts.afterTurnCheckpoint?.();
        return answer;
      },
      finishTask: (...args) => store.finishTask(...args),
      approvalOf: (...args) => store.approvalOf(...args),
      awaitApproval: (...args) => store.awaitApproval(...args),
      ...(opts.unmark === false ? {} : { toolCallUnmark: (keys: readonly string[]) => store.toolCallUnmark(keys) }),
    };
    const deps: LoopDeps = {
      store: loopStore,
      llm: model,
      tools: exec,
      toolSpecs: (a) => exec.specs(a.name, a.tools),
      sideEffectTools: async () => new Set(["route_order"]),
      prices: new PriceTable(),
      logger: { info: () => undefined, warn: () => undefined },
      ...(opts.now ? { now: opts.now } : {}),
    };
    return { deps, routed };
  }

  async function newTask(agent: AgentDefinition): Promise<string> {
    const id = randomUUID();
    await store.createTask({ id, agent: agent.name, input: "go", priority: "normal", metadata: {}, prompt_version: agent.promptVersion });
    return id;
  }

  async function attemptOf(id: string, deps: LoopDeps, agent: AgentDefinition, signal: AbortSignal, owner: string) {
    const claim = await store.claimTask(id, owner);
    if (!claim) throw new Error("claim failed");
    return runLoop(deps, { task: claim.task, fence: claim.fence, agent, defaultMaxSteps: 10, signal });
  }

  it("the store's give-back deletes only rows still as a premark wrote them: started once, outcome unknown", async () => {
    const id = randomUUID();
    const [once, twice, done] = [`${id}:2`, `${id}:3`, `${id}:4`];
    await store.toolCallStarted(once, id, 2, "route_order");
    await store.toolCallStarted(twice, id, 3, "route_order");
    await store.toolCallStarted(twice, id, 3, "route_order");
    await store.toolCallStarted(done, id, 4, "route_order");
    await store.toolCallFinished(done, { ok: true, output: null });
    expect(await store.toolCallUnmark([once, twice, done, `${id}:5`])).toBe(1);
    expect(await store.getToolCall(once)).toBeNull();
    expect(await store.getToolCall(twice)).toEqual({ starts: 2, outcome: null });
    expect(await store.getToolCall(done)).toEqual({ starts: 1, outcome: { ok: true, output: null } });
  });

  it("a stop between the turn's checkpoint and the dispatch gives the premark back: the next attempt's call is its first start, and the task succeeds", async () => {
    const agent = ROUTER();
    const id = await newTask(agent);
    const stop = new AbortController();
    const first = planner(agent, { afterTurnCheckpoint: () => stop.abort(new Error("shutting down")) });
    expect(await attemptOf(id, first.deps, agent, stop.signal, "planner-a")).toMatchObject({ kind: "interrupted" });
    expect(first.routed).toEqual([]);
    expect(await store.getToolCall(`${id}:2`)).toBeNull();

    const second = planner(agent);
    expect(await attemptOf(id, second.deps, agent, new AbortController().signal, "planner-b")).toMatchObject({ kind: "succeeded" });
    expect(second.routed).toEqual(["ORD-1"]);
    expect(await store.getToolCall(`${id}:2`)).toEqual({ starts: 1, outcome: { ok: true, output: { routed: "ORD-1" } } });
  });

  it("a turn checkpointed once the attempt is stopping writes no premark (even where nothing could give it back)", async () => {
    const agent = ROUTER();
    const id = await newTask(agent);
    const stop = new AbortController();
    const first = planner(agent, { duringTurn: () => stop.abort(new Error("shutting down")), unmark: false });
    expect(await attemptOf(id, first.deps, agent, stop.signal, "planner-a")).toMatchObject({ kind: "interrupted" });
    expect((await store.listSteps(id)).map((x) => `${x.step}:${x.kind}`)).toEqual(["1:llm"]);
    expect(await store.getToolCall(`${id}:2`)).toBeNull();
  });

  it("wall time spent between the turn's checkpoint and the dispatch: the call is answered 'not made' and its premark given back", async () => {
    const agent = ROUTER("{max_wall_seconds: 60, on_exhausted: finish}");
    const id = await newTask(agent);
    let clock = 0;
    const first = planner(agent, { afterTurnCheckpoint: () => (clock += 61_000), now: () => clock });
    const claim = await store.claimTask(id, "planner-a");
    if (!claim) throw new Error("claim failed");
    clock = Date.parse(claim.task.started_at ?? "");
    const outcome = await runLoop(first.deps, { task: claim.task, fence: claim.fence, agent, defaultMaxSteps: 10, signal: new AbortController().signal });
    expect(outcome).toMatchObject({ kind: "succeeded", budgetExhausted: "max_wall_seconds" });
    expect(first.routed).toEqual([]);
    expect(await store.getToolCall(`${id}:2`)).toBeNull();
  });

  it("wall time spent during the turn: its checkpoint writes no premark (even where nothing could give it back)", async () => {
    const agent = ROUTER("{max_wall_seconds: 60, on_exhausted: finish}");
    const id = await newTask(agent);
    let clock = 0;
    const first = planner(agent, { duringTurn: () => (clock += 61_000), unmark: false, now: () => clock });
    const claim = await store.claimTask(id, "planner-a");
    if (!claim) throw new Error("claim failed");
    clock = Date.parse(claim.task.started_at ?? "");
    const outcome = await runLoop(first.deps, { task: claim.task, fence: claim.fence, agent, defaultMaxSteps: 10, signal: new AbortController().signal });
    expect(outcome).toMatchObject({ kind: "succeeded", budgetExhausted: "max_wall_seconds" });
    expect(first.routed).toEqual([]);
    expect(await store.getToolCall(`${id}:2`)).toBeNull();
  });
});
