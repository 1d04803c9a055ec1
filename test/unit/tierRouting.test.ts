/**
 * tier routing - the order-router example as shipped (examples/order-router), run by
 * the real agent loop over the official SDK against the simulated model, with
 * the real tools and store: step 1 classifies on the cheap tier, simple orders
 * finish there, the rest escalate, and the classification is a checkpointed,
 * never repeated LLM step.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentCatalog, type AgentDefinition } from "../../src/agent/definition";
import { runLoop, type LoopDeps } from "../../src/agent/runLoop";
import { labelOf } from "../../src/agent/tierRouting";
import type { StepRecord } from "../../src/contracts";
import { AnthropicGateway } from "../../src/llm/anthropicGateway";
import { PriceTable } from "../../src/llm/pricing";
import { startSimServer, type SimServer } from "../../src/sim";
import { isSimpleOrder, routes as orderRouterPolicies } from "../../examples/order-router/sim/policies";
import { openStore, type OpenedStore } from "../../src/store/pgTaskStore";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { migrateOrderRoutes, ORDER_ROUTER_PROMPTS, orderRouterRegistry } from "../../testkit/orderRouter";

let sim: SimServer;
let opened: OpenedStore;
let deps: LoopDeps;
let agent: AgentDefinition;
const simple = orderIds().find((o) => isSimpleOrder(o) && expectedRouting(o).routed) as string;
const complex = orderIds().find((o) => !isSimpleOrder(o) && expectedRouting(o).routed) as string;

beforeAll(async () => {
  sim = await startSimServer({ policies: orderRouterPolicies });
  opened = await openStore({ dataDir: "memory://" });
  await migrateOrderRoutes(opened.pool);
  const registry = orderRouterRegistry(opened.pool);
  agent = AgentCatalog.load(ORDER_ROUTER_PROMPTS).get("order-router");
  const gw = new AnthropicGateway({ apiKey: "k", baseURL: sim.url, maxRetries: 0 });
  deps = {
    store: opened.store,
    llm: { complete: async (req) => gw.complete(req) },
    tools: registry,
    toolSpecs: async (a) => registry.specs(a.tools),
    prices: new PriceTable(),
    logger: { info: () => {}, warn: () => {} },
  };
});
afterAll(async () => {
  await sim.close();
  await opened.close();
});

async function runTask(order: string, a: AgentDefinition, signal = new AbortController().signal) {
  const id = randomUUID();
  await opened.store.createTask({ id, agent: a.name, input: { order_id: order }, priority: "normal", metadata: {}, prompt_version: a.promptVersion });
  return { id, outcome: await resume(id, a, signal) };
}

async function resume(id: string, a: AgentDefinition, signal = new AbortController().signal) {
  const claim = await opened.store.claimTask(id, "planner-test");
  if (!claim) throw new Error("claim failed");
  return runLoop(deps, { task: claim.task, fence: claim.fence, agent: a, defaultMaxSteps: 40, signal });
}

const llmSteps = (steps: StepRecord[]) => steps.flatMap((s) => (s.kind === "llm" ? [s] : []));

describe("tier routing - order-router", () => {
  it("a simple order is classified on the cheap tier and finishes there, routed right", async () => {
    const { id, outcome } = await runTask(simple, agent);
    expect(outcome).toMatchObject({ kind: "succeeded", result: { order_id: simple, routed: true, warehouse_id: expectedRouting(simple).warehouse_id } });
    const steps = await opened.store.listSteps(id);
    const [classification, ...rest] = llmSteps(steps);
    expect(classification).toMatchObject({ step: 1, kind: "llm", data: { tier: "classify", model: "claude-haiku-5-5" } });
    expect(labelOf(classification?.data.content ?? [])).toBe("simple");
    expect(rest.length).toBeGreaterThan(2);
    expect(rest.every((s) => s.data.tier === "classify" && s.data.model === "claude-haiku-5-5")).toBe(true);
    expect(steps.find((s) => s.step === 2)?.kind).toBe("llm");
  });

  it("a complex order escalates to the reasoning tier after the classification; usage and cost count both models", async () => {
    const { id, outcome } = await runTask(complex, agent);
    expect(outcome).toMatchObject({ kind: "succeeded", result: { order_id: complex, routed: true } });
    const steps = llmSteps(await opened.store.listSteps(id));
    expect(steps[0]).toMatchObject({ step: 1, data: { tier: "classify", model: "claude-haiku-5-5" } });
    expect(steps.slice(1).every((s) => s.data.tier === "reason" && s.data.model === "claude-sonnet-5-5")).toBe(true);
    const task = await opened.store.getTask(id);
    const cost = steps.reduce((sum, s) => sum + s.data.usage.cost_usd, 0);
    expect(task?.usage.cost_usd).toBeCloseTo(cost, 8);
    expect(task?.usage.input_tokens).toBe(steps.reduce((sum, s) => sum + s.data.usage.input_tokens, 0));
  });

  it("resume - a task stopped right after its classification resumes on the chosen tier without classifying again", async () => {
    const before = sim.stats().by_model["claude-haiku-5-5"] ?? 0;
    const stop = new AbortController();
    const id = randomUUID();
    await opened.store.createTask({ id, agent: agent.name, input: { order_id: complex }, priority: "normal", metadata: {}, prompt_version: agent.promptVersion });
    const claim = await opened.store.claimTask(id, "planner-a");
    if (!claim) throw new Error("claim failed");
    const first = await runLoop(
      { ...deps, onStep: (e) => e.step === 1 && stop.abort(new Error("crash after step 1")) },
      { task: claim.task, fence: claim.fence, agent, defaultMaxSteps: 40, signal: stop.signal },
    ).catch((err: unknown) => ({ kind: "threw", err }));
    expect(first.kind === "interrupted" || first.kind === "threw").toBe(true);
    // The first turn may have been asked while the classification was stored: then its answer is checkpointed too.
    expect([[1], [1, 2]]).toContainEqual((await opened.store.listSteps(id)).map((s) => s.step));
    expect(sim.stats().by_model["claude-haiku-5-5"]).toBe(before + 1);

    const second = await resume(id, agent);
    expect(second).toMatchObject({ kind: "succeeded", result: { order_id: complex, routed: true } });
    // One classification in all; every later call went to the reasoning tier.
    expect(sim.stats().by_model["claude-haiku-5-5"]).toBe(before + 1);
    const steps = llmSteps(await opened.store.listSteps(id));
    expect(steps.filter((s) => s.data.tier === "classify")).toHaveLength(1);
  });

  it("cost - a simple order costs well under half of the same order forced onto the reasoning tier", async () => {
    const forced: AgentDefinition = { ...agent, router: undefined };
    const tiered = await runTask(simple, agent);
    const large = await runTask(simple, forced);
    expect(large.outcome).toMatchObject({ kind: "succeeded", result: { routed: true } });
    const costOf = async (id: string) => (await opened.store.getTask(id))?.usage.cost_usd ?? NaN;
    const ratio = (await costOf(tiered.id)) / (await costOf(large.id));
    expect(ratio).toBeLessThan(0.4);
    const forcedSteps = llmSteps(await opened.store.listSteps(large.id));
    expect(forcedSteps.every((s) => s.data.model === "claude-sonnet-5-5")).toBe(true);
  });
});
